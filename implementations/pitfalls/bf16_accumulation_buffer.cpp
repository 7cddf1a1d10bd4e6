// Broken! Micro-batch gradients summed into a bfloat16 buffer: every partial sum rounded to 8 bits.
//
// Reported in: deepspeedai/DeepSpeed issue 1800.
//
// The bug and its fix, as `gacc explain bf16-accumulation-buffer` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class Bf16AccumulationBuffer final : public PitfallLoop {
 public:
  Bf16AccumulationBuffer()
      : PitfallLoop(
            {"bf16-accumulation-buffer",
             "micro-batch gradients summed into a bfloat16 buffer: every partial sum rounded to 8 bits",
             "deepspeedai/DeepSpeed issue 1800",
             "After each backward the micro-batch's gradient is added into a bfloat16 accumulator, which "
             "rounds every partial sum to 8 significant bits; the optimizer steps on the widened buffer. "
             "Each addition loses up to 2^-9 relative — far more than fp32 accumulation — and the loss grows "
             "with K and with cancellation between micro-batches.",
             "accumulator = torch.zeros_like(param, dtype=torch.float32)   # fp32 whatever the compute "
             "dtype\n"
             "accumulator += micro_grad.float()"}) {}

 protected:
  void after_backward(torch_recipes::LoopState& state, int micro) const override {
    const auto& params = parameters(state);
    torch::NoGradGuard no_grad;
    if (micro == 0) {
      state.buffers.clear();
      for (const auto& p : params) state.buffers.push_back(torch::zeros_like(p, torch::kBFloat16));
    }
    materialize_gradients(params);
    for (size_t i = 0; i < params.size(); ++i) {
      // Broken! bf16 + bf16, rounded to bf16
      state.buffers[i] = state.buffers[i] + params[i].grad().to(torch::kBFloat16);
      params[i].grad().zero_();
    }
    if (micro + 1 == state.micro_count) {
      for (size_t i = 0; i < params.size(); ++i)
        params[i].grad().copy_(state.buffers[i].to(params[i].scalar_type()));
    }
  }
};

}  // namespace

std::unique_ptr<Recipe> bf16_accumulation_buffer() { return std::make_unique<Bf16AccumulationBuffer>(); }

}  // namespace gacc::pitfalls
