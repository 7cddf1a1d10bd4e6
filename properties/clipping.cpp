// Property 6: clipping placement.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

/// Property 6: clipping happens once, after the whole window (and after unscaling): the pre-clip
/// norm equals the large batch's, and the clipped gradient handed to the optimizer equals the
/// large batch's clipped gradient. Applies where clipping is configured (the generators make it
/// active).
class ClippingAfterWindow final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace

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

std::unique_ptr<Property> clipping_after_window() { return std::make_unique<ClippingAfterWindow>(); }

}  // namespace gacc::properties
