#pragma once
// The comparisons of an accumulator under test with the CPU twin, as the GPU's tests
// (grad_accumulator_test.cpp, on a device and under the CUDA emulation in CI) and the emulation's
// own tests make them. An accumulator under test `A` offers:
//   A(sizes, limits)                                     its buffer poisoned, then reset
//   void accumulate(const HostGradients&, float scale)   copying them where it needs them
//   FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip)
//   void reset()
//   bool found_non_finite()                              the sticky flag
//   std::vector<float> buffer()                          the whole buffer, padding included

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "implementations/cuda/grad_accumulator_cpu.h"
#include "tests/implementations/cuda/gradient_values.h"

namespace gacc::cuda::test {

/// Every element equal: finite values bit for bit, NaN where the twin has NaN (the GPU's fused
/// multiply-add returns the canonical NaN, x86's keeps the input's payload).
inline void require_same_buffer(const std::vector<float>& tested, const std::vector<float>& twin) {
  REQUIRE(tested.size() == twin.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < tested.size(); ++i) {
    const bool same =
        std::isnan(twin[i]) ? std::isnan(tested[i]) : std::memcmp(&tested[i], &twin[i], sizeof(float)) == 0;
    if (!same && mismatches++ == 0) first = i;
  }
  INFO(mismatches << " mismatches; the first at element " << first << ": tested "
                  << (tested.empty() ? 0.0f : tested[first]) << ", CPU twin "
                  << (twin.empty() ? 0.0f : twin[first]));
  CHECK(mismatches == 0);
}

inline const std::vector<GradientType> kAllTypes = {GradientType::fp32, GradientType::bf16,
                                                    GradientType::fp16};

/// Three rounds of accumulate (three scales) on both, compared after each.
template <class A>
void compare_accumulate(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits,
                        const std::vector<GradientType>& types, int64_t shift) {
  A tested(sizes, limits);
  CpuGradAccumulator twin(sizes, limits);
  for (int round = 0; round < 3; ++round) {
    const HostGradients grads(sizes, types, static_cast<uint32_t>(1000 * round + shift), shift);
    const float scale = round == 0 ? 1.0f : round == 1 ? 1.0f / 3.0f : -1024.0f;
    tested.accumulate(grads, scale);
    twin.accumulate(grads.views, scale);
    INFO("round " << round << ", shift " << shift);
    require_same_buffer(tested.buffer(), twin.buffer());
  }
  CHECK_FALSE(tested.found_non_finite());
}

/// Sizes around chunks of 64 with launches of at most 3 tensors and 5 chunks (entries and chunks
/// split across launches), every dtype alone and mixed, aligned and misaligned (shift 1: the scalar
/// path); and a chunk size that is not a multiple of the vector width (chunks start misaligned).
template <class A>
void compare_accumulate_around_chunk_boundaries() {
  const ChunkPlanLimits small{64, 3, 5};
  const std::vector<int64_t> sizes = {1, 7, 8, 9, 63, 64, 65, 0, 127, 128, 129, 3 * 64 + 5, 1000, 0, 2};
  for (const int64_t shift : {int64_t{0}, int64_t{1}}) {
    for (const auto& types : std::vector<std::vector<GradientType>>{
             {GradientType::fp32}, {GradientType::bf16}, {GradientType::fp16}, kAllTypes}) {
      compare_accumulate<A>(sizes, small, types, shift);
    }
  }
  compare_accumulate<A>(sizes, ChunkPlanLimits{12, 4, 7}, kAllTypes, 0);
}

/// inf, -inf and NaN at the first, a middle and the last element of a gradient of `n` elements, in
/// every dtype: the flag is set, stays set until reset, and finalize reports it.
template <class A>
void check_sticky_flag(int64_t n, const ChunkPlanLimits& limits) {
  for (const auto type : kAllTypes) {
    for (const int64_t where : {int64_t{0}, n / 2, n - 1}) {
      for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN()}) {
        INFO(type_name(type) << " at " << where << ": " << bad);
        A tested({n}, limits);
        CpuGradAccumulator twin({n}, limits);
        HostGradients grads({n}, {type}, 11);
        tested.accumulate(grads, 1.0f);
        CHECK_FALSE(tested.found_non_finite());
        grads.set(0, where, bad);
        tested.accumulate(grads, 0.5f);
        twin.accumulate(grads.views, 0.5f);
        CHECK(tested.found_non_finite());
        CHECK(twin.found_non_finite());
        grads.set(0, where, 1.0f);
        tested.accumulate(grads, 1.0f);
        CHECK(tested.found_non_finite());  // sticky until reset
        const auto finalized = tested.finalize(1.0f, 1.0f, false);
        CHECK(finalized.found_non_finite);
        CHECK_FALSE(std::isfinite(finalized.norm));
        CHECK_FALSE(std::isfinite(tested.buffer()[static_cast<size_t>(where)]));
        tested.reset();
        CHECK_FALSE(tested.found_non_finite());
        CHECK(tested.buffer()[static_cast<size_t>(where)] == 0.0f);
      }
    }
  }
}

