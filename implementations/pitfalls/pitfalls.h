#pragma once
/// Pitfall recipes: each reproduces one real gradient-accumulation bug, cites where it was
/// reported, and must be caught by at least one property (tests/implementations/pitfalls/).

#include <memory>

#include "core/recipe.h"

namespace gacc::pitfalls {

// Broken! Each returns a recipe that gets one thing wrong; see its file for the bug and the fix.
std::unique_ptr<Recipe> forgotten_loss_scaling();
std::unique_ptr<Recipe> zero_grad_every_micro_batch();

}  // namespace gacc::pitfalls
