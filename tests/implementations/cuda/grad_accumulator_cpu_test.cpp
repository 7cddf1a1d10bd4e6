// The CPU twin of the fused accumulator: bf16/fp16/fp32 gradients summed into fp32 exactly as one
// fused multiply-add per element, the sticky non-finite flag, finalize against a float64
// reference, and bad input refused before the buffer is touched.

#include "implementations/cuda/grad_accumulator_cpu.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/floating_point.h"

using namespace gacc::cuda;
using Catch::Matchers::Contains;

namespace {

/// The nearest bf16 / fp16 bit pattern of x (via core's rounding model, then the bits).
uint16_t bf16_bits(float x) {
  const auto rounded = static_cast<float>(gacc::round_to(gacc::kBf16, x));
  uint32_t bits;
  std::memcpy(&bits, &rounded, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t fp16_bits(float x) {
  const double r = gacc::round_to(gacc::kFp16, x);
  if (std::isnan(r)) return 0x7e00;
  const uint16_t sign = std::signbit(r) ? 0x8000 : 0;
  const double a = std::fabs(r);
  if (std::isinf(a)) return sign | 0x7c00;
  if (a == 0) return sign;
  int e = 0;
  std::frexp(a, &e);                                                        // a = m 2^e, m in [0.5, 1)
  if (e - 1 < -14) return sign | static_cast<uint16_t>(std::ldexp(a, 24));  // subnormal: a / 2^-24
  return sign | static_cast<uint16_t>((e - 1 + 15) << 10) |
         static_cast<uint16_t>(std::ldexp(a, 11 - e) - 1024);
}

/// Fresh random values (never zeros or constants), some large, some tiny.
std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 6);
  std::vector<float> out(n);
  for (auto& v : out) v = std::ldexp(normal(rng), exponent(rng));
  return out;
}

}  // namespace

