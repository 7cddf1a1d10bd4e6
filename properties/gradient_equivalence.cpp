// Property 1: gradient equivalence.

#include "properties/gradient_equivalence.h"

#include "properties/trace_checks.h"

namespace gacc::properties {

std::string GradientEquivalence::name() const { return "gradient-equivalence"; }

std::string GradientEquivalence::claim() const {
  return "For any K >= 1 and any split of the window (uneven sizes, a partial last window), the "
         "gradient handed to the optimizer, its norm and the window's loss equal the large batch's.";
}

bool GradientEquivalence::applies_to(const Scenario&) const {
  return true;  // every model of the zoo so far is per-example separable
}

CaseVerdict GradientEquivalence::check(const reference::Oracle& oracle, const Trace& trace) const {
  Judgement judgement(oracle);
  if (check_structure(trace, oracle, judgement)) {
    for (int s = 0; s < oracle.scenario().steps; ++s) check_gradient(oracle, trace, s, judgement);
  }
  return judgement.verdict();
}

}  // namespace gacc::properties
