// Broken! A micro-batch whose gradient is not finite is discarded, with the window's sum so far,
// and the window still steps on what remains.
//
// Reported in: mflux-community/mflux PR 447 (review of its gradient-accumulation loop: a non-finite
// micro-batch clears the accumulated gradients, and the window boundary still steps).
//
// The bug and its fix, as `gacc explain overflowing-micro-batch-discarded` prints them, are the
// description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class OverflowingMicroBatchDiscarded final : public PitfallLoop {
 public:
  OverflowingMicroBatchDiscarded()
      : PitfallLoop(
            {"overflowing-micro-batch-discarded",
             "under fp16, a micro-batch whose gradient overflowed is thrown away with the sum before it, and "
             "the window still steps",
             "mflux-community/mflux PR 447",
             "After each backward the loop checks the gradient; when a micro-batch overflowed it clears the "
             "accumulated gradient and carries on, and the window boundary still steps on the micro-batches "
             "that came after — a gradient of part of the window, divided as if it were all of it. "
             "GradScaler "
             "never sees the overflow, so the loss scale is never backed off and the same micro-batches keep "
             "overflowing. Under dynamic loss scaling an overflow anywhere in the window skips the whole "
             "step and backs the scale off once.",
             "for micro in window:\n"
             "    scaler.scale(loss(micro) / window_elements).backward()   # keep even a non-finite one\n"
             "scaler.unscale_(optimizer)\n"
             "torch.nn.utils.clip_grad_norm_(params, max_norm)\n"
             "scaler.step(optimizer)     # skips the whole step when any gradient is not finite\n"
             "scaler.update()            # and backs the scale off once"}) {}

  bool accepts(const Scenario& scenario) const override { return scenario.precision == Precision::fp16; }

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    torch::NoGradGuard no_grad;
    materialize_gradients(parameters(state));
    bool finite = true;
    for (const auto& p : parameters(state)) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
    if (finite) return;
    for (const auto& p : parameters(state)) p.grad().zero_();  // Broken! the window goes on without it
  }
};

}  // namespace

std::unique_ptr<Recipe> overflowing_micro_batch_discarded() {
  return std::make_unique<OverflowingMicroBatchDiscarded>();
}

}  // namespace gacc::pitfalls
