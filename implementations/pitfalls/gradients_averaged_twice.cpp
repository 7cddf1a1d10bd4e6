// Broken! The loss is already normalized by the whole window's loss elements across the ranks, and
// the all-reduce averages over the ranks as well: the gradient is W times too small.
//
// Reported in: meta-pytorch/torchtune PR 2172 (global token normalization under FSDP/DDP, whose
// all-reduce divides by world_size again); sanderwood/bgpt issue 5 (the loss divided by world_size
// by hand before DDP's averaging).
//
// The bug and its fix, as `gacc explain gradients-averaged-twice` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class GradientsAveragedTwice final : public PitfallOf<torch_recipes::DdpAccumulateLoop> {
 public:
  GradientsAveragedTwice()
      : PitfallOf(
            {"gradients-averaged-twice",
             "data parallel: the loss divided by the window's loss elements over all ranks, and the "
             "gradients averaged over the ranks too: W times too small",
             "meta-pytorch/torchtune PR 2172; sanderwood/bgpt issue 5",
             "Global normalization divides each rank's summed loss by the loss elements (tokens) of the "
             "whole window on every rank, so the ranks' gradients already add up to the large batch's. "
             "DDP's all-reduce (and FSDP's reduce-scatter) then divides the sum by the world size once "
             "more. The step is W times too small — with Adam it hides in the normalization, with SGD it "
             "is a learning rate W times lower, and the run no longer matches the same global batch on "
             "fewer GPUs.",
             "tokens = all_reduce(local_tokens)          # the whole window, every rank\n"
             "loss = loss_sum / tokens\n"
             "loss.backward()                            # under DDP: gradients averaged over W\n"
             "for p in model.parameters():               # undo the average once: sum, not mean\n"
             "    p.grad *= world_size"}) {}

 protected:
  void synchronize_gradients(torch_recipes::LoopState& state) const override {
    DdpAccumulateLoop::synchronize_gradients(state);
    torch_recipes::divide_gradients_by_world(state);  // Broken! the loss was already global
  }
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> gradients_averaged_twice() {
  return std::make_unique<GradientsAveragedTwice>();
}

}  // namespace gacc::pitfalls
