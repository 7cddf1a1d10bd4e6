// Broken! The window's last micro-batch gradient reaches the accumulator after the step: it leaks into the
// next window.
//
// Reported in: deepspeedai/DeepSpeed PR 7985.
//
// The bug and its fix, as `gacc explain last-micro-batch-leaks` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class LastMicroBatchLeaks final : public PitfallLoop {
 public:
  LastMicroBatchLeaks()
      : PitfallLoop(
            {"last-micro-batch-leaks",
             "the window's last micro-batch gradient reaches the accumulator after the step: it leaks into "
             "the next window",
             "deepspeedai/DeepSpeed PR 7985",
             "The loop folds each micro-batch's gradient into a separate fp32 accumulator after its "
             "backward, but at the window boundary the step runs before the last micro-batch is folded in: "
             "the optimizer misses it, and it is folded into the next window's accumulator instead.",
             "for micro in window:\n"
             "    (loss(micro) / window_elements).backward()\n"
             "    accumulator += param.grad; param.grad = None   # every micro-batch, the last one too\n"
             "param.grad = accumulator   # only now: reduce, clip, step"}) {}

 protected:
  void after_backward(torch_recipes::LoopState& state, int micro) const override {
    const auto& params = parameters(state);
    torch::NoGradGuard no_grad;
    if (state.buffers.empty()) {
      for (const auto& p : params) state.buffers.push_back(torch::zeros_like(p));
    }
    if (micro + 1 == state.micro_count) return;  // Broken! the boundary micro-batch is folded late
    materialize_gradients(params);
    for (size_t i = 0; i < params.size(); ++i) {
      state.buffers[i].add_(params[i].grad());
      params[i].grad().zero_();
    }
  }
  void end_window(torch_recipes::LoopState& state) const override {
    const auto& params = parameters(state);
    std::vector<torch::Tensor> boundary;
    {
      torch::NoGradGuard no_grad;
      materialize_gradients(params);
      for (size_t i = 0; i < params.size(); ++i) {
        boundary.push_back(params[i].grad().clone());
        params[i].grad().copy_(state.buffers[i]);  // the step sees the accumulator alone
      }
    }
    TorchTrainingLoop::end_window(state);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i)
      state.buffers[i].copy_(boundary[i]);  // ... into the next window
  }
};

}  // namespace

std::unique_ptr<Recipe> last_micro_batch_leaks() { return std::make_unique<LastMicroBatchLeaks>(); }

}  // namespace gacc::pitfalls
