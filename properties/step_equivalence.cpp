// Property 2: step equivalence.

#include "properties/step_equivalence.h"

#include "properties/trace_checks.h"

namespace gacc::properties {

std::string StepEquivalence::name() const { return "step-equivalence"; }

std::string StepEquivalence::claim() const {
  return "Over S optimizer steps (SGD with momentum, dampening, nesterov, weight decay; Adam and "
         "AdamW with amsgrad; every schedule), parameters, optimizer state and learning rate equal "
         "large-batch training, step by step and along the trajectory.";
}

bool StepEquivalence::applies_to(const Scenario& scenario) const {
  return !is_batch_coupled(scenario.model);
}

CaseVerdict StepEquivalence::check(const CaseContext& context) const {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  if (check_structure(trace, oracle, judgement)) {
    for (int s = 0; s < oracle.scenario().steps && !judgement.failed_structurally(); ++s) {
      check_gradient(oracle, trace, s, judgement);
      check_step(oracle, trace, s, judgement);
      check_trajectory(oracle, trace, s, judgement);
    }
  }
  return judgement.verdict();
}

}  // namespace gacc::properties
