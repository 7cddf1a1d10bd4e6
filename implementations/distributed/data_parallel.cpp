#include "implementations/distributed/data_parallel.h"

#include "implementations/distributed/rank_pool.h"

namespace gacc::distributed {

DataParallelRecipe::DataParallelRecipe(std::unique_ptr<torch_recipes::TorchTrainingLoop> loop)
    : loop_(std::move(loop)) {}

bool DataParallelRecipe::supports(const Scenario& scenario) const {
  // BatchNorm's running statistics are per replica under data parallelism (DDP broadcasts rank 0's
  // before each forward; SyncBatchNorm shares the batch statistics): neither is modelled yet.
  return scenario.world_size >= 2 && scenario.world_size <= shared_pool_ranks() &&
         !is_batch_coupled(scenario.model) && loop_->accepts(scenario);
}

Trace DataParallelRecipe::run(const Scenario& scenario) const { return shared_pool().run(loop_->name(), scenario); }

}  // namespace gacc::distributed
