// Property 1: gradient equivalence.

#include "properties/gradient_equivalence.h"

#include "properties/trace_checks.h"

namespace gacc::properties {

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
  if (check_structure(trace, oracle, judgement)) {
    for (int s = 0; s < oracle.scenario().steps; ++s) check_gradient(oracle, trace, s, judgement);
  }
  return judgement.verdict();
}

}  // namespace gacc::properties
