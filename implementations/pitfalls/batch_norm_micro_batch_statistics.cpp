// Broken! BatchNorm normalizes each micro-batch with its own statistics and updates running statistics K
// times per step.
//
// Reported in: PyTorch BatchNorm documentation; Hoffer et al. 2017 (ghost batch normalization).
//
// The bug and its fix, as `gacc explain batch-norm-micro-batch-statistics` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class BatchNormMicroBatchStatistics final : public PitfallLoop {
 public:
  BatchNormMicroBatchStatistics()
      : PitfallLoop(
            {"batch-norm-micro-batch-statistics",
             "BatchNorm normalizes each micro-batch with its own statistics and updates running statistics K "
             "times per step",
             "PyTorch BatchNorm documentation; Hoffer et al. 2017 (ghost batch normalization)",
             "BatchNorm in training mode normalizes each micro-batch with its own mean and variance and "
             "updates its running statistics once per micro-batch — K times per optimizer step. The loop is "
             "otherwise correct; BatchNorm simply is not a per-example function, so no accumulation equals "
             "the large batch. It equals ghost BatchNorm over virtual batches of the micro-batch size.",
             "model = replace_batch_norm(model, nn.LayerNorm or nn.GroupNorm)   # per-example normalization\n"
             "# or SyncBatchNorm over the whole window, or accept ghost-batch semantics knowingly"}) {}

  bool accepts(const Scenario& scenario) const override { return is_batch_coupled(scenario.model); }
};

}  // namespace

std::unique_ptr<Recipe> batch_norm_micro_batch_statistics() {
  return std::make_unique<BatchNormMicroBatchStatistics>();
}

}  // namespace gacc::pitfalls
