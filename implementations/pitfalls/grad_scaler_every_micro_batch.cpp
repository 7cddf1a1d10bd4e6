// Broken! GradScaler's unscale_() and update() called after every micro-batch's backward.
//
// Reported in: pytorch/pytorch PR 36601 (the AMP gradient-accumulation example, written because
// NVIDIA/apex issue 439 showed users unscaling and updating in iterations that do not step).
//
// The bug and its fix, as `gacc explain grad-scaler-every-micro-batch` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class GradScalerEveryMicroBatch final : public PitfallLoop {
 public:
  GradScalerEveryMicroBatch()
      : PitfallLoop(
            {"grad-scaler-every-micro-batch",
             "under fp16, GradScaler's unscale_() and update() after every micro-batch instead of once per "
             "step",
             "pytorch/pytorch PR 36601; NVIDIA/apex issue 439",
             "After each backward the loop calls scaler.unscale_(optimizer) (to log or clip the gradient) "
             "and "
             "scaler.update(). But .grad holds the running sum of the window: every unscale_ divides the "
             "micro-batches accumulated so far by the scale again, so the first micro-batch's share ends up "
             "divided by the scale K + 1 times and the last one's twice; and the scale itself is backed off "
             "or grown K + 1 times per optimizer step, so growth_interval counts micro-batches.",
             "for i, micro in enumerate(window):\n"
             "    scaler.scale(loss(micro) / window_elements).backward()   # only this per micro-batch\n"
             "scaler.unscale_(optimizer)      # once, in the iteration that steps\n"
             "torch.nn.utils.clip_grad_norm_(params, max_norm)\n"
             "scaler.step(optimizer)\n"
             "scaler.update()                 # once per optimizer step"}) {}

  bool accepts(const Scenario& scenario) const override { return scenario.precision == Precision::fp16; }

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    state.scaler->unscale_(state.optimizer);  // Broken! divides the whole running sum by the scale
    state.scaler->update();                   // Broken! the scale changes mid-window
  }
};

}  // namespace

std::unique_ptr<Recipe> grad_scaler_every_micro_batch() {
  return std::make_unique<GradScalerEveryMicroBatch>();
}

}  // namespace gacc::pitfalls
