#pragma once
/// The thin LibTorch adapter over the fused accumulator: gradients as tensors in, the buffer's
/// slots as tensors out. CPU tensors go to the CPU twin, CUDA tensors to the GPU's GradAccumulator
/// (on the device of the first gradient, on the legacy default stream, where LibTorch's default
/// stream runs). Every tensor is checked before anything runs, with a message naming it:
/// undefined, an unsupported dtype (float32, bfloat16 and float16 are supported), another device,
/// not contiguous, a size that does not match its slot.

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "implementations/cuda/accumulator_contract.h"

namespace gacc::cuda {

class TensorGradAccumulator {
 public:
  /// A zeroed buffer for gradients of these element counts on `device` (CPU, or CUDA where gacc was
  /// built with nvcc). Throws std::invalid_argument for another device type, or CUDA without it.
  TensorGradAccumulator(std::vector<int64_t> sizes, torch::Device device);
  ~TensorGradAccumulator();
  TensorGradAccumulator(const TensorGradAccumulator&) = delete;
  TensorGradAccumulator& operator=(const TensorGradAccumulator&) = delete;

  /// buffer += scale * g for each gradient (any shape with its slot's element count).
  void accumulate(const std::vector<torch::Tensor>& grads, float scale);
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip = false);
  void reset();
  bool found_non_finite() const;

  /// Slot `index` as a float32 tensor of `shape` viewing the buffer (valid while the accumulator
  /// lives and until the next reset changes it).
  torch::Tensor slot(size_t index, at::IntArrayRef shape);
  const BufferLayout& layout() const;
  torch::Device device() const { return device_; }

  /// The accumulator behind the adapter (opaque: the CPU twin, or the GPU's GradAccumulator).
  struct Backend;

 private:
  std::unique_ptr<Backend> backend_;
  torch::Device device_;
};

}  // namespace gacc::cuda
