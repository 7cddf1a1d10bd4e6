// Broken! Under fp16 loss scaling, the window's loss is recorded from the scaled micro-batch losses.
//
// Reported in: fastai/fastai issue 3048 (gradient accumulation with mixed precision logs the loss
// multiplied by the loss scale).
//
// The bug and its fix, as `gacc explain scaled-loss-reported` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ScaledLossReported final : public PitfallLoop {
 public:
  ScaledLossReported()
      : PitfallLoop(
            {"scaled-loss-reported",
             "under fp16, the window's loss summed from the scaled micro-batch losses: the logged loss is "
             "multiplied by the loss scale",
             "fastai/fastai issue 3048",
             "Each micro-batch's loss is multiplied by the loss scale for backward, and the loop adds that "
             "scaled value to the window's loss — in fastai the accumulation callback cancelled the step "
             "that would have unscaled it. The gradients are right, but the reported loss is thousands of "
             "times too large and jumps whenever the scale backs off or grows; anything driven by it (early "
             "stopping, ReduceLROnPlateau, loss-spike detection) acts on the scale, not on the model.",
             "scaled = scaler.scale(loss)\n"
             "scaled.backward()\n"
             "window_loss += loss.detach()     # the unscaled loss, never `scaled`"}) {}

  bool accepts(const Scenario& scenario) const override { return scenario.precision == Precision::fp16; }

 protected:
  torch::Tensor backward(torch_recipes::LoopState& state, int, const torch::Tensor& loss) const override {
    const torch::Tensor scaled = state.scaler->scale(loss);
    scaled.backward();
    return scaled.detach();  // Broken! what gets logged is the scaled loss
  }
};

}  // namespace

std::unique_ptr<Recipe> scaled_loss_reported() { return std::make_unique<ScaledLossReported>(); }

}  // namespace gacc::pitfalls
