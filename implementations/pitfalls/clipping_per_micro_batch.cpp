// Broken! Gradient clipping inside the micro-batch loop: clip_grad_norm_ runs after every backward,
// on the partial sum accumulated so far, instead of once on the window's gradient. Whenever
// clipping is active the result depends on the split, and the norm that matters (the window's)
// is never the one clipped.
//
// Reported in: huggingface/transformers issue 986 (clip_grad_norm_ called at every step of the
// accumulation loop in the examples).
//
// The fix: clip once, after the window's last backward (and after unscaling), before the step.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ClippingPerMicroBatch final : public PitfallLoop {
 public:
  ClippingPerMicroBatch()
      : PitfallLoop("clipping-per-micro-batch",
                    "clip_grad_norm_ / clip_grad_value_ after every micro-batch's backward, on a partial sum",
                    "huggingface/transformers issue 986") {}

  bool supports(const Scenario& scenario) const override {
    return TorchTrainingLoop::supports(scenario) && scenario.clipping.kind != ClippingKind::none;
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
