// Broken! Forgotten loss scaling: every micro-batch's loss goes to backward as it is, averaged over
// its own micro-batch only, so the accumulated gradient is the SUM of K micro-batch means — about
// K times the large-batch gradient (and a mis-weighted one when micro-batch sizes differ).
//
// Reported in: hirofumi0810/neural_sp issue 168 ("should divide loss by accum_grad_n_steps"),
// agokrani/distillKitPlus issue 5 (loss grows linearly with gradient_accumulation_steps), and
// karpathy/nanoGPT issue 206; the classic warning of every gradient-accumulation explainer.
//
// The fix: divide each micro-batch's summed loss by the whole window's loss elements (for equal
// sizes, the micro-batch mean divided by K), as TorchTrainingLoop::micro_batch_loss does.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ForgottenLossScaling final : public PitfallLoop {
 public:
  ForgottenLossScaling()
      : PitfallLoop("forgotten-loss-scaling",
                    "backward on each micro-batch's own mean loss, never divided by K (or weighted by its share)",
                    "hirofumi0810/neural_sp issue 168; agokrani/distillKitPlus issue 5") {}

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
