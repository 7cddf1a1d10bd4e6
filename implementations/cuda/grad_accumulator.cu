#include <cuda.h>  // driver API types only: cuMemGetAddressRange is reached through the runtime
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "implementations/cuda/cuda_check.h"
#include "implementations/cuda/grad_accumulator.h"

namespace gacc::cuda {
namespace {

// One block per chunk, 256 threads (8 warps); each thread moves 8 elements per step of the vector
// loop (two 16-byte loads of fp32 or one of bf16/fp16, and two 16-byte loads and stores of the
// buffer), so a chunk of 64Ki elements is 32 steps.
constexpr int kThreads = 256;
constexpr int kVector = 8;
/// Occupancy asked of ptxas: 4 resident blocks per SM leave 64 registers per thread, enough for
/// the 8-wide loop without spilling (without it ptxas aims at 8 blocks and spills at 32).
constexpr int kBlocksPerSm = 4;

/// One launch's metadata, passed by value (kernel parameters up to 32 KiB: CUDA 12.1+ on sm_70+;
/// gacc builds for sm_90). __grid_constant__ keeps it in the parameter bank: indexing it with a
/// block's entry does not copy it to local memory.
struct LaunchArgs {
  const void* src[kMaxLaunchTensors];
  float* dst[kMaxLaunchTensors];
  int64_t size[kMaxLaunchTensors];
  uint8_t type[kMaxLaunchTensors];
  uint8_t entry[kMaxLaunchBlocks];
  int64_t chunk[kMaxLaunchBlocks];
  int64_t chunk_elements;
  int64_t partial_base;  ///< finalize: this launch's first block's slot in the partial sums
};
static_assert(sizeof(LaunchArgs) <= 32764, "kernel parameters are limited to 32764 bytes");
static_assert(kMaxLaunchTensors <= 256, "entries are stored as bytes");

/// What finalize leaves on the device for the host to read.
struct DeviceResult {
  int found_non_finite;
  float norm;
  float clip_coefficient;
};

enum TypeCode : uint8_t { kFp32 = 0, kBf16 = 1, kFp16 = 2 };

__device__ __forceinline__ float bf16_to_float(uint32_t bits16) { return __uint_as_float(bits16 << 16); }
__device__ __forceinline__ float fp16_to_float(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));  // exact for every fp16 value
}

/// Eight gradient values at `src` (16-byte aligned), upcast exactly.
template <int Type>
__device__ __forceinline__ void load8(const void* src, float (&g)[kVector]) {
  if constexpr (Type == kFp32) {
    const float4 a = reinterpret_cast<const float4*>(src)[0];
    const float4 b = reinterpret_cast<const float4*>(src)[1];
    g[0] = a.x, g[1] = a.y, g[2] = a.z, g[3] = a.w, g[4] = b.x, g[5] = b.y, g[6] = b.z, g[7] = b.w;
  } else {
    const uint4 words = *reinterpret_cast<const uint4*>(src);
    const uint32_t w[4] = {words.x, words.y, words.z, words.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (Type == kBf16) {
        g[2 * k] = bf16_to_float(w[k] & 0xffffu);  // little endian: the lower half is the first
        g[2 * k + 1] = bf16_to_float(w[k] >> 16);
      } else {
        g[2 * k] = fp16_to_float(static_cast<uint16_t>(w[k] & 0xffffu));
        g[2 * k + 1] = fp16_to_float(static_cast<uint16_t>(w[k] >> 16));
      }
    }
  }
}

