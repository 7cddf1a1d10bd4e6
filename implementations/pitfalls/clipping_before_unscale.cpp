// Broken! Under fp16 loss scaling, clip_grad_norm_ runs on the scaled gradient, before unscale_.
//
// Reported in: pytorch/examples issue 1196 (minGPT-ddp trainer); rwth-i6/returnn issue 1590.
//
// The bug and its fix, as `gacc explain clipping-before-unscale` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ClippingBeforeUnscale final : public PitfallLoop {
 public:
  ClippingBeforeUnscale()
      : PitfallLoop(
            {"clipping-before-unscale",
             "under fp16 loss scaling, the window's gradient clipped while still multiplied by the loss "
             "scale",
             "pytorch/examples issue 1196; rwth-i6/returnn issue 1590",
             "The accumulated gradients are clipped before GradScaler unscales them, so clip_grad_norm_ "
             "measures the scaled norm (65536 times the true one, say) and shrinks the gradient to max_norm "
             "in scaled units; scaler.step() then divides by the scale once more. In effect the clipping "
             "threshold is max_norm / scale: nearly every step is clipped to a tiny gradient, and training "
             "stalls — while the logged gradient norm looks enormous.",
             "for micro in window:\n"
             "    scaler.scale(loss(micro) / window_elements).backward()\n"
             "scaler.unscale_(optimizer)                        # first: the true gradient\n"
             "torch.nn.utils.clip_grad_norm_(params, max_norm)\n"
             "scaler.step(optimizer)                            # knows it is unscaled already\n"
             "scaler.update()"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.precision == Precision::fp16 && scenario.clipping.kind != ClippingKind::none;
  }

 protected:
  void end_window(torch_recipes::LoopState& state) const override {
    const double norm = clip_gradients(state);  // Broken! the gradients are still scaled
    state.scaler->unscale_(state.optimizer);
    optimizer_step(state, norm);
    schedule_step(state);
    zero_grad(state);
  }
};

}  // namespace

std::unique_ptr<Recipe> clipping_before_unscale() { return std::make_unique<ClippingBeforeUnscale>(); }

}  // namespace gacc::pitfalls
