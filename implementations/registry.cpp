#include "implementations/registry.h"

#include "implementations/pitfalls/pitfalls.h"
#include "implementations/torch/training_loop.h"

namespace gacc {

std::vector<std::unique_ptr<Recipe>> all_recipes() {
  std::vector<std::unique_ptr<Recipe>> recipes;
  recipes.push_back(std::make_unique<torch_recipes::TorchTrainingLoop>());
  recipes.push_back(pitfalls::forgotten_loss_scaling());
  recipes.push_back(pitfalls::zero_grad_every_micro_batch());
  return recipes;
}

}  // namespace gacc
