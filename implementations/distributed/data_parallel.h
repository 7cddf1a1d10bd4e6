#pragma once
/// Data-parallel recipes: a LibTorch loop (implementations/torch/data_parallel_loops.h, or a
/// data-parallel pitfall derived from one) run as every rank of a c10d/Gloo process group through
/// the shared RankPool.

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

/// The largest world the shared pool runs (its configured ranks).
int shared_pool_ranks();

}  // namespace gacc::distributed
