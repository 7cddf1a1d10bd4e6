#pragma once
/// The recipe registry: an explicit list (not static-initializer registration, which a linker may
/// drop). Add a recipe here and it runs against every property.

#include <memory>
#include <vector>

#include "core/recipe.h"

namespace gacc {

/// Every recipe gacc knows: correct ones first, then the pitfalls.
std::vector<std::unique_ptr<Recipe>> all_recipes();

}  // namespace gacc
