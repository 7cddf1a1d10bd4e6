// The CPU twin of the fused accumulator: bf16/fp16/fp32 gradients summed into fp32 exactly as one
// fused multiply-add per element, the sticky non-finite flag, finalize against a float64
// reference, and bad input refused before the buffer is touched.

#include "implementations/cuda/grad_accumulator_cpu.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "tests/implementations/cuda/gradient_values.h"

using namespace gacc::cuda;
using namespace gacc::cuda::test;
using Catch::Matchers::Contains;

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
  std::vector<float> expected(static_cast<size_t>(make_layout(sizes).total), 0.0f);  // padding stays 0
  for (int round = 0; round < 3; ++round) {
    const GradientType type = round == 0   ? GradientType::fp32
                              : round == 1 ? GradientType::bf16
                                           : GradientType::fp16;
    const float scale = round == 2 ? 0.25f : 1.0f / 3.0f;
    std::vector<GradientView> views;
    for (size_t t = 0; t < sizes.size(); ++t) {
      const int64_t offset = acc.offset(t);
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
    }
    acc.accumulate(views, scale);
    REQUIRE(acc.buffer().size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO("round " << round << ", element " << i);
      CHECK(acc.buffer()[i] == expected[i]);  // bit for bit
    }
  }
  CHECK_FALSE(acc.found_non_finite());
  // Slots start on 16-byte boundaries: 7 -> 8, an empty one, 33 -> 36, 16.
  CHECK(acc.offset(1) == 8);
  CHECK(acc.offset(2) == 8);
  CHECK(acc.offset(3) == 44);
  CHECK(acc.offset(4) == 60);
  CHECK(acc.buffer().size() == 64);
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
  CHECK(acc.buffer()[static_cast<size_t>(acc.offset(1))] == grads[1][0]);
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
  CHECK(acc.buffer() == std::vector<float>{2, 4, 6, 0, 8, 10, 0, 0});  // slots of 4: zero padding
}

TEST_CASE("finalize applies the clip coefficient when asked, and only when it is not 1", "[accumulator]") {
  const std::vector<int64_t> sizes = {5, 3};
  std::vector<float> a = {3, -4, 0.5f, 2, -1}, b = {7, 1, -2};
  const std::vector<GradientView> views = {{a.data(), 5, GradientType::fp32},
                                           {b.data(), 3, GradientType::fp32}};
  CpuGradAccumulator measured(sizes), clipped(sizes), unclipped(sizes);
  for (auto* acc : {&measured, &clipped, &unclipped}) acc->accumulate(views, 1.0f);
  const auto reference = measured.finalize(1.0f, 2.0f);
  const auto result = clipped.finalize(1.0f, 2.0f, /*apply_clip=*/true);
  CHECK(result.clip_coefficient == reference.clip_coefficient);
  REQUIRE(result.clip_coefficient < 1.0f);
  for (size_t i = 0; i < measured.buffer().size(); ++i) {
    CHECK(clipped.buffer()[i] == measured.buffer()[i] * result.clip_coefficient);  // one fp32 multiply
  }
  CHECK(unclipped.finalize(1.0f, 1000.0f, true).clip_coefficient == 1.0f);
  CHECK(unclipped.buffer()[0] == 3.0f);  // untouched
}

TEST_CASE("a gradient pointer not aligned to its element size is refused", "[accumulator]") {
  CpuGradAccumulator acc({2});
  alignas(8) unsigned char bytes[16] = {};
  CHECK_THROWS_WITH(acc.accumulate({GradientView{bytes + 1, 2, GradientType::fp32}}, 1.0f),
                    Contains("gradient 0 (fp32) is misaligned"));
  CHECK_THROWS_WITH(acc.accumulate({GradientView{bytes + 3, 2, GradientType::bf16}}, 1.0f),
                    Contains("gradient 0 (bf16) is misaligned"));
  CHECK_THROWS_WITH(acc.accumulate({GradientView{bytes, 2, static_cast<GradientType>(7)}}, 1.0f),
                    Contains("unsupported type"));
  CHECK_NOTHROW(acc.accumulate({GradientView{bytes + 2, 2, GradientType::fp16}}, 1.0f));
}
