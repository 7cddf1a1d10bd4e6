#pragma once
/// The base of the LibTorch pitfall recipes: a correct loop (TorchTrainingLoop, or one of its
/// data-parallel conventions) with a name, a one-line summary of what it gets wrong, where the bug
/// was reported, the bug explained and its fix (what `gacc explain` prints). Each pitfall overrides
/// the one hook it gets wrong.

#include <string>
#include <utility>

#include "implementations/torch/data_parallel_loops.h"
#include "implementations/torch/training_loop.h"

namespace gacc::pitfalls {

struct PitfallDescription {
  std::string name, summary, reference, explanation, fix;
};

/// `CorrectLoop` with one thing done wrong, described.
template <class CorrectLoop>
class PitfallOf : public CorrectLoop {
 public:
  explicit PitfallOf(PitfallDescription description) : description_(std::move(description)) {}

  std::string name() const override { return description_.name; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }
  std::string summary() const override { return description_.summary; }
  std::string reference() const override { return description_.reference; }
  std::string explanation() const override { return description_.explanation; }
  std::string fix() const override { return description_.fix; }

 private:
  PitfallDescription description_;
};

/// A single-process pitfall.
using PitfallLoop = PitfallOf<torch_recipes::TorchTrainingLoop>;

}  // namespace gacc::pitfalls
