#pragma once
/// Diagnosis: when a recipe fails, which known bug its numbers look like — the signature a person
/// can act on ("the gradient is K times the large batch's: the loss was not divided by K").

#include <string>

#include "core/trace.h"
#include "reference/oracle.h"

namespace gacc::properties {

// Note [diagnosis]
// ~~~~~~~~~~~~~~~~
// A failing verdict says where the recipe is off and by how much; the diagnosis says what it looks
// like. Each signature is a hypothesis computed from the scenario (in double, at the recipe's own
// parameters before the first window) and tested against what the recipe reported, under the same
// tolerance the gradient was judged by (twice it: the hypothesis is computed differently from the
// recipe); the first that fits is named:
//   - structure: a step count off by one (one optimizer step, or one window, too many or too few);
//     a scheduler stepped once per micro-batch (its rates run K - 1 steps ahead of the windows);
//   - the first window's gradient (its pre-clip norm where clipping acts): K, 1/K, W or 1/W times
//     the large batch's; the sum of the per-micro-batch means (each micro-batch's own mean, the
//     loss never divided by K); their mean (a mean of means, not the window's mean); the last
//     micro-batch's alone (over the window's elements, or its own).
// A signature is a hint, never a verdict: the verdict stands on the comparison with the oracle.

/// The signature `trace` fits (Note [diagnosis]), or empty when none does.
std::string diagnose(const reference::Oracle& oracle, const Trace& trace);

}  // namespace gacc::properties
