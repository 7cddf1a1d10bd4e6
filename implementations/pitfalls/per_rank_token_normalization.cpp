// Broken! Each rank divides its loss by its own loss elements (tokens) and DDP averages the ranks:
// a token on a rank with few tokens weighs more than one on a rank with many.
//
// Reported in: pytorch/torchtitan PR 2206 (issue 1842: per-rank, per-micro-batch normalization under
// token imbalance).
//
// The bug and its fix, as `gacc explain per-rank-token-normalization` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class PerRankTokenNormalization final : public PitfallOf<torch_recipes::DdpAverageLoop> {
 public:
  PerRankTokenNormalization()
      : PitfallOf(
            {"per-rank-token-normalization",
             "data parallel: each rank normalizes by its own tokens (loss elements) and the ranks are "
             "averaged: tokens on short ranks weigh more",
             "pytorch/torchtitan PR 2206",
             "Each rank counts the tokens (or examples) of its own share of the window and divides its "
             "summed loss by that count; DDP then averages the ranks. With variable-length sequences, "
             "ignored targets or uneven shares the ranks hold different counts, so the result is a mean "
             "of per-rank means: a token on a rank with few tokens weighs more than one on a rank with "
             "many, and a rank without a counted token divides by zero. The count must be all-reduced "
             "before the first backward of the window.",
             "local = sum(count_nonignored(micro) for micro in window)\n"
             "tokens = all_reduce(torch.tensor(local))          # every rank's tokens\n"
             "for micro in window:\n"
             "    loss = ce(logits, targets, reduction='sum') / tokens * world_size   # DDP averages\n"
             "    loss.backward()"}) {}

  bool accepts(const Scenario& scenario) const override { return scenario.loss.reduction != Reduction::sum; }

 protected:
  int64_t window_loss_elements(torch_recipes::LoopState&, int64_t local) const override {
    return local;  // Broken! this rank's count, not the window's
  }
  torch::Tensor micro_batch_loss(torch_recipes::LoopState& state, int micro, const torch::Tensor& summed,
                                 int64_t micro_elements) const override {
    // The rank's own mean (its count is the denominator already): no factor of W.
    return TorchTrainingLoop::micro_batch_loss(state, micro, summed, micro_elements);
  }
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> per_rank_token_normalization() {
  return std::make_unique<PerRankTokenNormalization>();
}

}  // namespace gacc::pitfalls
