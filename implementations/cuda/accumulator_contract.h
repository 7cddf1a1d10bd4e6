#pragma once
/// What the fused accumulator's two implementations — the CUDA GradAccumulator
/// (grad_accumulator.h) and its CPU twin (grad_accumulator_cpu.h) — share, so that both take the
/// same inputs, refuse the same bad ones with the same messages, lay the buffer out the same way
/// and compute finalize's coefficient with the same formula. Plain C++: no CUDA, no LibTorch.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gacc::cuda {

enum class GradientType { fp32, bf16, fp16 };

/// Bytes per element of `type`.
int element_bytes(GradientType type);
const char* type_name(GradientType type);

/// One gradient: `numel` elements of `type` at `data` (host memory for the CPU twin, device memory
/// for the GPU).
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
  /// multiply every gradient by it to clip (1: no clipping needed, or max_norm = +inf; NaN when the
  /// norm is NaN, as PyTorch's).
  float clip_coefficient = 1.0f;
};

/// clip_grad_norm_'s coefficient from the fp32 norm: min(1, max_norm / (norm + 1e-6)) in fp32, NaN
/// passed through. The GPU's finalize kernel computes the same expression on the device.
float clip_coefficient(float norm, float max_norm);

/// The flat fp32 buffer: each gradient's slot starts on a 16-byte boundary (a multiple of
/// kSlotAlignment elements), so that the GPU's vector loads and stores apply to every slot; the
/// padding between slots is zero and stays zero.
constexpr int64_t kSlotAlignment = 4;

struct BufferLayout {
  std::vector<int64_t> sizes;    ///< elements per gradient, in order
  std::vector<int64_t> offsets;  ///< where each gradient's slot starts
  int64_t total = 0;             ///< elements in the buffer, padding included
};

/// The layout for gradients of `sizes` elements. Throws std::invalid_argument on a negative size.
BufferLayout make_layout(const std::vector<int64_t>& sizes);

/// A contiguous range of whole slots, all-reduced in one collective (NCCL on the GPU).
struct Bucket {
  int64_t begin = 0, end = 0;               ///< [begin, end) in the buffer's elements
  size_t first_tensor = 0, end_tensor = 0;  ///< the gradients it holds: [first_tensor, end_tensor)
};

/// Buckets of at most `bucket_elements` elements (a gradient larger than that gets a bucket of its
/// own), in gradient order, covering [0, layout.total) exactly once; no buckets for an empty
/// buffer. Throws std::invalid_argument when bucket_elements < 1.
std::vector<Bucket> plan_buckets(const BufferLayout& layout, int64_t bucket_elements);

/// Refuses, before anything is touched: a count or size mismatch against the layout, a null pointer
/// with elements, a pointer not aligned to its element size, a non-finite scale. Throws
/// std::invalid_argument with a message that names the gradient and the values.
void check_accumulate_arguments(const BufferLayout& layout, const std::vector<GradientView>& grads,
                                float scale);

/// Refuses a non-finite inverse scale or a max_norm that is not positive (std::invalid_argument),
/// and a second finalize without reset (std::logic_error).
void check_finalize_arguments(float inv_scale, float max_norm, bool already_finalized);

/// accumulate after finalize without reset: std::logic_error.
void check_not_finalized(bool finalized);

}  // namespace gacc::cuda
