#pragma once
/// `fused-accumulator-cpu`: the correct loop with gacc's own accumulation path (the CPU twin of the
/// fused GradAccumulator, implementations/cuda/grad_accumulator_cpu.h) in place of autograd's .grad
/// accumulation. After each micro-batch's backward its gradients go into one flat fp32 buffer and
/// .grad is released; at the window's end, without loss scaling, finalize measures the global norm
/// and yields clip_grad_norm_'s coefficient, and the buffer becomes the gradient the optimizer
/// steps with. Under fp16 the buffer goes through GradScaler's unscale_ as in the base loop.

#include "implementations/torch/training_loop.h"

namespace gacc::torch_recipes {

class FusedAccumulatorLoop : public TorchTrainingLoop {
 public:
  std::string name() const override { return "fused-accumulator-cpu"; }
  std::string summary() const override;

 protected:
  void begin_micro_batch(LoopState& state, int micro) const override;
  void after_backward(LoopState& state, int micro) const override;
  void end_window(LoopState& state) const override;
};

}  // namespace gacc::torch_recipes
