// Broken! Each rank's loss is its own share's mean, and the ranks' gradients are summed but never
// divided by W: the gradient is W times too large.
//
// Reported in: neuralmagic/sparseml PR 135 (the loss multiplied by world_size on top of DDP's
// averaging: world_size times larger gradients).
//
// The bug and its fix, as `gacc explain gradients-not-averaged` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class GradientsNotAveraged final : public PitfallOf<torch_recipes::DdpAverageLoop> {
 public:
  GradientsNotAveraged()
      : PitfallOf(
            {"gradients-not-averaged",
             "data parallel: each rank's loss is the mean of its own share, and the gradients are summed "
             "over the ranks without dividing by W: W times too large",
             "neuralmagic/sparseml PR 135",
             "Each rank's loss is the mean over its own share of the window (as with DDP), which makes "
             "every rank's gradient an estimate of the whole window's. Those must be averaged over the "
             "ranks; summing them (an all_reduce(SUM) without the division, or the loss multiplied by "
             "world_size on top of DDP's average) makes the step W times too large, and changing the "
             "number of GPUs changes the effective learning rate.",
             "loss = loss_sum / (window_elements / world_size)   # this rank's mean\n"
             "loss.backward()\n"
             "for p in model.parameters():\n"
             "    dist.all_reduce(p.grad)                        # SUM\n"
             "    p.grad /= world_size                           # ... then the mean over ranks"}) {}

 protected:
  void synchronize_gradients(torch_recipes::LoopState& state) const override {
    TorchTrainingLoop::synchronize_gradients(state);  // Broken! summed, never divided by W
  }
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> gradients_not_averaged() {
  return std::make_unique<GradientsNotAveraged>();
}

}  // namespace gacc::pitfalls
