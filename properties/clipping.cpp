// Property 6: clipping placement.

#include "properties/clipping.h"

#include "properties/trace_checks.h"

namespace gacc::properties {

std::string ClippingAfterWindow::name() const { return "clipping-after-window"; }

std::string ClippingAfterWindow::claim() const {
  return "Clipping acts once on the whole window's gradient: the pre-clip norm and the clipped gradient "
         "handed to the optimizer equal the large batch's.";
}

bool ClippingAfterWindow::applies_to(const Scenario& scenario) const {
  return scenario.clipping.kind != ClippingKind::none && !is_batch_coupled(scenario.model);
}

CaseVerdict ClippingAfterWindow::check(const CaseContext& context) const {
  const auto& oracle = context.oracle;
  Judgement judgement(oracle);
  if (check_structure(context.trace, oracle, judgement)) {
    for (int s = 0; s < oracle.scenario().steps; ++s) check_gradient(oracle, context.trace, s, judgement);
  }
  CaseVerdict verdict = judgement.verdict();
  int active = 0;
  const auto& sc = oracle.scenario();
  for (const auto& e : oracle.trajectory()) {
    active += sc.clipping.kind == ClippingKind::norm ? e.norm > sc.clipping.max_norm : true;
  }
  verdict.detail += " [clipping " + to_string(sc.clipping.kind) + (sc.clipping.kind == ClippingKind::norm
                        ? " active in " + std::to_string(active) + " of " + std::to_string(sc.steps) + " large-batch steps]"
                        : "]");
  return verdict;
}

}  // namespace gacc::properties
