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
///                              in double, added in plan order) and clip_grad_norm_'s coefficient
///   reset()                    zero the buffer and the flag for the next window

#include <cstddef>
#include <cstdint>
#include <vector>

#include "implementations/cuda/chunk_plan.h"

namespace gacc::cuda {

enum class GradientType { fp32, bf16, fp16 };

/// One gradient: `numel` elements of `type` at `data` (host memory here).
struct GradientView {
  const void* data = nullptr;
  int64_t numel = 0;
  GradientType type = GradientType::fp32;
};

/// bf16 and fp16 bit patterns to fp32, exactly (every value of both formats is an fp32 value).
float upcast_bf16(uint16_t bits);
float upcast_fp16(uint16_t bits);

struct FinalizeResult {
  bool found_non_finite = false;  ///< some accumulated or unscaled value is inf or NaN
  float norm = 0.0f;              ///< global L2 norm after unscaling (NaN or inf if not finite)
  /// min(1, max_norm / (norm + 1e-6)), computed in fp32 as torch.nn.utils.clip_grad_norm_ does:
  /// multiply every gradient by it to clip (1: no clipping needed, or max_norm = +inf).
  float clip_coefficient = 1.0f;
};

class CpuGradAccumulator {
 public:
  /// A zeroed fp32 buffer for gradients of these sizes, laid out one after another.
  explicit CpuGradAccumulator(std::vector<int64_t> sizes, ChunkPlanLimits limits = {});

  /// Adds scale * g for every gradient of the list (its sizes must be the constructor's, in order).
  /// Throws std::invalid_argument on a count or size mismatch, a null pointer with elements, or a
  /// non-finite scale, before touching the buffer; std::logic_error after finalize without reset.
  void accumulate(const std::vector<GradientView>& grads, float scale);

  /// Unscales by `inv_scale` and measures; see FinalizeResult. Once per window: a second call
  /// without reset throws std::logic_error. max_norm must be positive (+inf: no clipping).
  FinalizeResult finalize(float inv_scale, float max_norm);

  void reset();

  bool found_non_finite() const { return found_non_finite_; }
  const std::vector<float>& buffer() const { return buffer_; }
  const std::vector<int64_t>& sizes() const { return sizes_; }
  /// Where gradient `index` starts in the buffer.
  int64_t offset(size_t index) const { return offsets_.at(index); }

 private:
  std::vector<int64_t> sizes_, offsets_;
  ChunkPlanLimits limits_;
  std::vector<PlannedLaunch> plan_;
  std::vector<float> buffer_;
  bool found_non_finite_ = false;
  bool finalized_ = false;
};

}  // namespace gacc::cuda
