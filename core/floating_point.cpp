#include "core/floating_point.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace gacc {

double round_to(const FloatFormat& f, double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  int exponent = 0;
  std::frexp(x, &exponent);  // x = m 2^exponent, 0.5 <= |m| < 1: the leading bit is 2^(exponent-1)
  // The spacing of the format around x: normal numbers keep `precision` bits below the leading
  // one; below the normal range the spacing stays that of the smallest normal (subnormals).
  const int leading = std::max(exponent - 1, f.min_exponent);
  const double spacing = std::ldexp(1.0, leading - (f.precision - 1));
  // x / spacing is exact (a power-of-two scaling of a double within range), and nearbyint rounds
  // it to the nearest integer, ties to even, in the default rounding mode.
  const double rounded = std::nearbyint(x / spacing) * spacing;
  const double largest = max_finite(f);
  if (std::fabs(rounded) > largest) return std::copysign(std::numeric_limits<double>::infinity(), x);
  return rounded;
}

namespace {

/// The double of these bits (formats' constants built without ldexp: the oracle asks for them per
/// operation).
double from_bits(uint64_t bits) {
  double out = 0.0;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

}  // namespace

double unit_roundoff(const FloatFormat& f) { return from_bits(static_cast<uint64_t>(1023 - f.precision) << 52); }

double max_finite(const FloatFormat& f) {
  // 1.1...1 (precision bits) x 2^max_exponent
  const uint64_t significand = ((uint64_t{1} << (f.precision - 1)) - 1) << (53 - f.precision);
  return from_bits((static_cast<uint64_t>(f.max_exponent + 1023) << 52) | significand);
}

double overflow_threshold(const FloatFormat& f) {
  return std::ldexp(2.0 - std::ldexp(1.0, -f.precision), f.max_exponent);
}

double underflow_error(const FloatFormat& f) { return std::ldexp(1.0, f.min_exponent - f.precision); }

const FloatFormat& format_of(Precision precision) {
  switch (precision) {
    case Precision::fp32: return kFp32;
    case Precision::bf16: return kBf16;
    case Precision::fp16: return kFp16;
  }
  return kFp32;
}

}  // namespace gacc
