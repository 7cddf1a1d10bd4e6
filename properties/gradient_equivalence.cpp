// Property 1: gradient equivalence.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

/// Property 1: at every step, the gradient the optimizer is handed (and its norm, and the window's
/// loss) equals the large-batch one at the recipe's own parameters, within the derived tolerance.
class GradientEquivalence final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace

std::string GradientEquivalence::name() const { return "gradient-equivalence"; }

std::string GradientEquivalence::claim() const {
  return "For per-example separable models, any K >= 1 and any split of the window (uneven sizes, a "
         "partial last window, micro-batches without a counted token), the gradient handed to the "
         "optimizer (after clipping), its pre-clip norm and the window's loss equal the large batch's.";
}

bool GradientEquivalence::applies_to(const Scenario& scenario) const {
  // BatchNorm couples the examples of a batch: its non-equivalence is the normalization property's.
  return !is_batch_coupled(scenario.model);
}

CaseVerdict GradientEquivalence::check(const CaseContext& context) const {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  check_gradients(oracle, trace, judgement);
  return judgement.verdict();
}

std::unique_ptr<Property> gradient_equivalence() { return std::make_unique<GradientEquivalence>(); }

}  // namespace gacc::properties
