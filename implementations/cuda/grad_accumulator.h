#pragma once
/// gacc's fused accumulation path on the GPU: one flat fp32 buffer in device memory, laid out as
/// make_layout says and split into buckets for the all-reduce. The semantics are the CPU twin's
/// (grad_accumulator_cpu.h), element for element:
///
///   accumulate(grads, scale)   buffer[i] = fma(scale, upcast(g[i]), buffer[i]) for a whole list of
///                              fp32, bf16 and fp16 gradients: one kernel launch per launch of the
///                              chunk plan (a few hundred tensors each), metadata by value, 16-byte
///                              vector loads and stores where the chunk is aligned, a scalar loop
///                              otherwise; a non-finite input sets a sticky flag in device memory
///   finalize(inv, max, clip)   unscale in place and per-chunk sums of squares in one pass (a read-only
///                              pass when inv is 1), one block adding the partial sums in a fixed
///                              order (deterministic) into the norm and clip_grad_norm_'s
///                              coefficient, and with `apply_clip` one more pass multiplying by it
///                              (skipped on the device when it is 1)
///   reset()                    zero the buffer and the flags
///
/// Everything runs asynchronously on the accumulator's stream; finalize and the readers synchronize
/// it. The elementwise results equal the CPU twin's bit for bit; the norm is a float64 sum in a
/// different (tree) order, so it equals the twin's to fp32 rounding, not bit for bit.
///
/// This header is CUDA-free: CPU code includes it without the toolkit's headers. Pointers handed to
/// accumulate must be device memory of the accumulator's device; a host pointer, another device's
/// pointer, a null or misaligned pointer, or a list that does not match the layout is refused with
/// std::invalid_argument before any launch.

#include <cstdint>
#include <memory>
#include <vector>

#include "implementations/cuda/accumulator_contract.h"
#include "implementations/cuda/chunk_plan.h"

namespace gacc::cuda {

/// CUDA devices usable here: 0 without a driver or a device (never throws).
int device_count();

/// The most tensors and chunks one launch's by-value metadata holds (the plan's limits may be lower).
constexpr int kMaxLaunchTensors = 110;
constexpr int kMaxLaunchBlocks = 320;

struct GradAccumulatorOptions {
  /// The chunk plan's limits; at most kMaxLaunchTensors / kMaxLaunchBlocks per launch.
  ChunkPlanLimits limits = {};
  /// Bucket size for the all-reduce, in elements (25 MiB of fp32 by default, DDP's default bucket).
  int64_t bucket_elements = int64_t{25} << 18;
  /// The CUDA device (-1: the current one) and stream (a cudaStream_t; null: the legacy default
  /// stream, the one LibTorch's default stream is, so the accumulator is ordered with LibTorch's work).
  int device = -1;
  void* stream = nullptr;
};

/// How accumulate checks its pointers. `full`: each is asked of CUDA (device memory of the
/// accumulator's device, its elements inside its allocation) — a few microseconds per gradient.
/// `trusted`: only what the list says (count, sizes, null, alignment) — for callers whose pointers
/// carry those guarantees already (the LibTorch adapter: a CUDA tensor knows its device and extent).
enum class PointerCheck { full, trusted };

class GradAccumulator {
 public:
  /// A zeroed device buffer for gradients of these sizes. Throws std::invalid_argument on a bad
  /// size or limit, std::runtime_error when CUDA fails (no device, out of memory).
  explicit GradAccumulator(std::vector<int64_t> sizes, GradAccumulatorOptions options = {});
  ~GradAccumulator();
  GradAccumulator(const GradAccumulator&) = delete;
  GradAccumulator& operator=(const GradAccumulator&) = delete;
  GradAccumulator(GradAccumulator&&) noexcept;
  GradAccumulator& operator=(GradAccumulator&&) noexcept;

  /// Adds scale * g for every gradient of the list (device pointers; the constructor's sizes, in
  /// order). Asynchronous. Throws before any launch on bad input (see the header's comment);
  /// std::logic_error after finalize without reset.
  void accumulate(const std::vector<GradientView>& grads, float scale,
                  PointerCheck check = PointerCheck::full);
  /// The same for gradients in host memory (a model on the CPU): they are packed into pinned host
  /// memory, copied to the device in one transfer, and accumulated from there. Synchronous.
  void accumulate_from_host(const std::vector<GradientView>& host_grads, float scale);

  /// Unscales by `inv_scale`, measures, and with `apply_clip` multiplies the buffer by the clip
  /// coefficient; see FinalizeResult. Synchronizes the stream to return the result. Once per
  /// window: a second call without reset throws std::logic_error. max_norm must be positive (+inf:
  /// no clipping).
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip = false);

  /// Zeroes the buffer and the flags, asynchronously.
  void reset();

  /// The sticky flag (synchronizes the stream).
  bool found_non_finite() const;

  /// The buffer in device memory, and a copy of it in host memory (synchronizes the stream).
  float* device_buffer();
  const float* device_buffer() const;
  std::vector<float> copy_to_host() const;

  const BufferLayout& layout() const;
  const std::vector<int64_t>& sizes() const { return layout().sizes; }
  int64_t offset(size_t index) const { return layout().offsets.at(index); }
  const std::vector<Bucket>& buckets() const;
  int device() const;
  void* stream() const;

  /// Waits for everything queued on the accumulator's stream.
  void synchronize() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace gacc::cuda
