#pragma once
// Test data for both accumulators: fresh random gradients (never zeros or constants) and their
// nearest bf16 / fp16 bit patterns, from core's rounding model (not from the code under test).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/floating_point.h"

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

}  // namespace gacc::cuda::test
