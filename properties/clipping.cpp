// Property 6: clipping placement.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 6: clipping happens once, after the whole window (and after unscaling): the pre-clip
// norm equals the large batch's, and the clipped gradient handed to the optimizer equals the
// large batch's clipped gradient. Applies where clipping is configured (the generators make it
// active).
bool applies(const Scenario& scenario) {
  return scenario.clipping.kind != ClippingKind::none;
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = accumulation_oracle(context.oracle);
  Judgement judgement(oracle);
  check_gradients(oracle, context.trace, judgement);
  CaseVerdict verdict = judgement.verdict();
  int active = 0;
  const auto& sc = oracle.scenario();
  for (const auto& e : oracle.trajectory()) {
    active += sc.clipping.kind == ClippingKind::norm ? e.norm > sc.clipping.max_norm : true;
  }
  verdict.detail +=
      " [clipping " + to_string(sc.clipping.kind) +
      (sc.clipping.kind == ClippingKind::norm ? " active in " + std::to_string(active) + " of " +
                                                    std::to_string(sc.steps) + " large-batch steps]"
                                              : "]");
  return verdict;
}

}  // namespace

std::unique_ptr<Property> clipping_after_window() {
  return std::make_unique<PropertyOf>(
      "clipping-after-window",
      "Clipping acts once on the whole window's gradient: the pre-clip norm and the clipped gradient "
      "handed to the optimizer equal the large batch's.",
      applies, check);
}

}  // namespace gacc::properties