template <int Type>
__device__ __forceinline__ float load1(const void* src, int64_t i) {
  if constexpr (Type == kFp32) {
    return static_cast<const float*>(src)[i];
  } else if constexpr (Type == kBf16) {
    return bf16_to_float(static_cast<const uint16_t*>(src)[i]);
  } else {
    return fp16_to_float(static_cast<const uint16_t*>(src)[i]);
  }
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

/// dst[i] = fma(scale, upcast(src[i]), dst[i]) over [begin, end); whether this thread saw a
/// non-finite input. The same fused multiply-add per element as the CPU twin's std::fma.
template <int Type>
__device__ bool accumulate_chunk(float* __restrict__ dst, const void* __restrict__ src, int64_t begin,
                                 int64_t end, float scale) {
  constexpr int bytes = Type == kFp32 ? 4 : 2;
  const char* src_bytes = static_cast<const char*>(src);
  bool bad = false;
  int64_t scalar_begin = begin;
  if (aligned16(dst + begin) && aligned16(src_bytes + begin * bytes)) {
    const int64_t vector_end = begin + (end - begin) / kVector * kVector;
    for (int64_t i = begin + static_cast<int64_t>(threadIdx.x) * kVector; i < vector_end;
         i += static_cast<int64_t>(blockDim.x) * kVector) {
      float g[kVector];
      load8<Type>(src_bytes + i * bytes, g);
      float4* out = reinterpret_cast<float4*>(dst + i);
      float4 a = out[0], b = out[1];
#pragma unroll
      for (int k = 0; k < kVector; ++k) bad |= !isfinite(g[k]);
      a.x = __fmaf_rn(scale, g[0], a.x), a.y = __fmaf_rn(scale, g[1], a.y);
      a.z = __fmaf_rn(scale, g[2], a.z), a.w = __fmaf_rn(scale, g[3], a.w);
      b.x = __fmaf_rn(scale, g[4], b.x), b.y = __fmaf_rn(scale, g[5], b.y);
      b.z = __fmaf_rn(scale, g[6], b.z), b.w = __fmaf_rn(scale, g[7], b.w);
      out[0] = a, out[1] = b;
    }
    scalar_begin = vector_end;
  }
  for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
    const float g = load1<Type>(src, i);
    bad |= !isfinite(g);
    dst[i] = __fmaf_rn(scale, g, dst[i]);
  }
  return bad;
}

/// This block's chunk: [begin, end) of entry `e`.
struct BlockChunk {
  int e;
  int64_t begin, end;
};

__device__ __forceinline__ BlockChunk block_chunk(const LaunchArgs& args) {
  const int e = args.entry[blockIdx.x];
  const int64_t begin = args.chunk[blockIdx.x] * args.chunk_elements;
  const int64_t end = min(begin + args.chunk_elements, args.size[e]);
  return {e, begin, end};
}

