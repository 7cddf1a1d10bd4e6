// Property 7: mixed precision.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Under autocast (bf16 or fp16) with fp32 weights and fp32 gradient accumulation, the gradient
// handed to the optimizer and the step are within the autocast-derived bound of the large batch's;
// the loss scale in force and the skipped steps follow the large batch's (GradScaler semantics:
// the whole step skipped and the scale backed off once when any micro-batch overflows).
bool applies(const Scenario& scenario) {
  return scenario.precision != Precision::fp32 && !is_batch_coupled(scenario.model);
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  if (!check_structure(trace, oracle, judgement)) return judgement.verdict();
  for (int s = 0; s < oracle.scenario().steps && !judgement.failed_structurally(); ++s) {
    const auto& expected = oracle.trajectory()[s];
    const auto& observed = trace.steps[s];
    if (observed.skipped != expected.skipped) {
      judgement.structural("step " + std::to_string(s) + ": the recipe " + (observed.skipped ? "skipped" : "took") +
                           " the step; the large batch " + (expected.skipped ? "skips" : "takes") + " it");
      break;
    }
    judgement.scalar("step " + std::to_string(s) + " loss scale", observed.loss_scale, expected.loss_scale, 0.0);
    check_gradient(oracle, trace, s, judgement);
    check_step(oracle, trace, s, judgement);
  }
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> mixed_precision() {
  return std::make_unique<PropertyOf>(
      "mixed-precision",
      "Under bf16 or fp16 autocast with fp32 accumulation, gradients and steps are within the autocast-derived "
      "bound of the large batch's, and loss scale and skipped steps follow GradScaler's semantics.",
      applies, check);
}

}  // namespace gacc::properties
