// Broken! optimizer.step() (and zero_grad) after every micro-batch: the loss is scaled for
// accumulation, but the step is never gated on the window's end — K small steps of a K-times too
// small gradient instead of one large-batch step.
//
// Reported in: lucidrains/reformer-pytorch issue 97 ("optimizer.step() is called at every step and
// not after every gradient_accumulate steps"); huggingface/accelerate issue 435 (the gate inverted).
//
// The fix: step, schedule and zero_grad once per window, after its last micro-batch.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class OptimizerStepEveryMicroBatch final : public PitfallLoop {
 public:
  OptimizerStepEveryMicroBatch()
      : PitfallLoop("optimizer-step-every-micro-batch",
                    "optimizer.step() and zero_grad after every micro-batch, not once per window",
                    "lucidrains/reformer-pytorch issue 97; huggingface/accelerate issue 435") {}

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
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