__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    accumulate_kernel(const __grid_constant__ LaunchArgs args, float scale, int* non_finite) {
  const BlockChunk c = block_chunk(args);
  bool bad = false;
  switch (args.type[c.e]) {
    case kFp32:
      bad = accumulate_chunk<kFp32>(args.dst[c.e], args.src[c.e], c.begin, c.end, scale);
      break;
    case kBf16:
      bad = accumulate_chunk<kBf16>(args.dst[c.e], args.src[c.e], c.begin, c.end, scale);
      break;
    default:
      bad = accumulate_chunk<kFp16>(args.dst[c.e], args.src[c.e], c.begin, c.end, scale);
      break;
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicOr(non_finite, 1);
}

/// The sum of `v` over the block, in a fixed order (a shuffle tree per warp, then the warps' sums
/// in warp order): the same bits for the same inputs and block size. Valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

/// Calls f(v) on every element v of dst[begin, end), a float4 at a time where dst + begin is
/// 16-byte aligned; with Write, stores what f left in v.
template <bool Write, class F>
__device__ __forceinline__ void for_each_element(float* dst, int64_t begin, int64_t end, F&& f) {
  int64_t scalar_begin = begin;
  if (aligned16(dst + begin)) {
    const int64_t vector_end = begin + (end - begin) / 4 * 4;
    for (int64_t i = begin + static_cast<int64_t>(threadIdx.x) * 4; i < vector_end;
         i += static_cast<int64_t>(blockDim.x) * 4) {
      float4 v = *reinterpret_cast<float4*>(dst + i);
      f(v.x), f(v.y), f(v.z), f(v.w);
      if constexpr (Write) *reinterpret_cast<float4*>(dst + i) = v;
    }
    scalar_begin = vector_end;
  }
  for (int64_t i = scalar_begin + threadIdx.x; i < end; i += blockDim.x) {
    float v = dst[i];
    f(v);
    if constexpr (Write) dst[i] = v;
  }
}

/// Pass one of finalize: buffer *= inv_scale (when `unscale`; otherwise read only), the non-finite
/// check, and this chunk's sum of squares (of the fp32 values the pass leaves, squared in float64).
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    finalize_partials_kernel(const __grid_constant__ LaunchArgs args, float inv_scale, bool unscale,
                             double* partials, int* non_finite) {
  const BlockChunk c = block_chunk(args);
  double squares = 0.0;
  bool bad = false;
  const auto measure = [&](float v) {
    bad |= !isfinite(v);
    squares += static_cast<double>(v) * v;
  };
  if (unscale) {
    for_each_element<true>(args.dst[c.e], c.begin, c.end, [&](float& v) {
      v *= inv_scale;
      measure(v);
    });
  } else {
    for_each_element<false>(args.dst[c.e], c.begin, c.end, [&](float& v) { measure(v); });
  }
  const double total = block_sum(squares);
  if (threadIdx.x == 0) partials[args.partial_base + blockIdx.x] = total;
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicOr(non_finite, 1);
}

/// Pass two: one block adds the partial sums in a fixed order; the norm and the coefficient as
/// clip_coefficient() computes them on the host.
__global__ void __launch_bounds__(kThreads)
    finalize_result_kernel(const double* partials, int64_t count, float max_norm, const int* flags,
                           DeviceResult* result) {
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    const float norm = static_cast<float>(sqrt(sum));
    float coefficient = max_norm / (norm + 1e-6f);
    if (!isnan(coefficient)) coefficient = coefficient < 1.0f ? coefficient : 1.0f;
    result->found_non_finite = flags[0] | flags[1];
    result->norm = norm;
    result->clip_coefficient = coefficient;
  }
}

/// Pass three (apply_clip only): buffer *= the coefficient, read on the device; nothing when it is 1.
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    apply_clip_kernel(const __grid_constant__ LaunchArgs args, const DeviceResult* result) {
  const float coefficient = result->clip_coefficient;
  if (coefficient == 1.0f) return;
  const BlockChunk c = block_chunk(args);
  for_each_element<true>(args.dst[c.e], c.begin, c.end, [&](float& v) { v *= coefficient; });
}

/// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    GACC_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) GACC_CUDA_CHECK(cudaSetDevice(device));
    changed_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

using MemGetAddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);

/// cuMemGetAddressRange through the runtime (gacc does not link the driver library: a machine
/// without a GPU must still start gacc). Null when the driver does not offer it.
MemGetAddressRange address_range_function() {
  static const MemGetAddressRange function = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &entry, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return MemGetAddressRange{nullptr};
    }
    return reinterpret_cast<MemGetAddressRange>(entry);
  }();
  return function;
}

/// Refuses a gradient that is not device memory of `device`, or whose elements run past the end of
/// its allocation: what would otherwise be an illegal memory access in the kernel.
void check_device_pointer(const GradientView& g, size_t index, int device) {
  if (g.numel == 0) return;
  const std::string which = "GradAccumulator: gradient " + std::to_string(index);
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, g.data) != cudaSuccess) {
    cudaGetLastError();
    throw std::invalid_argument(which + " is not a pointer CUDA knows");
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(which +
                                " is host memory; accumulate takes device memory "
                                "(accumulate_from_host copies host gradients)");
  }
  if (attributes.device != device) {
    throw std::invalid_argument(which + " is on device " + std::to_string(attributes.device) +
                                ", the accumulator on device " + std::to_string(device));
  }
  if (const auto range = address_range_function()) {
    CUdeviceptr base = 0;
    size_t size = 0;
    if (range(&base, &size, reinterpret_cast<CUdeviceptr>(g.data)) == CUDA_SUCCESS) {
      const auto available = base + size - reinterpret_cast<CUdeviceptr>(g.data);
      const auto needed =
          static_cast<unsigned long long>(g.numel) * static_cast<unsigned>(element_bytes(g.type));
      if (needed > available) {
        throw std::invalid_argument(which + ": its " + std::to_string(g.numel) + " " + type_name(g.type) +
                                    " elements (" + std::to_string(needed) +
                                    " bytes) run past the end of its "
                                    "allocation (" +
                                    std::to_string(available) + " bytes from the pointer)");
      }
    }
  }
}

