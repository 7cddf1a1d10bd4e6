// Property 7: mixed precision.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Under autocast (bf16 or fp16) with fp32 weights and fp32 gradient accumulation, the gradient
// handed to the optimizer and the step are within the autocast-derived bound of the large batch's.
// Under fp16, GradScaler's semantics on top: a step is skipped exactly when a micro-batch's scaled
// gradient overflows (Note [overflow], judged at the recipe's own parameters and scale), the skipped
// step leaves parameters and optimizer state untouched, and the scale follows the state machine
// once per optimizer step — backed off once per skipped step, grown after growth_interval taken ones.
bool applies(const Scenario& scenario) {
  return scenario.precision != Precision::fp32;
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = accumulation_oracle(context.oracle);  // ghost BatchNorm with BatchNorm
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  if (!check_structure(trace, oracle, judgement)) return judgement.verdict();
  if (oracle.scenario().precision == Precision::fp16) check_loss_scales(oracle, trace, judgement);
  for (int s = 0; s < oracle.scenario().steps && !judgement.failed_structurally(); ++s) {
    check_gradient(oracle, trace, s, judgement);
    check_step(oracle, trace, s, judgement);
  }
  CaseVerdict verdict = judgement.verdict();
  if (oracle.scenario().precision == Precision::fp16) {
    int skipped = 0;
    for (const auto& step : trace.steps) skipped += step.skipped;
    verdict.detail += " [" + std::to_string(skipped) + " of " + std::to_string(trace.steps.size()) +
                      " steps skipped; loss scales";
    for (const auto& step : trace.steps) verdict.detail += " " + format_number(step.loss_scale);
    verdict.detail += "]";
  }
  return verdict;
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
