// Broken! Clip_grad_norm_ / clip_grad_value_ after every micro-batch's backward, on a partial sum.
//
// Reported in: huggingface/transformers issue 986.
//
// The bug and its fix, as `gacc explain clipping-per-micro-batch` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ClippingPerMicroBatch final : public PitfallLoop {
 public:
  ClippingPerMicroBatch()
      : PitfallLoop(
            {"clipping-per-micro-batch",
             "clip_grad_norm_ / clip_grad_value_ after every micro-batch's backward, on a partial sum",
             "huggingface/transformers issue 986",
             "clip_grad_norm_ runs after every backward, on the partial sum accumulated so far, instead of "
             "once on the window's gradient. Whenever clipping is active the result depends on the split, "
             "and the norm that matters (the window's) is never the one clipped.",
             "for micro in window:\n"
             "    (loss(micro) / window_elements).backward()\n"
             "scaler.unscale_(optimizer)                        # mixed precision: unscale first\n"
             "torch.nn.utils.clip_grad_norm_(params, max_norm)  # once, on the whole window\n"
             "optimizer.step()"}) {}

  // Under fp16 the partial sums are scaled, and GradScaler refuses a second unscale_ before update:
  // this bug has no fp16 form of its own (clipping scaled gradients is clipping-before-unscale).
  bool accepts(const Scenario& scenario) const override {
    return scenario.clipping.kind != ClippingKind::none && scenario.precision != Precision::fp16;
  }

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    clip_gradients(state);  // Broken! clips a partial sum
  }
  void end_window(torch_recipes::LoopState& state) const override {
    optimizer_step(state, torch_recipes::gradient_norm(parameters(state)));  // no clipping here
    schedule_step(state);
    zero_grad(state);
  }
};

}  // namespace

std::unique_ptr<Recipe> clipping_per_micro_batch() { return std::make_unique<ClippingPerMicroBatch>(); }

}  // namespace gacc::pitfalls
