// Broken! Optimizer.step() and zero_grad after every micro-batch, not once per window.
//
// Reported in: lucidrains/reformer-pytorch issue 97; huggingface/accelerate issue 435.
//
// The bug and its fix, as `gacc explain optimizer-step-every-micro-batch` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class OptimizerStepEveryMicroBatch final : public PitfallLoop {
 public:
  OptimizerStepEveryMicroBatch()
      : PitfallLoop(
            {"optimizer-step-every-micro-batch",
             "optimizer.step() and zero_grad after every micro-batch, not once per window",
             "lucidrains/reformer-pytorch issue 97; huggingface/accelerate issue 435",
             "The loss is scaled for accumulation, but optimizer.step() and zero_grad run after every "
             "micro-batch: K small steps on K-times-too-small gradients instead of one large-batch step, K "
             "optimizer steps per window (Adam's step count and bias correction with them).",
             "for k, micro in enumerate(window):\n"
             "    (loss(micro) / window_elements).backward()\n"
             "    if k == len(window) - 1:        # the window's last micro-batch only\n"
             "        optimizer.step(); scheduler.step(); optimizer.zero_grad()"}) {}

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    unscale_gradients(state);
    optimizer_step(state, clip_gradients(state));  // Broken! inside the micro-batch loop
    zero_grad(state);
  }
  void end_window(torch_recipes::LoopState& state) const override { schedule_step(state); }
};

}  // namespace

std::unique_ptr<Recipe> optimizer_step_every_micro_batch() {
  return std::make_unique<OptimizerStepEveryMicroBatch>();
}

}  // namespace gacc::pitfalls
