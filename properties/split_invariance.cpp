// Property 3: K = 1 identity and split invariance.

#include "properties/split_invariance.h"

#include <numeric>

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

std::string SplitInvariance::name() const { return "split-invariance"; }

std::string SplitInvariance::claim() const {
  return "Running the same recipe with each window as one micro-batch (K = 1) changes its gradients, "
         "parameters, optimizer state and buffers only within the derived tolerances of the two runs.";
}

bool SplitInvariance::applies_to(const Scenario& scenario) const {
  if (is_batch_coupled(scenario.model)) return false;
  for (int s = 0; s < scenario.steps; ++s) {
    if (micro_batch_count(scenario, s) > 1) return true;
  }
  return false;
}

CaseVerdict SplitInvariance::check(const CaseContext& context) const {
  const auto& oracle = context.oracle;
  Judgement judgement(oracle);
  if (!check_structure(context.trace, oracle, judgement)) return judgement.verdict();
  Trace whole;
  try {
    whole = context.rerun(unsplit(oracle.scenario()));
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

}  // namespace gacc::properties
