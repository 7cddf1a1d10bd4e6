// Property 1: gradient equivalence.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 1: at every step, the gradient the optimizer is handed (and its norm, and the window's
// loss) equals the large-batch one at the recipe's own parameters, within the derived tolerance.
// With BatchNorm (examples of a batch coupled) the gradient is judged against ghost BatchNorm over the
// micro-batches, what accumulation computes; the deviation from the large batch is property 4's.
bool applies(const Scenario&) { return true; }

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = accumulation_oracle(context.oracle);
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
      "optimizer (after clipping), its pre-clip norm and the window's loss equal the large batch's (with "
      "BatchNorm: ghost BatchNorm's over the micro-batches).",
      applies, check);
}

}  // namespace gacc::properties
