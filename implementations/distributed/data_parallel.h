#pragma once
/// Data-parallel recipes: a LibTorch loop (torch_recipes::TorchTrainingLoop or a pitfall derived
/// from it) run as every rank of a c10d/Gloo process group through the shared RankPool. Three
/// correct loops, differing in the conventions a real stack picks between:
///   ddp-accumulate               loss / window elements (summed over ranks), gradients summed over
///                                the ranks once per window (no_sync until the last micro-batch)
///   ddp-average                  DDP's own convention: loss / (window elements / W), gradients
///                                averaged (summed, / W) once per window
///   ddp-sync-every-micro-batch   each micro-batch's gradient summed over the ranks as it is made:
///                                K collectives per window, the same result

#include <memory>
#include <string>

#include "core/recipe.h"
#include "implementations/torch/training_loop.h"

namespace gacc::distributed {

/// The recipe that runs `loop` on scenario.world_size ranks of the shared pool.
class DataParallelRecipe final : public Recipe {
 public:
  explicit DataParallelRecipe(std::unique_ptr<torch_recipes::TorchTrainingLoop> loop);

  std::string name() const override { return loop_->name(); }
  RecipeKind kind() const override { return loop_->kind(); }
  std::string summary() const override { return loop_->summary(); }
  std::string reference() const override { return loop_->reference(); }
  std::string explanation() const override { return loop_->explanation(); }
  std::string fix() const override { return loop_->fix(); }
  /// Two or more ranks, no more than the pool holds, not BatchNorm, and what the loop accepts.
  bool supports(const Scenario& scenario) const override;
  Trace run(const Scenario& scenario) const override;

 private:
  std::unique_ptr<torch_recipes::TorchTrainingLoop> loop_;
};

/// The correct data-parallel loops (rank side).
std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_accumulate();
std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_average();
std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_sync_every_micro_batch();

/// The largest world the shared pool runs (its configured ranks).
int shared_pool_ranks();

}  // namespace gacc::distributed
