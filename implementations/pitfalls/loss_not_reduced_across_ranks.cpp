// Broken! The window's loss is reported from rank 0's share alone, never reduced across the ranks.
//
// Reported in: karpathy/llm.c PR 551 (the PyTorch reference printed an unreduced DDP loss, which
// looked like a divergence between implementations).
//
// The bug and its fix, as `gacc explain loss-not-reduced-across-ranks` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class LossNotReducedAcrossRanks final : public PitfallOf<torch_recipes::DdpAverageLoop> {
 public:
  LossNotReducedAcrossRanks()
      : PitfallOf({"loss-not-reduced-across-ranks",
                   "data parallel: the logged loss is rank 0's own share, never averaged over the ranks",
                   "karpathy/llm.c PR 551",
                   "DDP averages the gradients, but the loss each rank computes is only its own share's. "
                   "Logging rank 0's value reports the loss of 1/W of the window: noisier than the large "
                   "batch's, biased whenever the ranks' shares differ, and different from a single-process "
                   "run of the same global batch — llm.c's authors took it for a divergence between their C "
                   "and PyTorch implementations.",
                   "window_loss = sum(micro_losses)                   # this rank's share\n"
                   "dist.all_reduce(window_loss, op=dist.ReduceOp.AVG)   # then log it"}) {}

 protected:
  double reported_loss(torch_recipes::LoopState& state) const override {
    return state.window_loss.item<double>();  // Broken! this rank's share only
  }
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> loss_not_reduced_across_ranks() {
  return std::make_unique<LossNotReducedAcrossRanks>();
}

}  // namespace gacc::pitfalls
