#include "core/recipe.h"

namespace gacc {

std::string to_string(RecipeKind kind) { return kind == RecipeKind::correct ? "correct" : "pitfall"; }

}  // namespace gacc
