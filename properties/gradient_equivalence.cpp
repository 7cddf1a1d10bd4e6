// Property 1: gradient equivalence.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 1: at every step, the gradient the optimizer is handed (and its norm, and the window's
// loss) equals the large-batch one at the recipe's own parameters, within the derived tolerance.
bool applies(const Scenario& scenario) {
  // BatchNorm couples the examples of a batch: its non-equivalence is the normalization property's.
  return !is_batch_coupled(scenario.model);
}

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  Judgement judgement(oracle);
  check_gradients(oracle, trace, judgement);
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> gradient_equivalence() {
  return std::make_unique<PropertyOf>(
      "gradient-equivalence",
      "For per-example separable models, any K >= 1 and any split of the window (uneven sizes, a "
      "partial last window, micro-batches without a counted token), the gradient handed to the "
      "optimizer (after clipping), its pre-clip norm and the window's loss equal the large batch's.",
      applies, check);
}

}  // namespace gacc::properties
