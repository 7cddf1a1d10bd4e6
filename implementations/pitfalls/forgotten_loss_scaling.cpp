// Broken! Backward on each micro-batch's own mean loss, never divided by K (or weighted by its share).
//
// Reported in: hirofumi0810/neural_sp issue 168; agokrani/distillKitPlus issue 5; karpathy/nanoGPT issue 206.
//
// The bug and its fix, as `gacc explain forgotten-loss-scaling` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ForgottenLossScaling final : public PitfallLoop {
 public:
  ForgottenLossScaling()
      : PitfallLoop(
            {"forgotten-loss-scaling",
             "backward on each micro-batch's own mean loss, never divided by K (or weighted by its share)",
             "hirofumi0810/neural_sp issue 168; agokrani/distillKitPlus issue 5; karpathy/nanoGPT issue 206",
             "Every micro-batch's loss goes to backward as its own mean, so the accumulated gradient is the "
             "sum of K micro-batch means: about K times the large-batch gradient, and mis-weighted when "
             "micro-batch sizes differ. SGD then steps K times too far; Adam hides most of it, but not the "
             "loss, the norm or clipping.",
             "loss = criterion(model(x), y, reduction='sum') / window_elements   # window_elements: all "
             "micro-batches (and ranks)\n"
             "# equal micro-batches: criterion(model(x), y) / K\n"
             "loss.backward()"}) {}

 protected:
  torch::Tensor micro_batch_loss(torch_recipes::LoopState& state, int, const torch::Tensor& summed,
                                 int64_t micro_elements) const override {
    if (state.scenario.loss.reduction == Reduction::sum) return summed;
    return summed / static_cast<double>(micro_elements);  // Broken! the micro-batch's own mean, never / K
  }
};

}  // namespace

std::unique_ptr<Recipe> forgotten_loss_scaling() { return std::make_unique<ForgottenLossScaling>(); }

}  // namespace gacc::pitfalls
