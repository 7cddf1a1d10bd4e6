#pragma once
/// The fused accumulator's device code: the launch metadata, the four kernels and their helpers,
/// and the host functions that fill the metadata from the chunk plan and launch the kernels.
/// grad_accumulator.cu includes it. Under nvcc it is compiled for the device; in the emulated build
/// (tests/implementations/cuda/emulation/, label cpu) the host compiler compiles it against an
/// emulation of the CUDA runtime and execution model, so that the kernels' own source runs in CI.
/// Include <cuda_fp16.h> and <cuda_runtime.h> first.

#if !defined(__CUDACC__) && !defined(GACC_CUDA_EMULATION)
#error "grad_accumulator_kernels.cuh needs nvcc or the CUDA emulation (tests/.../cuda/emulation)"
#endif

#include <cstdint>
#include <vector>

#include "implementations/cuda/accumulator_contract.h"
#include "implementations/cuda/chunk_plan.h"
#include "implementations/cuda/grad_accumulator.h"

namespace gacc::cuda::kernels {

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
__device__ inline double block_sum(double v) {
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

// Host side: the launches, and the launch metadata of a plan.

/// Launches `kernel` as `blocks` blocks of kThreads threads on `stream`, asynchronously; a bad
/// configuration is left for cudaGetLastError (GACC_CUDA_CHECK_LAUNCH). In the emulated build the
/// emulated runtime queues the launch with its own copy of the arguments, as the device copies them.
template <class... Parameters, class... Arguments>
void launch(void (*kernel)(Parameters...), unsigned blocks, cudaStream_t stream,
            const Arguments&... arguments) {
#ifdef __CUDACC__
  kernel<<<blocks, kThreads, 0, stream>>>(arguments...);
#else
  emulation::launch_on(stream, blocks, kThreads, [kernel, arguments...] { kernel(arguments...); });
#endif
}

inline uint8_t type_code(GradientType type) {
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

/// One LaunchArgs per launch of `plan`: entries, chunks, sizes, destinations in `buffer` (laid out
/// as `layout`), and each launch's first slot in finalize's partial sums. Sources and types are set
/// by set_sources, per accumulate.
inline std::vector<LaunchArgs> make_launch_args(const std::vector<PlannedLaunch>& plan,
                                                const BufferLayout& layout, const ChunkPlanLimits& limits,
                                                float* buffer) {
  std::vector<LaunchArgs> launches;
  int64_t chunks = 0;
  for (const auto& planned : plan) {
    LaunchArgs args{};
    for (size_t e = 0; e < planned.tensors.size(); ++e) {
      const auto t = static_cast<size_t>(planned.tensors[e]);
      args.size[e] = layout.sizes[t];
      args.dst[e] = buffer + layout.offsets[t];
    }
    for (size_t b = 0; b < planned.blocks.size(); ++b) {
      args.entry[b] = static_cast<uint8_t>(planned.blocks[b].entry);
      args.chunk[b] = planned.blocks[b].chunk;
    }
    args.chunk_elements = limits.chunk_elements;
    args.partial_base = chunks;
    chunks += static_cast<int64_t>(planned.blocks.size());
    launches.push_back(args);
  }
  return launches;
}

/// Points every launch's entries at this accumulate's gradients (the plan's tensors, in order).
inline void set_sources(std::vector<LaunchArgs>& launches, const std::vector<PlannedLaunch>& plan,
                        const std::vector<GradientView>& grads) {
  for (size_t l = 0; l < launches.size(); ++l) {
    for (size_t e = 0; e < plan[l].tensors.size(); ++e) {
      const auto& g = grads[static_cast<size_t>(plan[l].tensors[e])];
      launches[l].src[e] = g.data;
      launches[l].type[e] = type_code(g.type);
    }
  }
}

}  // namespace gacc::cuda::kernels
