// Broken! zero_grad at the start of every micro-batch: each backward starts from zero, so the
// optimizer is handed only the last micro-batch's gradient (weighted by its share of the window) —
// no accumulation at all.
//
// Reported in: pytorch/torchtitan PR 3575 ("[rl][bug] Fix gradient accumulation zero grad": zero_grad
// called in fwd/bwd instead of at the optimizer step, "zeroing grad from all micro-batches except
// the last one"); also bytetriper/RAE issue 67 and huggingface/accelerate issue 1299.
//
// The fix: zero gradients once per window — after the optimizer step (or before the first
// micro-batch), never between micro-batches of the same window.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class ZeroGradEveryMicroBatch final : public PitfallLoop {
 public:
  ZeroGradEveryMicroBatch()
      : PitfallLoop("zero-grad-every-micro-batch",
                    "zero_grad before every micro-batch: only the last micro-batch's gradient survives",
                    "pytorch/torchtitan PR 3575; bytetriper/RAE issue 67") {}

 protected:
  void begin_micro_batch(torch_recipes::LoopState& state, int) const override {
    zero_grad(state);  // Broken! zero only once per window
  }
};

}  // namespace

std::unique_ptr<Recipe> zero_grad_every_micro_batch() { return std::make_unique<ZeroGradEveryMicroBatch>(); }

}  // namespace gacc::pitfalls
