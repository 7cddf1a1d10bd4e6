#pragma once
/// `Recipe`: a training loop under test. Correct recipes, pitfall recipes, the CUDA path and
/// external programs all implement it; implementations/registry.h lists them.

#include <string>

#include "core/scenario.h"
#include "core/trace.h"

namespace gacc {

enum class RecipeKind {
  correct,  ///< must pass every property
  pitfall,  ///< reproduces a real bug; at least one property must catch it
};

std::string to_string(RecipeKind kind);

class Recipe {
 public:
  virtual ~Recipe() = default;

  /// Stable name, as used by `--filter`, reports and `gacc explain`.
  virtual std::string name() const = 0;
  virtual RecipeKind kind() const = 0;
  /// One line: what the recipe does (for a pitfall: what it gets wrong).
  virtual std::string summary() const = 0;
  /// For a pitfall: where the bug was reported. Empty for correct recipes.
  virtual std::string reference() const { return {}; }
  /// For a pitfall: the bug in a few sentences — what goes wrong and why it matters.
  virtual std::string explanation() const { return {}; }
  /// For a pitfall: the fix, as code (PyTorch-style pseudocode a person can apply).
  virtual std::string fix() const { return {}; }
  /// False where the recipe cannot run the scenario at all (that case is skipped, not judged).
  virtual bool supports(const Scenario& scenario) const = 0;
  /// Trains through the scenario and reports what it observed.
  virtual Trace run(const Scenario& scenario) const = 0;
};

}  // namespace gacc
