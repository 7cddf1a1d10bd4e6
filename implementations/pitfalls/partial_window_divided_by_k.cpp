// Broken! Each micro-batch's mean divided by the configured K, also in a partial last window.
//
// Reported in: modelscope/ms-swift PR 10084; huggingface/transformers issue 2995.
//
// The bug and its fix, as `gacc explain partial-window-divided-by-k` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class PartialWindowDividedByK final : public PitfallLoop {
 public:
  PartialWindowDividedByK()
      : PitfallLoop({"partial-window-divided-by-k",
                     "each micro-batch's mean divided by the configured K, also in a partial last window",
                     "modelscope/ms-swift PR 10084; huggingface/transformers issue 2995",
                     "Every micro-batch's mean loss is divided by K, the configured accumulation steps. That "
                     "is right only when every window holds K micro-batches of equal size: the last, partial "
                     "window of an epoch (K' < K micro-batches) gets a gradient K'/K too small, and uneven "
                     "micro-batches are mis-weighted.",
                     "window_elements = sum(numel(micro) for micro in window)   # what this window holds\n"
                     "loss = criterion(model(x), y, reduction='sum') / window_elements"}) {}

 protected:
  torch::Tensor micro_batch_loss(torch_recipes::LoopState& state, int, const torch::Tensor& summed,
                                 int64_t micro_elements) const override {
    if (state.scenario.loss.reduction == Reduction::sum) return summed;
    // Broken! K is the configured accumulation steps, not what this window holds
    return summed / static_cast<double>(micro_elements) /
           static_cast<double>(state.scenario.accumulation_steps);
  }
};

}  // namespace

std::unique_ptr<Recipe> partial_window_divided_by_k() { return std::make_unique<PartialWindowDividedByK>(); }

}  // namespace gacc::pitfalls
