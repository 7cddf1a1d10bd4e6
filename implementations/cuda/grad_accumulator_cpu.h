#pragma once
/// The CPU twin of gacc's fused accumulation path: GradAccumulator's semantics in plain C++. It is
/// the CPU production path, the bit-exact reference for the GPU's elementwise kernels, and what CI
/// runs. Raw pointers and sizes in, no LibTorch: a thin adapter takes tensors.
///
///   accumulate(grads, scale)   buffer[i] += scale * upcast(g[i]) for a whole list of fp32, bf16 or
///                              fp16 gradients (one fused multiply-add per element, in fp32), walking
///                              the chunk plan the GPU launches; a non-finite input sets a sticky flag
///   finalize(inv_scale, max)   once per window: unscale in place (fp32 multiply), the non-finite
///                              check, the global L2 norm (a deterministic reduction: per-chunk sums
///                              in double, added in plan order) and clip_grad_norm_'s coefficient,
///                              applied to the buffer when asked (fp32 multiply)
///   reset()                    zero the buffer and the flag for the next window

#include <cstddef>
#include <cstdint>
#include <vector>

#include "implementations/cuda/accumulator_contract.h"
#include "implementations/cuda/chunk_plan.h"

namespace gacc::cuda {

class CpuGradAccumulator {
 public:
  /// A zeroed fp32 buffer for gradients of these sizes, laid out as make_layout says.
  explicit CpuGradAccumulator(std::vector<int64_t> sizes, ChunkPlanLimits limits = {});

  /// Adds scale * g for every gradient of the list (its sizes must be the constructor's, in order).
  /// Throws std::invalid_argument on a count or size mismatch, a null pointer with elements, or a
  /// non-finite scale, before touching the buffer; std::logic_error after finalize without reset.
  void accumulate(const std::vector<GradientView>& grads, float scale);

  /// Unscales by `inv_scale` and measures; see FinalizeResult. With `apply_clip`, also multiplies
  /// the buffer by the clip coefficient when it is not 1. Once per window: a second call without
  /// reset throws std::logic_error. max_norm must be positive (+inf: no clipping).
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip = false);

  void reset();

  bool found_non_finite() const { return found_non_finite_; }
  const std::vector<float>& buffer() const { return buffer_; }
  const std::vector<int64_t>& sizes() const { return layout_.sizes; }
  const BufferLayout& layout() const { return layout_; }
  /// Where gradient `index` starts in the buffer.
  int64_t offset(size_t index) const { return layout_.offsets.at(index); }

 private:
  BufferLayout layout_;
  ChunkPlanLimits limits_;
  std::vector<PlannedLaunch> plan_;
  std::vector<float> buffer_;
  bool found_non_finite_ = false;
  bool finalized_ = false;
};

}  // namespace gacc::cuda
