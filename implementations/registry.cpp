#include "implementations/registry.h"

#include <algorithm>

#include "implementations/distributed/data_parallel.h"
#include "implementations/pitfalls/pitfalls.h"
#include "implementations/torch/data_parallel_loops.h"
#include "implementations/torch/fused_accumulator_loop.h"
#include "implementations/torch/training_loop.h"
#ifdef GACC_WITH_CUDA_RECIPES
#include "implementations/cuda/grad_accumulator.h"
#include "implementations/torch/fused_accumulator_gpu_loop.h"
#endif

namespace gacc {

std::vector<std::unique_ptr<Recipe>> all_recipes() {
  std::vector<std::unique_ptr<Recipe>> recipes;
  recipes.push_back(std::make_unique<torch_recipes::TorchTrainingLoop>());
  recipes.push_back(std::make_unique<torch_recipes::FusedAccumulatorLoop>());
#ifdef GACC_WITH_CUDA_RECIPES
  // Only where it can run: a machine without a CUDA device lists and judges the others.
  if (cuda::device_count() > 0) recipes.push_back(std::make_unique<torch_recipes::FusedAccumulatorGpuLoop>());
#endif
  for (auto make : {pitfalls::forgotten_loss_scaling, pitfalls::zero_grad_every_micro_batch,
                    pitfalls::optimizer_step_every_micro_batch, pitfalls::token_mean_of_means,
                    pitfalls::partial_window_divided_by_k, pitfalls::clipping_per_micro_batch,
                    pitfalls::bf16_accumulation_buffer, pitfalls::scheduler_step_every_micro_batch,
                    pitfalls::adam_step_count_per_micro_batch, pitfalls::weight_decay_per_micro_batch,
                    pitfalls::last_micro_batch_leaks, pitfalls::batch_norm_micro_batch_statistics,
                    pitfalls::clipping_before_unscale, pitfalls::grad_scaler_every_micro_batch,
                    pitfalls::overflowing_micro_batch_discarded, pitfalls::scaled_loss_reported}) {
    recipes.push_back(make());
  }
  for (auto& loop : data_parallel_loops()) {
    recipes.push_back(std::make_unique<distributed::DataParallelRecipe>(std::move(loop)));
  }
  // Correct recipes first, whatever their engine.
  std::stable_partition(recipes.begin(), recipes.end(),
                        [](const std::unique_ptr<Recipe>& r) { return r->kind() == RecipeKind::correct; });
  return recipes;
}

std::vector<std::unique_ptr<torch_recipes::TorchTrainingLoop>> data_parallel_loops() {
  std::vector<std::unique_ptr<torch_recipes::TorchTrainingLoop>> loops;
  loops.push_back(std::make_unique<torch_recipes::DdpAccumulateLoop>());
  loops.push_back(std::make_unique<torch_recipes::DdpAverageLoop>());
  loops.push_back(std::make_unique<torch_recipes::DdpSyncEveryMicroBatchLoop>());
  for (auto make : {pitfalls::gradients_averaged_twice, pitfalls::gradients_not_averaged,
                    pitfalls::per_rank_token_normalization, pitfalls::loss_not_reduced_across_ranks,
                    pitfalls::unused_parameters_not_synced}) {
    loops.push_back(make());
  }
  return loops;
}

const torch_recipes::TorchTrainingLoop* find_data_parallel_loop(const std::string& name) {
  static const auto loops = data_parallel_loops();
  for (const auto& loop : loops) {
    if (loop->name() == name) return loop.get();
  }
  return nullptr;
}

}  // namespace gacc
