#pragma once
/// The CUDA accumulation path: the first elementwise kernel and its CPU twin. The fused
/// multi-tensor GradAccumulator (buckets, bf16/fp16 inputs, finalize, NCCL) builds on these.
/// This header is CUDA-free: CPU code and tests include it without the toolkit's headers.

#include <cstdint>

namespace gacc::cuda {

/// CUDA devices usable here: 0 without a driver or a device (never throws).
int device_count();

/// acc[i] = fma(scale, grad[i], acc[i]) for i < n, on the device (pointers into device memory),
/// on the default stream, synchronously. Throws std::runtime_error naming the failing CUDA call.
void accumulate_fp32(float* acc, const float* grad, int64_t n, float scale);

/// The CPU twin of accumulate_fp32, bit for bit: the same fused multiply-add per element.
void accumulate_fp32_cpu(float* acc, const float* grad, int64_t n, float scale);

}  // namespace gacc::cuda
