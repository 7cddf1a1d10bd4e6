#pragma once
/// `fused-accumulator-cpu`: the correct loop with gacc's own accumulation path (the CPU twin of the
/// fused GradAccumulator, implementations/cuda/grad_accumulator_cpu.h) in place of autograd's .grad
/// accumulation. After each micro-batch's backward its gradients go into one flat fp32 buffer and
/// .grad is released; at the window's end, without loss scaling, finalize measures the global norm,
/// yields clip_grad_norm_'s coefficient and applies it to the buffer, and the buffer becomes the
/// gradient the optimizer steps with. Under fp16 the buffer goes through GradScaler's unscale_ as
/// in the base loop. `fused-accumulator-gpu` (fused_accumulator_gpu_loop.h) is the same loop on the
/// GPU's accumulator.

#include <memory>

#include "implementations/cuda/accumulator_contract.h"
#include "implementations/torch/training_loop.h"

namespace gacc::torch_recipes {

/// The flat buffer a FusedAccumulatorLoop drives: the CPU twin's or the GPU's. Gradients come from
/// the model's fp32 .grad tensors in host memory.
class FlatGradientBuffer {
 public:
  virtual ~FlatGradientBuffer() = default;
  virtual void accumulate(const std::vector<cuda::GradientView>& host_grads, float scale) = 0;
  virtual cuda::FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) = 0;
  /// The buffer in host memory, laid out as cuda::make_layout says: the twin's own, the GPU's
  /// copied out (valid until the next call).
  virtual const float* host_data() = 0;
  virtual const cuda::BufferLayout& layout() const = 0;
};

class FusedAccumulatorLoop : public TorchTrainingLoop {
 public:
  std::string name() const override { return "fused-accumulator-cpu"; }
  std::string summary() const override;

 protected:
  /// A zeroed buffer for gradients of these sizes: the CPU twin's here.
  virtual std::shared_ptr<FlatGradientBuffer> make_buffer(std::vector<int64_t> sizes) const;

  void begin_micro_batch(LoopState& state, int micro) const override;
  void after_backward(LoopState& state, int micro) const override;
  void end_window(LoopState& state) const override;
};

}  // namespace gacc::torch_recipes
