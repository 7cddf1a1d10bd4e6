// Broken! Mean-of-means token normalization: each micro-batch's cross-entropy is averaged over its
// own counted tokens, then the micro-batch means are averaged over the window. With sequences of
// different lengths (and ignored targets) micro-batches hold different token counts, so tokens in
// short micro-batches weigh more than tokens in long ones — and a micro-batch without a counted
// token makes the loss 0/0.
//
// Reported in: huggingface/transformers issue 24725 and the fix in PR 34191 ("Fix Gradient
// Accumulation issue": normalize by the number of items in the whole batch), with the Unsloth
// write-up of the same bug.
//
// The fix: sum each micro-batch's token losses and divide by the window's total token count
// (across ranks), as TorchTrainingLoop::micro_batch_loss does.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class TokenMeanOfMeans final : public PitfallLoop {
 public:
  TokenMeanOfMeans()
      : PitfallLoop("token-mean-of-means",
                    "each micro-batch's token mean, averaged over micro-batches: tokens of short micro-batches "
                    "weigh more",
                    "huggingface/transformers issue 24725, PR 34191") {}

  bool supports(const Scenario& scenario) const override {
    return TorchTrainingLoop::supports(scenario) && scenario.loss.reduction == Reduction::token_mean;
  }

 protected:
  torch::Tensor micro_batch_loss(torch_recipes::LoopState& state, int, const torch::Tensor& summed,
                                 int64_t micro_tokens) const override {
    // Broken! the micro-batch's own token mean, / the window's micro-batch count
    return summed / static_cast<double>(micro_tokens) / static_cast<double>(state.micro_count);
  }
};

}  // namespace

std::unique_ptr<Recipe> token_mean_of_means() { return std::make_unique<TokenMeanOfMeans>(); }

}  // namespace gacc::pitfalls
