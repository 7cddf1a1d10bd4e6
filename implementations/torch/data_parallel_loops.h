#pragma once
/// The correct data-parallel loops: TorchTrainingLoop run as every rank of a process group
/// (run_rank), in the conventions a real stack picks between. They run through
/// implementations/distributed (DataParallelRecipe on the shared rank pool); the data-parallel
/// pitfalls (implementations/pitfalls/) derive from them.
///   ddp-accumulate               loss / window elements (summed over ranks), gradients summed over
///                                the ranks once per window (no_sync until the last micro-batch)
///   ddp-average                  DDP's own convention: loss / (window elements / W), gradients
///                                averaged (summed, / W) once per window
///   ddp-sync-every-micro-batch   each micro-batch's gradient summed over the ranks as it is made:
///                                K collectives per window, the same result

#include <string>

#include "implementations/torch/training_loop.h"

namespace gacc::torch_recipes {

/// The base loop as it is: the window's loss elements summed over the ranks, the accumulated
/// gradients summed over the ranks once per window.
class DdpAccumulateLoop : public TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-accumulate"; }
  std::string summary() const override;
};

/// DDP's convention: each rank's loss is its own share's mean (loss x W / window elements, exact for
/// uneven shares), and the all-reduce averages (sums, then divides by W).
class DdpAverageLoop : public TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-average"; }
  std::string summary() const override;

 protected:
  torch::Tensor micro_batch_loss(LoopState& state, int micro, const torch::Tensor& summed,
                                 int64_t micro_elements) const override;
  void synchronize_gradients(LoopState& state) const override;
  /// The ranks' mean of their reported losses.
  double reported_loss(LoopState& state) const override;
};

/// Divides every gradient by the world size: DDP's averaging after its sum.
void divide_gradients_by_world(LoopState& state);

/// Each micro-batch's gradient summed over the ranks as soon as it is made (no no_sync): K
/// collectives per window instead of one, the same sum.
class DdpSyncEveryMicroBatchLoop : public TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-sync-every-micro-batch"; }
  std::string summary() const override;

 protected:
  void begin_micro_batch(LoopState& state, int micro) const override;
  void after_backward(LoopState& state, int micro) const override;
  void synchronize_gradients(LoopState& state) const override;
};

}  // namespace gacc::torch_recipes
