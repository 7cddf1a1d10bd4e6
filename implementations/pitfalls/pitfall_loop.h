#pragma once
/// The base of the LibTorch pitfall recipes: the correct loop (TorchTrainingLoop) with a name, a
/// one-line summary of what it gets wrong, where the bug was reported, the bug explained and its
/// fix (what `gacc explain` prints). Each pitfall overrides the one hook it gets wrong.

#include <string>
#include <utility>

#include "implementations/torch/training_loop.h"

namespace gacc::pitfalls {

class PitfallLoop : public torch_recipes::TorchTrainingLoop {
 public:
  struct Description {
    std::string name, summary, reference, explanation, fix;
  };
  explicit PitfallLoop(Description description) : description_(std::move(description)) {}

  std::string name() const override { return description_.name; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }
  std::string summary() const override { return description_.summary; }
  std::string reference() const override { return description_.reference; }
  std::string explanation() const override { return description_.explanation; }
  std::string fix() const override { return description_.fix; }

 private:
  Description description_;
};

}  // namespace gacc::pitfalls
