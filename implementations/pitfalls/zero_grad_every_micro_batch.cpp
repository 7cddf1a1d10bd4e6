// Broken! Zero_grad before every micro-batch: only the last micro-batch's gradient survives.
//
// Reported in: pytorch/torchtitan PR 3575; bytetriper/RAE issue 67; huggingface/accelerate issue 1299.
//
// The bug and its fix, as `gacc explain zero-grad-every-micro-batch` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ZeroGradEveryMicroBatch final : public PitfallLoop {
 public:
  ZeroGradEveryMicroBatch()
      : PitfallLoop({"zero-grad-every-micro-batch",
                     "zero_grad before every micro-batch: only the last micro-batch's gradient survives",
                     "pytorch/torchtitan PR 3575; bytetriper/RAE issue 67; huggingface/accelerate issue 1299",
                     "zero_grad runs inside the micro-batch loop, so each backward starts from zero and the "
                     "optimizer is handed only the last micro-batch's gradient (weighted by its share of the "
                     "window): no accumulation at all, and a large batch's worth of compute for one "
                     "micro-batch's gradient.",
                     "for window in windows:\n"
                     "    for micro in window:\n"
                     "        (loss(micro) / window_elements).backward()   # no zero_grad here\n"
                     "    optimizer.step()\n"
                     "    optimizer.zero_grad()                         # once per window"}) {}

 protected:
  void begin_micro_batch(torch_recipes::LoopState& state, int) const override {
    zero_grad(state);  // Broken! zero only once per window
  }
};

}  // namespace

std::unique_ptr<Recipe> zero_grad_every_micro_batch() { return std::make_unique<ZeroGradEveryMicroBatch>(); }

}  // namespace gacc::pitfalls
