// Property 3: K = 1 identity and split invariance.

#include <numeric>

#include "core/errors.h"
#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

Scenario unsplit(const Scenario& scenario) {
  Scenario out = scenario;
  out.accumulation_steps = 1;
  for (auto& window : out.data.windows) {
    for (auto& rank : window) rank = {std::accumulate(rank.begin(), rank.end(), int64_t{0})};
  }
  return out;
}

namespace {

// Property 3: the recipe run with every window as one micro-batch (K = 1: the recipe's own large
// batch) and run with the scenario's split agree within the two runs' derived tolerances — step
// 0's gradient and loss, and the parameters, state and buffers along the whole trajectory. Needs
// no model knowledge beyond the tolerances, so it also judges stacks the oracle cannot model.
bool applies(const Scenario& scenario) {
  if (is_batch_coupled(scenario.model)) return false;
  for (int s = 0; s < scenario.steps; ++s) {
    if (micro_batch_count(scenario, s) > 1) return true;
  }
  return false;
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  Judgement judgement(oracle);
  if (!check_structure(context.trace, oracle, judgement)) return judgement.verdict();
  Trace whole;
  try {
    whole = context.rerun(unsplit(oracle.scenario()));
  } catch (const Error&) {
    throw;  // not the recipe's numbers: the run cannot go on (see run_recipe)
  } catch (const std::exception& e) {
    judgement.structural(std::string("the recipe failed with K = 1: ") + e.what());
    return judgement.verdict();
  }
  Judgement baseline(oracle);
  if (!check_structure(whole, oracle, baseline)) {
    judgement.structural("with K = 1: " + baseline.verdict().detail);
    return judgement.verdict();
  }
  check_same_run(oracle, context.trace, whole, "split vs K = 1", judgement);
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> split_invariance() {
  return std::make_unique<PropertyOf>(
      "split-invariance",
      "Running the same recipe with each window as one micro-batch (K = 1) changes its gradients, "
      "parameters, optimizer state and buffers only within the derived tolerances of the two runs.",
      applies, check, /*reruns=*/true);
}

}  // namespace gacc::properties