TEST_CASE("bf16 and fp16 upcast exactly, specials included", "[accumulator]") {
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.0e-8f, 1.0e-5f, 3.14159f, -1.0e-3f}) {
    CHECK(upcast_fp16(fp16_bits(x)) == static_cast<float>(gacc::round_to(gacc::kFp16, x)));
    CHECK(upcast_bf16(bf16_bits(x)) == static_cast<float>(gacc::round_to(gacc::kBf16, x)));
  }
  CHECK(std::isinf(upcast_fp16(0x7c00)));
  CHECK(upcast_fp16(0xfc00) < 0);
  CHECK(std::isnan(upcast_fp16(0x7e00)));
  CHECK(upcast_fp16(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
  CHECK(std::isnan(upcast_bf16(0x7fc0)));
  CHECK(std::isinf(upcast_bf16(0xff80)));
}

TEST_CASE("accumulate is one fused multiply-add per element, whatever the chunking", "[accumulator]") {
  const std::vector<int64_t> sizes = {7, 0, 33, 16, 1};  // an empty gradient, sizes around chunks of 8
  const ChunkPlanLimits limits{8, 2, 3};                 // many launches
  CpuGradAccumulator acc(sizes, limits);
  std::vector<std::vector<float>> fp32(sizes.size());
  std::vector<std::vector<uint16_t>> low(sizes.size());
  std::vector<float> expected(57, 0.0f);
  for (int round = 0; round < 3; ++round) {
    const GradientType type = round == 0   ? GradientType::fp32
                              : round == 1 ? GradientType::bf16
                                           : GradientType::fp16;
    const float scale = round == 2 ? 0.25f : 1.0f / 3.0f;
    std::vector<GradientView> views;
    int64_t offset = 0;
    for (size_t t = 0; t < sizes.size(); ++t) {
      fp32[t] = random_values(static_cast<size_t>(sizes[t]), static_cast<uint32_t>(10 * round + t));
      low[t].clear();
      for (float v : fp32[t]) low[t].push_back(type == GradientType::bf16 ? bf16_bits(v) : fp16_bits(v));
      views.push_back({type == GradientType::fp32 ? static_cast<const void*>(fp32[t].data()) : low[t].data(),
                       sizes[t], type});
      for (int64_t i = 0; i < sizes[t]; ++i) {
        const float g = type == GradientType::fp32   ? fp32[t][i]
                        : type == GradientType::bf16 ? upcast_bf16(low[t][i])
                                                     : upcast_fp16(low[t][i]);
        expected[static_cast<size_t>(offset + i)] =
            std::fma(scale, g, expected[static_cast<size_t>(offset + i)]);
      }
      offset += sizes[t];
    }
    acc.accumulate(views, scale);
    REQUIRE(acc.buffer().size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO("round " << round << ", element " << i);
      CHECK(acc.buffer()[i] == expected[i]);  // bit for bit
    }
  }
  CHECK_FALSE(acc.found_non_finite());
  CHECK(acc.offset(2) == 7);
  CHECK(acc.offset(4) == 56);
}

TEST_CASE("a non-finite gradient at the first, a middle or the last element sets a sticky flag",
          "[accumulator]") {
  for (const int64_t where : {int64_t{0}, int64_t{20}, int64_t{40}}) {
    for (const float bad :
         {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      CpuGradAccumulator acc({41}, ChunkPlanLimits{16, 4, 4});
      auto values = random_values(41, 3);
      const GradientView clean{values.data(), 41, GradientType::fp32};
      acc.accumulate({clean}, 1.0f);
      CHECK_FALSE(acc.found_non_finite());
      values[static_cast<size_t>(where)] = bad;
      acc.accumulate({clean}, 1.0f);
      CHECK(acc.found_non_finite());
      values[static_cast<size_t>(where)] = 1.0f;
      acc.accumulate({clean}, 1.0f);
      CHECK(acc.found_non_finite());  // sticky until reset
      CHECK(acc.finalize(1.0f, 1.0f).found_non_finite);
      acc.reset();
      CHECK_FALSE(acc.found_non_finite());
      CHECK(acc.buffer()[static_cast<size_t>(where)] == 0.0f);
    }
  }
}

TEST_CASE("finalize unscales, measures the norm deterministically and yields clip_grad_norm_'s coefficient",
          "[accumulator]") {
  const std::vector<int64_t> sizes = {100, 37, 250};
  CpuGradAccumulator acc(sizes, ChunkPlanLimits{32, 2, 3});
  std::vector<std::vector<float>> grads;
  std::vector<GradientView> views;
  for (size_t t = 0; t < sizes.size(); ++t) {
    grads.push_back(random_values(static_cast<size_t>(sizes[t]), static_cast<uint32_t>(100 + t)));
  }
  for (size_t t = 0; t < sizes.size(); ++t) views.push_back({grads[t].data(), sizes[t], GradientType::fp32});
  const float loss_scale = 1024.0f;
  acc.accumulate(views, loss_scale);
  const auto result = acc.finalize(1.0f / loss_scale, 0.5f);
  double squares = 0.0;  // float64 reference from the fp32 values finalize leaves
  for (const float v : acc.buffer()) squares += static_cast<double>(v) * v;
  const double norm = std::sqrt(squares);
  CHECK_FALSE(result.found_non_finite);
  CHECK(result.norm == Approx(norm).epsilon(1e-6));
  CHECK(result.clip_coefficient == Approx(0.5 / (norm + 1e-6)).epsilon(1e-6));
  CHECK(result.clip_coefficient < 1.0f);
  // Unscaled: the loss scale of 2^10 cancels exactly.
  CHECK(acc.buffer()[0] == grads[0][0]);
  CHECK(acc.buffer()[100] == grads[1][0]);
  // Deterministic: the same inputs give the same bits.
  CpuGradAccumulator again(sizes, ChunkPlanLimits{32, 2, 3});
  again.accumulate(views, loss_scale);
  CHECK(again.finalize(1.0f / loss_scale, 0.5f).norm == result.norm);
  // No clipping wanted, or not needed: coefficient 1.
  again.reset();
  again.accumulate(views, 1.0f);
  CHECK(again.finalize(1.0f, std::numeric_limits<float>::infinity()).clip_coefficient == 1.0f);
}

TEST_CASE("bad input is refused before the buffer changes", "[accumulator]") {
  CpuGradAccumulator acc({3, 2});
  std::vector<float> a = {1, 2, 3}, b = {4, 5};
  const GradientView va{a.data(), 3, GradientType::fp32}, vb{b.data(), 2, GradientType::fp32};
  CHECK_THROWS_WITH(acc.accumulate({va}, 1.0f), Contains("1 gradients for a buffer of 2"));
  CHECK_THROWS_WITH(acc.accumulate({vb, va}, 1.0f), Contains("gradient 0 has 2 elements, its slot 3"));
  CHECK_THROWS_WITH(acc.accumulate({va, GradientView{nullptr, 2, GradientType::fp32}}, 1.0f),
                    Contains("gradient 1 is a null pointer"));
  CHECK_THROWS_AS(acc.accumulate({va, vb}, std::numeric_limits<float>::infinity()), std::invalid_argument);
  for (const float v : acc.buffer()) CHECK(v == 0.0f);
  acc.accumulate({va, vb}, 1.0f);
  CHECK_THROWS_AS(acc.finalize(1.0f, 0.0f), std::invalid_argument);
  acc.finalize(1.0f, 1.0f);
  CHECK_THROWS_WITH(acc.finalize(1.0f, 1.0f), Contains("a second finalize without reset"));
  CHECK_THROWS_WITH(acc.accumulate({va, vb}, 1.0f), Contains("accumulate after finalize without reset"));
  acc.reset();
  acc.accumulate({va, vb}, 2.0f);
  CHECK(acc.buffer() == std::vector<float>{2, 4, 6, 8, 10});
}
