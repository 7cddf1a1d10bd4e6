#include "implementations/cuda/accumulate.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "implementations/cuda/cuda_check.h"

namespace gacc::cuda {
namespace {

// A grid-stride loop: 256 threads per block (8 warps, full occupancy on sm_90 at this register
// count), and at most 4 blocks per SM's worth of work per pass.
constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 132 * 4;

__global__ void accumulate_fp32_kernel(float* __restrict__ acc, const float* __restrict__ grad,
                                       int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    acc[i] = __fmaf_rn(scale, grad[i], acc[i]);
  }
}

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

void accumulate_fp32(float* acc, const float* grad, int64_t n, float scale) {
  if (n < 0) throw std::invalid_argument("accumulate_fp32: negative size " + std::to_string(n));
  if (n == 0) return;
  if (acc == nullptr || grad == nullptr) throw std::invalid_argument("accumulate_fp32: null pointer");
  const int64_t blocks = std::min<int64_t>((n + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
  accumulate_fp32_kernel<<<static_cast<unsigned>(blocks), kThreadsPerBlock>>>(acc, grad, n, scale);
  GACC_CUDA_CHECK_LAUNCH();
  GACC_CUDA_CHECK(cudaDeviceSynchronize());
}

void accumulate_fp32_cpu(float* acc, const float* grad, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) acc[i] = std::fma(scale, grad[i], acc[i]);
}

}  // namespace gacc::cuda
