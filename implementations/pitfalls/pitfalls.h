#pragma once
/// Pitfall recipes: each reproduces one real gradient-accumulation bug, cites where it was
/// reported, and must be caught by at least one property (tests/implementations/pitfalls/).

#include <memory>

#include "core/recipe.h"
#include "implementations/torch/training_loop.h"

namespace gacc::pitfalls {

// Broken! Each returns a recipe that gets one thing wrong; see its file for the bug and the fix.
std::unique_ptr<Recipe> forgotten_loss_scaling();
std::unique_ptr<Recipe> zero_grad_every_micro_batch();
std::unique_ptr<Recipe> optimizer_step_every_micro_batch();
std::unique_ptr<Recipe> token_mean_of_means();
std::unique_ptr<Recipe> partial_window_divided_by_k();
std::unique_ptr<Recipe> clipping_per_micro_batch();
std::unique_ptr<Recipe> bf16_accumulation_buffer();
std::unique_ptr<Recipe> scheduler_step_every_micro_batch();
std::unique_ptr<Recipe> adam_step_count_per_micro_batch();
std::unique_ptr<Recipe> weight_decay_per_micro_batch();
std::unique_ptr<Recipe> last_micro_batch_leaks();
std::unique_ptr<Recipe> batch_norm_micro_batch_statistics();
std::unique_ptr<Recipe> clipping_before_unscale();
std::unique_ptr<Recipe> grad_scaler_every_micro_batch();
std::unique_ptr<Recipe> overflowing_micro_batch_discarded();
std::unique_ptr<Recipe> scaled_loss_reported();

// Broken data-parallel loops: each runs as every rank of a process group (registry's
// data_parallel_loops(), through distributed::DataParallelRecipe).
std::unique_ptr<torch_recipes::TorchTrainingLoop> gradients_averaged_twice();
std::unique_ptr<torch_recipes::TorchTrainingLoop> gradients_not_averaged();
std::unique_ptr<torch_recipes::TorchTrainingLoop> per_rank_token_normalization();
std::unique_ptr<torch_recipes::TorchTrainingLoop> loss_not_reduced_across_ranks();
std::unique_ptr<torch_recipes::TorchTrainingLoop> unused_parameters_not_synced();

}  // namespace gacc::pitfalls