/// `count` random sizes in [0, max_size] (seeded).
inline std::vector<int64_t> random_sizes(size_t count, int64_t max_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(0, max_size);
  std::vector<int64_t> sizes(count);
  for (auto& s : sizes) s = size(rng);
  return sizes;
}

/// For each (max_norm, loss scale): two accumulates, then finalize on both — the unscale bit for
/// bit, the norm within one fp32 rounding of a float64 reference and of the twin's, the coefficient
/// by the shared formula; again with apply_clip: the same norm (deterministic) and the buffer
/// multiplied by the coefficient, as the twin's.
template <class A>
void compare_finalize(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits,
                      const std::vector<std::pair<float, float>>& max_norms_and_loss_scales) {
  const HostGradients grads(sizes, kAllTypes, 21, /*shift=*/1);
  for (const auto& [max_norm, loss_scale] : max_norms_and_loss_scales) {
    INFO("max_norm " << max_norm << ", loss scale " << loss_scale);
    A tested(sizes, limits), clipped(sizes, limits);
    CpuGradAccumulator twin(sizes, limits), twin_clipped(sizes, limits);
    for (const float scale : {loss_scale, 0.5f * loss_scale}) {
      tested.accumulate(grads, scale);
      clipped.accumulate(grads, scale);
      twin.accumulate(grads.views, scale);
      twin_clipped.accumulate(grads.views, scale);
    }
    const auto result = tested.finalize(1.0f / loss_scale, max_norm, false);
    const auto expected = twin.finalize(1.0f / loss_scale, max_norm);
    const auto unscaled = tested.buffer();
    require_same_buffer(unscaled, twin.buffer());  // the unscale is elementwise: bit for bit
    double squares = 0.0;
    for (const float v : unscaled) squares += static_cast<double>(v) * v;
    const double reference = std::sqrt(squares);
    CHECK_FALSE(result.found_non_finite);
    CHECK(std::fabs(result.norm - reference) <= std::ldexp(reference, -23));  // one fp32 rounding
    CHECK(std::fabs(result.norm - expected.norm) <= std::ldexp(reference, -23));
    CHECK(result.clip_coefficient == clip_coefficient(result.norm, max_norm));  // the same formula

    const auto again = clipped.finalize(1.0f / loss_scale, max_norm, /*apply_clip=*/true);
    const auto twin_again = twin_clipped.finalize(1.0f / loss_scale, max_norm, /*apply_clip=*/true);
    CHECK(again.norm == result.norm);
    CHECK(again.clip_coefficient == result.clip_coefficient);
    auto multiplied = unscaled;
    if (result.clip_coefficient != 1.0f) {
      for (auto& v : multiplied) v *= result.clip_coefficient;
    }
    const auto clipped_buffer = clipped.buffer();
    require_same_buffer(clipped_buffer, multiplied);
    if (again.clip_coefficient == twin_again.clip_coefficient)
      require_same_buffer(clipped_buffer, twin_clipped.buffer());
  }
}

/// An unscale that overflows is found non-finite; an empty buffer (no gradients, or only empty
/// ones) finalizes to norm 0 and coefficient 1.
template <class A>
void check_overflow_and_empty() {
  const std::vector<float> huge = {3e38f, -3e38f, 1.0f, 2.0f, 3.0f};
  HostGradients grads({5}, {GradientType::fp32}, 1);
  for (size_t i = 0; i < huge.size(); ++i) grads.set(0, static_cast<int64_t>(i), huge[i]);
  A tested({5}, ChunkPlanLimits{});
  tested.accumulate(grads, 1.0f);
  CHECK_FALSE(tested.found_non_finite());
  CHECK(tested.finalize(4.0f, 1.0f, false).found_non_finite);

  for (const auto& sizes : {std::vector<int64_t>{}, std::vector<int64_t>{0, 0}}) {
    A empty(sizes, ChunkPlanLimits{});
    empty.accumulate(HostGradients(sizes, kAllTypes, 1), 1.0f);
    const auto result = empty.finalize(1.0f, 1.0f, true);
    CHECK_FALSE(result.found_non_finite);
    CHECK(result.norm == 0.0f);
    CHECK(result.clip_coefficient == 1.0f);
  }
}

}  // namespace gacc::cuda::test
