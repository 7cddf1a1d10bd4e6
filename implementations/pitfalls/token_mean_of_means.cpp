// Broken! Each micro-batch's token mean, averaged over micro-batches: tokens of short micro-batches weigh
// more.
//
// Reported in: huggingface/transformers issue 24725, PR 34191.
//
// The bug and its fix, as `gacc explain token-mean-of-means` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class TokenMeanOfMeans final : public PitfallLoop {
 public:
  TokenMeanOfMeans()
      : PitfallLoop(
            {"token-mean-of-means",
             "each micro-batch's token mean, averaged over micro-batches: tokens of short micro-batches "
             "weigh more",
             "huggingface/transformers issue 24725, PR 34191",
             "Each micro-batch's cross-entropy is averaged over its own counted tokens, then the micro-batch "
             "means are averaged over the window. Sequences have different lengths and some targets are "
             "ignored, so micro-batches hold different token counts: a token in a short micro-batch weighs "
             "more than one in a long micro-batch, and a micro-batch without a counted token makes the loss "
             "0/0.",
             "tokens = sum(count_nonignored(micro) for micro in window)   # across ranks too (all-reduce)\n"
             "for micro in window:\n"
             "    loss = cross_entropy(logits, targets, ignore_index=-100, reduction='sum') / tokens\n"
             "    loss.backward()"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.loss.reduction == Reduction::token_mean;
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
