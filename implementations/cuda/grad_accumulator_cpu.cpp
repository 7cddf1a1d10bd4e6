#include "implementations/cuda/grad_accumulator_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdexcept>
#include <string>

namespace gacc::cuda {

namespace {

struct Fp32Input {
  static float load(const void* data, int64_t i) { return static_cast<const float*>(data)[i]; }
};
struct Bf16Input {
  static float load(const void* data, int64_t i) {
    return upcast_bf16(static_cast<const uint16_t*>(data)[i]);
  }
};
struct Fp16Input {
  static float load(const void* data, int64_t i) {
    return upcast_fp16(static_cast<const uint16_t*>(data)[i]);
  }
};

/// acc[i] = fma(scale, g[i], acc[i]) over [begin, end); returns whether some g[i] was not finite.
template <class Input>
bool accumulate_range(float* acc, const void* data, int64_t begin, int64_t end, float scale) {
  bool non_finite = false;
  for (int64_t i = begin; i < end; ++i) {
    const float g = Input::load(data, i);
    non_finite |= !std::isfinite(g);
    acc[i] = std::fma(scale, g, acc[i]);
  }
  return non_finite;
}

#if defined(__x86_64__)
// The same fused multiply-adds, 8 lanes at a time (AVX2 + FMA; F16C for fp16): vfmadd rounds once
// as std::fma does, so the result is bit-identical to the scalar loop, which finishes the tail.
// A lane is not finite when g - g is NaN (inf - inf or NaN).
/// Eight gradient values from `at`, upcast to fp32 exactly.
template <class Input>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* data, int64_t at) {
  if constexpr (std::is_same_v<Input, Fp32Input>) {
    return _mm256_loadu_ps(static_cast<const float*>(data) + at);
  } else {
    const __m128i half =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(data) + at));
    if constexpr (std::is_same_v<Input, Bf16Input>) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));  // fp32's upper half
    } else {
      return _mm256_cvtph_ps(half);  // fp16 to fp32, exact
    }
  }
}

template <class Input>
__attribute__((target("avx2,fma,f16c"))) bool accumulate_range_avx2(float* acc, const void* data,
                                                                    int64_t begin, int64_t end, float scale) {
  const __m256 scales = _mm256_set1_ps(scale);
  __m256 bad = _mm256_setzero_ps();
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {  // two vectors per iteration: fewer loop overheads per byte
    const __m256 g0 = load8<Input>(data, i), g1 = load8<Input>(data, i + 8);
    const __m256 d0 = _mm256_sub_ps(g0, g0), d1 = _mm256_sub_ps(g1, g1);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(d0, d1, _CMP_UNORD_Q));  // NaN in either
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(scales, g0, _mm256_loadu_ps(acc + i)));
    _mm256_storeu_ps(acc + i + 8, _mm256_fmadd_ps(scales, g1, _mm256_loadu_ps(acc + i + 8)));
  }
  const bool tail_bad = accumulate_range<Input>(acc, data, i, end, scale);
  return tail_bad || _mm256_movemask_ps(bad) != 0;
}

bool has_avx2_fma_f16c() {
  static const bool supported =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return supported;
}
#endif

template <class Input>
bool accumulate_range_fastest(float* acc, const void* data, int64_t begin, int64_t end, float scale) {
#if defined(__x86_64__)
  if (has_avx2_fma_f16c()) return accumulate_range_avx2<Input>(acc, data, begin, end, scale);
#endif
  return accumulate_range<Input>(acc, data, begin, end, scale);
}

bool accumulate_range(const GradientView& g, float* acc, int64_t begin, int64_t end, float scale) {
  switch (g.type) {
    case GradientType::fp32:
      return accumulate_range_fastest<Fp32Input>(acc, g.data, begin, end, scale);
    case GradientType::bf16:
      return accumulate_range_fastest<Bf16Input>(acc, g.data, begin, end, scale);
    case GradientType::fp16:
      return accumulate_range_fastest<Fp16Input>(acc, g.data, begin, end, scale);
  }
  return false;
}

}  // namespace

CpuGradAccumulator::CpuGradAccumulator(std::vector<int64_t> sizes, ChunkPlanLimits limits)
    : layout_(make_layout(sizes)), limits_(limits), plan_(plan_chunks(layout_.sizes, limits_)) {
  buffer_.assign(static_cast<size_t>(layout_.total), 0.0f);
}

void CpuGradAccumulator::accumulate(const std::vector<GradientView>& grads, float scale) {
  check_not_finalized(finalized_);
  check_accumulate_arguments(layout_, grads, scale);
  bool non_finite = false;
  for (const auto& launch : plan_) {
    for (const auto& block : launch.blocks) {
      const auto t = static_cast<size_t>(launch.tensors[static_cast<size_t>(block.entry)]);
      non_finite |=
          accumulate_range(grads[t], buffer_.data() + layout_.offsets[t], chunk_begin(block.chunk, limits_),
                           chunk_end(block.chunk, layout_.sizes[t], limits_), scale);
    }
  }
  found_non_finite_ = found_non_finite_ || non_finite;
}

FinalizeResult CpuGradAccumulator::finalize(float inv_scale, float max_norm, bool apply_clip) {
  check_finalize_arguments(inv_scale, max_norm, finalized_);
  finalized_ = true;
  FinalizeResult result;
  double squares = 0.0;
  for (const auto& launch : plan_) {
    for (const auto& block : launch.blocks) {
      const auto t = static_cast<size_t>(launch.tensors[static_cast<size_t>(block.entry)]);
      float* acc = buffer_.data() + layout_.offsets[t];
      double chunk_squares = 0.0;  // one block's partial sum, then added in plan order
      for (int64_t i = chunk_begin(block.chunk, limits_);
           i < chunk_end(block.chunk, layout_.sizes[t], limits_); ++i) {
        acc[i] *= inv_scale;
        result.found_non_finite = result.found_non_finite || !std::isfinite(acc[i]);
        chunk_squares += static_cast<double>(acc[i]) * static_cast<double>(acc[i]);
      }
      squares += chunk_squares;
    }
  }
  result.found_non_finite = result.found_non_finite || found_non_finite_;
  result.norm = static_cast<float>(std::sqrt(squares));
  result.clip_coefficient = clip_coefficient(result.norm, max_norm);
  if (apply_clip && result.clip_coefficient != 1.0f) {
    for (size_t t = 0; t < layout_.sizes.size(); ++t) {
      float* acc = buffer_.data() + layout_.offsets[t];
      for (int64_t i = 0; i < layout_.sizes[t]; ++i) acc[i] *= result.clip_coefficient;
    }
  }
  return result;
}

void CpuGradAccumulator::reset() {
  std::fill(buffer_.begin(), buffer_.end(), 0.0f);
  found_non_finite_ = false;
  finalized_ = false;
}

}  // namespace gacc::cuda
