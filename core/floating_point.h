#pragma once
/// Rounding to the recipe's floating-point formats, exactly as IEEE 754 hardware does it:
/// round to nearest, ties to even; overflow to infinity; gradual underflow through subnormals.
/// Used by fixtures (data and weights exact in the recipe's precision) and by the oracle's
/// rounding models (bf16 and fp16 mixed precision, loss-scale overflow).

#include <cstdint>

#include "core/scenario.h"

namespace gacc {

/// A binary floating-point format: `precision` significand bits (the implicit one included),
/// exponents of normal numbers in [min_exponent, max_exponent] (value = 1.m x 2^e).
struct FloatFormat {
  int precision;
  int min_exponent;
  int max_exponent;
  const char* name;
};

inline constexpr FloatFormat kFp32{24, -126, 127, "fp32"};
inline constexpr FloatFormat kBf16{8, -126, 127, "bf16"};
inline constexpr FloatFormat kFp16{11, -14, 15, "fp16"};
inline constexpr FloatFormat kFp64{53, -1022, 1023, "fp64"};

/// `x` rounded to `format`: nearest, ties to even; +-inf beyond the largest finite value (after
/// rounding); subnormals below the smallest normal; NaN stays NaN.
double round_to(const FloatFormat& format, double x);

/// Unit roundoff of the format: 2^-precision (2^-24 for fp32, 2^-8 for bf16, 2^-11 for fp16).
double unit_roundoff(const FloatFormat& format);

/// Largest finite value of the format (65504 for fp16).
double max_finite(const FloatFormat& format);

/// The magnitude from which rounding to `format` gives infinity: the largest finite value plus half
/// its spacing (65520 for fp16; a tie there rounds to the even significand, which is the overflow).
double overflow_threshold(const FloatFormat& format);

/// The largest absolute error of rounding into the subnormal range of `format`: half the smallest
/// subnormal (2^-25 for fp16). The standard model with gradual underflow is
/// fl(x) = x (1 + d) + n, |d| <= u, |n| <= this.
double underflow_error(const FloatFormat& format);

/// The format values of `precision` are stored in: fp32 for fp32, bf16 and fp16 for themselves.
const FloatFormat& format_of(Precision precision);

/// Whether `x` is exactly representable in `format`.
inline bool representable(const FloatFormat& format, double x) { return round_to(format, x) == x; }

}  // namespace gacc
