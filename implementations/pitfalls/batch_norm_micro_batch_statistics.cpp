// Broken! (by nature) BatchNorm in training mode under gradient accumulation: each micro-batch is
// normalized with its own mean and variance, and the running statistics are updated once per
// micro-batch — K times per optimizer step. The loop is otherwise correct; BatchNorm simply is not
// a per-example function, so no accumulation equals the large batch. It equals "ghost" BatchNorm
// over virtual batches of the micro-batch size, which the batch-norm property checks.
//
// Reported in: the documented non-equivalence (PyTorch's BatchNorm docs on batch statistics;
// Hoffer et al. 2017, "Train longer, generalize better", on ghost batch normalization); the classic
// answer to "why does accumulation change my results".
//
// The fix: LayerNorm, GroupNorm or RMSNorm where equivalence matters; otherwise a SyncBatchNorm over
// the whole window, or accept ghost-batch semantics knowingly.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class BatchNormMicroBatchStatistics final : public PitfallLoop {
 public:
  BatchNormMicroBatchStatistics()
      : PitfallLoop("batch-norm-micro-batch-statistics",
                    "BatchNorm normalizes each micro-batch with its own statistics and updates running "
                    "statistics K times per step",
                    "PyTorch BatchNorm documentation; Hoffer et al. 2017 (ghost batch normalization)") {}

  bool supports(const Scenario& scenario) const override {
    return TorchTrainingLoop::supports(scenario) && is_batch_coupled(scenario.model);
  }
};

}  // namespace

std::unique_ptr<Recipe> batch_norm_micro_batch_statistics() {
  return std::make_unique<BatchNormMicroBatchStatistics>();
}

}  // namespace gacc::pitfalls
