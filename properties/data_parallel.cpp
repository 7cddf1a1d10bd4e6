// Property 9: data parallelism.

#include "fixtures/fixtures.h"
#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 9: W ranks, each accumulating K micro-batches of its own share of the window (the
// shares uneven across ranks), then summing or averaging over the ranks, equal the large batch of
// the whole window on one process: the gradient, the step and the trajectory, as properties 1 and 2
// judge them. On top of those, what only data parallelism can get wrong:
//   - every replica ends every step with the same parameters, optimizer state and buffers (the
//     driver compares the ranks bit for bit; any difference is a desynchronized model);
//   - the gradient travels once per optimizer step (all-reduce after the window, no_sync before)
//     or once per micro-batch (synchronized as it is made), whole and in fp32: the payload is
//     exactly rounds x parameters x 4 bytes, in a whole number of collectives per round (buckets).
bool applies(const Scenario& scenario) {
  return scenario.world_size >= 2 && !is_batch_coupled(scenario.model);
}

void check_collectives(const Scenario& sc, const Counters& counters, Judgement& judgement) {
  const int64_t parameters = fixtures::model_layout(sc.model).size;
  const int64_t once = sc.steps;
  int64_t every = 0;
  for (int s = 0; s < sc.steps; ++s) every += micro_batch_count(sc, s);
  const int64_t round_bytes = parameters * static_cast<int64_t>(sizeof(float));
  const auto consistent = [&](int64_t rounds) {
    return counters.all_reduce_bytes == rounds * round_bytes && counters.all_reduces >= rounds &&
           counters.all_reduces % rounds == 0;
  };
  if (consistent(once) || consistent(every)) {
    judgement.exact();
    return;
  }
  judgement.structural(std::to_string(counters.all_reduces) + " gradient collectives moving " +
                       std::to_string(counters.all_reduce_bytes) + " bytes over " + std::to_string(sc.steps) +
                       " windows of " + std::to_string(every) + " micro-batches in all; the fp32 gradient (" +
                       std::to_string(parameters) + " parameters, " + std::to_string(round_bytes) +
                       " bytes) once per window makes " + std::to_string(once * round_bytes) +
                       " bytes, once per micro-batch " + std::to_string(every * round_bytes) + " bytes");
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  const auto& sc = oracle.scenario();
  Judgement judgement(oracle);
  if (!trace.replica_divergence.empty()) {
    judgement.structural("the replicas diverge: " + trace.replica_divergence);
  }
  check_collectives(sc, trace.counters, judgement);
  if (!judgement.failed_structurally()) check_steps(oracle, trace, judgement);
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> data_parallel() {
  return std::make_unique<PropertyOf>(
      "data-parallel",
      "W ranks x K micro-batches, the window's examples split unevenly across ranks and micro-batches, equal "
      "the large batch on one process at every step; every replica stays identical; the fp32 gradient is "
      "all-reduced once per window (or once per micro-batch, K times the collectives), never partly.",
      applies, check);
}

}  // namespace gacc::properties
