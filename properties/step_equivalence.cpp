// Property 2: step equivalence.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 2: over S steps, parameters and optimizer state equal large-batch training — step by
// step from the recipe's own state, and along the whole trajectory from the initial weights. The
// gradient is checked before each step too (an optimizer such as Adam hides a mis-scaled one).
// With BatchNorm: against ghost BatchNorm over the micro-batches (see gradient_equivalence.cpp).
bool applies(const Scenario&) { return true; }

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = accumulation_oracle(context.oracle);
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  check_steps(oracle, trace, judgement);
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> step_equivalence() {
  return std::make_unique<PropertyOf>(
      "step-equivalence",
      "Over S optimizer steps (SGD with momentum, dampening, nesterov, weight decay; Adam and "
      "AdamW with amsgrad; every schedule), parameters, optimizer state and learning rate equal "
      "large-batch training (with BatchNorm: ghost BatchNorm over the micro-batches), step by step and along "
      "the trajectory.",
      applies, check);
}

}  // namespace gacc::properties
