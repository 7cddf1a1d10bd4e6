#pragma once
// Test data for both accumulators: fresh random gradients (never zeros or constants) and their
// nearest bf16 / fp16 bit patterns, from core's rounding model (not from the code under test).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/floating_point.h"
#include "implementations/cuda/accumulator_contract.h"

namespace gacc::cuda::test {

/// The nearest bf16 bit pattern of x.
inline uint16_t bf16_bits(float x) {
  const auto rounded = static_cast<float>(gacc::round_to(gacc::kBf16, x));
  uint32_t bits;
  std::memcpy(&bits, &rounded, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

/// The nearest fp16 bit pattern of x.
inline uint16_t fp16_bits(float x) {
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

/// Fresh random values, some large, some tiny.
inline std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 6);
  std::vector<float> out(n);
  for (auto& v : out) v = std::ldexp(normal(rng), exponent(rng));
  return out;
}

/// A list of gradients in host memory, fresh random values stored in each gradient's type (types
/// cycle through `types`), each gradient `shift` elements into an allocation of exactly shift + n
/// elements (shift 1: every vector access misaligned; reading past the end is AddressSanitizer's to
/// see), and views of them.
struct HostGradients {
  std::vector<std::vector<float>> fp32;    ///< fp32 gradients' storage (empty for the others)
  std::vector<std::vector<uint16_t>> low;  ///< bf16 and fp16 gradients' bit patterns
  std::vector<GradientView> views;
  int64_t shift = 0;

  HostGradients(const std::vector<int64_t>& sizes, const std::vector<GradientType>& types, uint32_t seed,
                int64_t shift_elements = 0)
      : shift(shift_elements) {
    const auto skip = static_cast<size_t>(shift);
    for (size_t t = 0; t < sizes.size(); ++t) {
      const GradientType type = types[t % types.size()];
      const auto values = random_values(static_cast<size_t>(sizes[t]), seed + static_cast<uint32_t>(t));
      fp32.emplace_back();
      low.emplace_back();
      const void* data = nullptr;
      if (type == GradientType::fp32) {
        fp32.back().resize(skip + values.size());
        std::copy(values.begin(), values.end(), fp32.back().begin() + static_cast<std::ptrdiff_t>(skip));
        data = fp32.back().data() + skip;
      } else {
        low.back().resize(skip + values.size());  // one allocation of exactly that size
        for (size_t i = 0; i < values.size(); ++i) {
          low.back()[skip + i] = type == GradientType::bf16 ? bf16_bits(values[i]) : fp16_bits(values[i]);
        }
        data = low.back().data() + skip;
      }
      views.push_back({data, sizes[t], type});
    }
  }

  /// Writes `value`, rounded to the gradient's type, over element `i` of gradient `t`; returns the
  /// element's address.
  const void* set(size_t t, int64_t i, float value) {
    const auto at = static_cast<size_t>(shift + i);
    if (views[t].type == GradientType::fp32) {
      fp32[t][at] = value;
      return &fp32[t][at];
    }
    low[t][at] = views[t].type == GradientType::bf16 ? bf16_bits(value) : fp16_bits(value);
    return &low[t][at];
  }
};

}  // namespace gacc::cuda::test
