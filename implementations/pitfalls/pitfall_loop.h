#pragma once
/// The base of the LibTorch pitfall recipes: the correct loop (TorchTrainingLoop) with a name, a
/// one-line summary of what it gets wrong and where the bug was reported. Each pitfall overrides
/// the one hook it gets wrong.

#include <string>
#include <utility>

#include "implementations/torch/training_loop.h"

namespace gacc::pitfalls {

class PitfallLoop : public torch_recipes::TorchTrainingLoop {
 public:
  PitfallLoop(std::string name, std::string summary, std::string reference)
      : name_(std::move(name)), summary_(std::move(summary)), reference_(std::move(reference)) {}

  std::string name() const override { return name_; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }
  std::string summary() const override { return summary_; }
  std::string reference() const override { return reference_; }

 private:
  std::string name_, summary_, reference_;
};

}  // namespace gacc::pitfalls