uint8_t type_code(GradientType type) {
  switch (type) {
    case GradientType::fp32:
      return kFp32;
    case GradientType::bf16:
      return kBf16;
    case GradientType::fp16:
      return kFp16;
  }
  return kFp32;
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

struct GradAccumulator::State {
  BufferLayout layout;
  std::vector<Bucket> buckets;
  ChunkPlanLimits limits;
  std::vector<PlannedLaunch> plan;
  std::vector<LaunchArgs> launches;  ///< the plan's metadata; src filled in by each accumulate
  int64_t chunks = 0;
  int device = 0;
  cudaStream_t stream = nullptr;
  float* buffer = nullptr;
  double* partials = nullptr;
  int* flags = nullptr;  ///< [0] accumulate's sticky flag, [1] finalize's
  DeviceResult* result = nullptr;
  DeviceResult* host_result = nullptr;  ///< pinned
  // accumulate_from_host's staging: the gradients packed in pinned host memory, then on the device.
  void* host_staging = nullptr;
  void* device_staging = nullptr;
  size_t staging_bytes = 0;
  bool finalized = false;

  ~State() {
    // Errors while freeing are ignored: a destructor must not throw.
    cudaFree(buffer);
    cudaFree(partials);
    cudaFree(flags);
    cudaFree(result);
    cudaFreeHost(host_result);
    cudaFreeHost(host_staging);
    cudaFree(device_staging);
  }

  /// Launches `kernel` over every launch of the plan.
  template <class Launch>
  void for_each_launch(Launch&& launch) {
    for (size_t l = 0; l < launches.size(); ++l) {
      launch(launches[l], static_cast<unsigned>(plan[l].blocks.size()));
      GACC_CUDA_CHECK_LAUNCH();
    }
  }
};

GradAccumulator::GradAccumulator(std::vector<int64_t> sizes, GradAccumulatorOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  const auto& limits = options.limits;
  if (limits.max_tensors > kMaxLaunchTensors || limits.max_blocks > kMaxLaunchBlocks) {
    throw std::invalid_argument(
        "GradAccumulator: a launch holds at most " + std::to_string(kMaxLaunchTensors) + " tensors and " +
        std::to_string(kMaxLaunchBlocks) + " chunks, not " + std::to_string(limits.max_tensors) + " and " +
        std::to_string(limits.max_blocks));
  }
  s.layout = make_layout(sizes);
  s.buckets = plan_buckets(s.layout, options.bucket_elements);
  s.limits = limits;
  s.plan = plan_chunks(s.layout.sizes, limits);
  if (options.device < 0) {
    GACC_CUDA_CHECK(cudaGetDevice(&options.device));
  }
  s.device = options.device;
  s.stream = static_cast<cudaStream_t>(options.stream);
  for (const auto& planned : s.plan) {
    LaunchArgs args{};
    for (size_t e = 0; e < planned.tensors.size(); ++e) {
      const auto t = static_cast<size_t>(planned.tensors[e]);
      args.size[e] = s.layout.sizes[t];
      // dst is filled in below, once the buffer exists.
    }
    for (size_t b = 0; b < planned.blocks.size(); ++b) {
      args.entry[b] = static_cast<uint8_t>(planned.blocks[b].entry);
      args.chunk[b] = planned.blocks[b].chunk;
    }
    args.chunk_elements = limits.chunk_elements;
    args.partial_base = s.chunks;
    s.chunks += static_cast<int64_t>(planned.blocks.size());
    s.launches.push_back(args);
  }
  DeviceGuard guard(s.device);
  const size_t buffer_bytes = static_cast<size_t>(s.layout.total) * sizeof(float);
  GACC_CUDA_CHECK(cudaMalloc(&s.buffer, buffer_bytes > 0 ? buffer_bytes : sizeof(float)));
  GACC_CUDA_CHECK(cudaMalloc(&s.partials, static_cast<size_t>(s.chunks > 0 ? s.chunks : 1) * sizeof(double)));
  GACC_CUDA_CHECK(cudaMalloc(&s.flags, 2 * sizeof(int)));
  GACC_CUDA_CHECK(cudaMalloc(&s.result, sizeof(DeviceResult)));
  GACC_CUDA_CHECK(cudaMallocHost(&s.host_result, sizeof(DeviceResult)));
  for (size_t l = 0; l < s.plan.size(); ++l) {
    for (size_t e = 0; e < s.plan[l].tensors.size(); ++e) {
      s.launches[l].dst[e] = s.buffer + s.layout.offsets[static_cast<size_t>(s.plan[l].tensors[e])];
    }
  }
  reset();
  synchronize();
}

GradAccumulator::~GradAccumulator() = default;
GradAccumulator::GradAccumulator(GradAccumulator&&) noexcept = default;
GradAccumulator& GradAccumulator::operator=(GradAccumulator&&) noexcept = default;

void GradAccumulator::accumulate(const std::vector<GradientView>& grads, float scale, PointerCheck check) {
  State& s = *state_;
  check_not_finalized(s.finalized);
  check_accumulate_arguments(s.layout, grads, scale);
  DeviceGuard guard(s.device);
  if (check == PointerCheck::full) {
    for (size_t t = 0; t < grads.size(); ++t) check_device_pointer(grads[t], t, s.device);
  }
  for (size_t l = 0; l < s.launches.size(); ++l) {
    for (size_t e = 0; e < s.plan[l].tensors.size(); ++e) {
      const auto& g = grads[static_cast<size_t>(s.plan[l].tensors[e])];
      s.launches[l].src[e] = g.data;
      s.launches[l].type[e] = type_code(g.type);
    }
  }
  s.for_each_launch([&](const LaunchArgs& args, unsigned blocks) {
    accumulate_kernel<<<blocks, kThreads, 0, s.stream>>>(args, scale, s.flags);
  });
}

void GradAccumulator::accumulate_from_host(const std::vector<GradientView>& host_grads, float scale) {
  State& s = *state_;
  check_not_finalized(s.finalized);
  check_accumulate_arguments(s.layout, host_grads, scale);
  // Each gradient at a 16-byte boundary of the staging area, in its own type.
  std::vector<size_t> at;
  size_t bytes = 0;
  for (const auto& g : host_grads) {
    at.push_back(bytes);
    bytes += (static_cast<size_t>(g.numel) * static_cast<size_t>(element_bytes(g.type)) + 15) / 16 * 16;
  }
  DeviceGuard guard(s.device);
  if (bytes > s.staging_bytes) {
    GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    cudaFreeHost(s.host_staging);
    cudaFree(s.device_staging);
    s.host_staging = s.device_staging = nullptr;
    s.staging_bytes = 0;
    GACC_CUDA_CHECK(cudaMallocHost(&s.host_staging, bytes));
    GACC_CUDA_CHECK(cudaMalloc(&s.device_staging, bytes));
    s.staging_bytes = bytes;
  }
  std::vector<GradientView> staged;
  for (size_t t = 0; t < host_grads.size(); ++t) {
    const auto& g = host_grads[t];
    const size_t size = static_cast<size_t>(g.numel) * static_cast<size_t>(element_bytes(g.type));
    if (size > 0) std::memcpy(static_cast<char*>(s.host_staging) + at[t], g.data, size);
    staged.push_back({static_cast<char*>(s.device_staging) + at[t], g.numel, g.type});
  }
  if (bytes > 0) {
    GACC_CUDA_CHECK(
        cudaMemcpyAsync(s.device_staging, s.host_staging, bytes, cudaMemcpyHostToDevice, s.stream));
  }
  accumulate(staged, scale, PointerCheck::trusted);  // gacc's own allocation
  synchronize();                                     // the pinned staging area is reused by the next call
}

FinalizeResult GradAccumulator::finalize(float inv_scale, float max_norm, bool apply_clip) {
  State& s = *state_;
  check_finalize_arguments(inv_scale, max_norm, s.finalized);
  s.finalized = true;
  DeviceGuard guard(s.device);
  const bool unscale = inv_scale != 1.0f;  // multiplying by 1 changes no bits: a read-only pass then
  s.for_each_launch([&](const LaunchArgs& args, unsigned blocks) {
    finalize_partials_kernel<<<blocks, kThreads, 0, s.stream>>>(args, inv_scale, unscale, s.partials,
                                                                s.flags + 1);
  });
  finalize_result_kernel<<<1, kThreads, 0, s.stream>>>(s.partials, s.chunks, max_norm, s.flags, s.result);
  GACC_CUDA_CHECK_LAUNCH();
  if (apply_clip) {
    s.for_each_launch([&](const LaunchArgs& args, unsigned blocks) {
      apply_clip_kernel<<<blocks, kThreads, 0, s.stream>>>(args, s.result);
    });
  }
  GACC_CUDA_CHECK(
      cudaMemcpyAsync(s.host_result, s.result, sizeof(DeviceResult), cudaMemcpyDeviceToHost, s.stream));
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  FinalizeResult out;
  out.found_non_finite = s.host_result->found_non_finite != 0;
  out.norm = s.host_result->norm;
  out.clip_coefficient = s.host_result->clip_coefficient;
  return out;
}

void GradAccumulator::reset() {
  State& s = *state_;
  DeviceGuard guard(s.device);
  if (s.layout.total > 0) {
    GACC_CUDA_CHECK(
        cudaMemsetAsync(s.buffer, 0, static_cast<size_t>(s.layout.total) * sizeof(float), s.stream));
  }
  GACC_CUDA_CHECK(cudaMemsetAsync(s.flags, 0, 2 * sizeof(int), s.stream));
  s.finalized = false;
}

bool GradAccumulator::found_non_finite() const {
  const State& s = *state_;
  DeviceGuard guard(s.device);
  int flag = 0;
  GACC_CUDA_CHECK(cudaMemcpyAsync(&flag, s.flags, sizeof flag, cudaMemcpyDeviceToHost, s.stream));
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  return flag != 0;
}

float* GradAccumulator::device_buffer() { return state_->buffer; }
const float* GradAccumulator::device_buffer() const { return state_->buffer; }

std::vector<float> GradAccumulator::copy_to_host() const {
  const State& s = *state_;
  DeviceGuard guard(s.device);
  std::vector<float> out(static_cast<size_t>(s.layout.total));
  if (!out.empty()) {
    GACC_CUDA_CHECK(
        cudaMemcpyAsync(out.data(), s.buffer, out.size() * sizeof(float), cudaMemcpyDeviceToHost, s.stream));
  }
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  return out;
}

const BufferLayout& GradAccumulator::layout() const { return state_->layout; }
const std::vector<Bucket>& GradAccumulator::buckets() const { return state_->buckets; }
int GradAccumulator::device() const { return state_->device; }
void* GradAccumulator::stream() const { return state_->stream; }

void GradAccumulator::synchronize() const {
  DeviceGuard guard(state_->device);
  GACC_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
}

}  // namespace gacc::cuda
