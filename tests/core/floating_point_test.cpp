#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/floating_point.h"

using gacc::FloatFormat;
using gacc::kBf16;
using gacc::kFp16;
using gacc::kFp32;
using gacc::kFp64;
using gacc::round_to;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A small counter-based generator of its own (SplitMix64), so this test does not lean on fixtures.
uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// A double with a random sign, a random 53-bit significand and a binary exponent uniform in
/// [min_exp, max_exp].
double random_double(uint64_t i, int min_exp, int max_exp) {
  const uint64_t a = splitmix(2 * i), b = splitmix(2 * i + 1);
  const double significand = 1.0 + static_cast<double>(a >> 12) * 0x1p-52;  // [1, 2)
  const int exponent = min_exp + static_cast<int>(b % static_cast<uint64_t>(max_exp - min_exp + 1));
  const double x = std::ldexp(significand, exponent);
  return (b >> 63) ? -x : x;
}

/// Every finite non-negative value of a 16-bit format with `mantissa_bits` stored significand bits
/// and exponent bias `bias`, decoded from its bit pattern (independently of round_to), in
/// increasing order. `even[i]` says whether value i has an even last significand bit.
struct Grid {
  std::vector<double> values;
  std::vector<bool> even;
};

Grid grid_of(int mantissa_bits, int bias) {
  Grid grid;
  const int exponent_bits = 15 - mantissa_bits;
  const uint32_t max_exponent_field = (1u << exponent_bits) - 1;
  for (uint32_t bits = 0; bits < 0x8000; ++bits) {
    const uint32_t exponent = bits >> mantissa_bits;
    const uint32_t mantissa = bits & ((1u << mantissa_bits) - 1);
    if (exponent == max_exponent_field) break;  // inf and NaN
    const double value = exponent == 0
                             ? std::ldexp(static_cast<double>(mantissa), 1 - bias - mantissa_bits)
                             : std::ldexp(static_cast<double>(mantissa + (1u << mantissa_bits)),
                                          static_cast<int>(exponent) - bias - mantissa_bits);
    grid.values.push_back(value);
    grid.even.push_back((bits & 1u) == 0);
  }
  return grid;
}

Grid fp16_grid() { return grid_of(10, 15); }
Grid bf16_grid() { return grid_of(7, 127); }

/// Walks every pair of neighbours of a format's grid: both are representable, the midpoint (exact
/// in double) goes to the even one, and anything strictly between goes to the nearer one.
void check_grid(const FloatFormat& format, const Grid& grid) {
  INFO(format.name);
  REQUIRE(grid.values.size() > 2);
  CHECK(grid.values.back() == gacc::max_finite(format));
  for (size_t i = 0; i + 1 < grid.values.size(); ++i) {
    const double a = grid.values[i], b = grid.values[i + 1];
    INFO("between " << a << " and " << b);
    REQUIRE(round_to(format, a) == a);
    REQUIRE(round_to(format, -a) == -a);
    const double mid = a + (b - a) / 2;  // exact: a and b have at most 11 significant bits
    REQUIRE(mid > a);
    REQUIRE(mid < b);
    const double even = grid.even[i] ? a : b;
    REQUIRE(round_to(format, mid) == even);
    REQUIRE(round_to(format, -mid) == -even);
    REQUIRE(round_to(format, std::nextafter(mid, 0.0)) == a);
    REQUIRE(round_to(format, std::nextafter(mid, kInf)) == b);
    REQUIRE(round_to(format, a + (b - a) / 4) == a);
    REQUIRE(round_to(format, a + 3 * (b - a) / 4) == b);
  }
}

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

/// bf16 rounding of a float by the usual bit trick (round to nearest even on the upper 16 bits).
double bf16_by_bits(float f) {
  const uint32_t bits = float_to_bits(f);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  return static_cast<double>(bits_to_float(rounded));
}

}  // namespace

TEST_CASE("formats have IEEE 754's unit roundoff and largest finite value", "[floating_point]") {
  CHECK(gacc::unit_roundoff(kFp32) == 0x1p-24);
  CHECK(gacc::unit_roundoff(kBf16) == 0x1p-8);
  CHECK(gacc::unit_roundoff(kFp16) == 0x1p-11);
  CHECK(gacc::unit_roundoff(kFp64) == 0x1p-53);
  CHECK(gacc::max_finite(kFp16) == 65504.0);
  CHECK(gacc::max_finite(kFp32) == static_cast<double>(std::numeric_limits<float>::max()));
  CHECK(gacc::max_finite(kBf16) == 0x1.fep127);
  CHECK(gacc::max_finite(kFp64) == std::numeric_limits<double>::max());
  CHECK(&gacc::format_of(gacc::Precision::fp32) == &kFp32);
  CHECK(&gacc::format_of(gacc::Precision::bf16) == &kBf16);
  CHECK(&gacc::format_of(gacc::Precision::fp16) == &kFp16);
  CHECK(std::string(kBf16.name) == "bf16");
}

TEST_CASE("round_to rounds ties to even", "[floating_point]") {
  // bf16 keeps 8 significant bits: around 1 the spacing is 2^-7, so 1 + 2^-8 is a tie.
  CHECK(round_to(kBf16, 1 + 0x1p-8) == 1.0);
  CHECK(round_to(kBf16, 1 + 3 * 0x1p-8) == 1 + 0x1p-6);
  CHECK(round_to(kBf16, 1 + 5 * 0x1p-8) == 1 + 0x1p-6);  // between 1+2^-7 (odd) and 1+2*2^-7 (even)
  CHECK(round_to(kBf16, -(1 + 0x1p-8)) == -1.0);
  CHECK(round_to(kBf16, -(1 + 3 * 0x1p-8)) == -(1 + 0x1p-6));
  CHECK(round_to(kBf16, 1 + 0x1p-8 + 0x1p-30) == 1 + 0x1p-7);  // just above the tie
  // fp16: spacing 2^-10 at 1.
  CHECK(round_to(kFp16, 1 + 0x1p-11) == 1.0);
  CHECK(round_to(kFp16, 1 + 3 * 0x1p-11) == 1 + 0x1p-9);
  CHECK(round_to(kFp16, 2049.0) == 2048.0);  // spacing 2 above 2048
  CHECK(round_to(kFp16, 2051.0) == 2052.0);
  // fp32: spacing 2^-23 at 1.
  CHECK(round_to(kFp32, 1 + 0x1p-24) == 1.0);
  CHECK(round_to(kFp32, 1 + 3 * 0x1p-24) == 1 + 0x1p-22);
  CHECK(round_to(kFp32, 16777217.0) == 16777216.0);
  CHECK(round_to(kFp32, 16777219.0) == 16777220.0);
  // A tie that carries into the next binade.
  CHECK(round_to(kBf16, 2 - 0x1p-8) == 2.0);
  CHECK(round_to(kFp16, 2 - 0x1p-11) == 2.0);
}

TEST_CASE("round_to overflows to infinity only beyond the largest finite value after rounding",
          "[floating_point]") {
  CHECK(round_to(kFp16, 65504.0) == 65504.0);
  CHECK(round_to(kFp16, 65519.0) == 65504.0);
  CHECK(round_to(kFp16, 65519.99) == 65504.0);
  CHECK(round_to(kFp16, 65520.0) == kInf);  // the tie goes to 65536: infinity
  CHECK(round_to(kFp16, 65536.0) == kInf);
  CHECK(round_to(kFp16, 1e10) == kInf);
  CHECK(round_to(kFp16, -65504.0) == -65504.0);
  CHECK(round_to(kFp16, -65519.0) == -65504.0);
  CHECK(round_to(kFp16, -65520.0) == -kInf);
  CHECK(round_to(kFp16, -1e300) == -kInf);
  const double fp32_max = std::numeric_limits<float>::max();
  CHECK(round_to(kFp32, fp32_max) == fp32_max);
  CHECK(round_to(kFp32, fp32_max + 0x1p103 - 0x1p80) == fp32_max);  // just below the tie
  CHECK(round_to(kFp32, fp32_max + 0x1p103) == kInf);               // the tie: 2^128
  CHECK(round_to(kFp32, -1e39) == -kInf);
  CHECK(round_to(kBf16, 0x1.fep127) == 0x1.fep127);
  CHECK(round_to(kBf16, 0x1.fep127 + 0x1p119) == kInf);  // the tie
  CHECK(round_to(kBf16, 0x1.fep127 + 0x1p118) == 0x1.fep127);
  CHECK(round_to(kBf16, std::numeric_limits<double>::max()) == kInf);
  CHECK(round_to(kFp64, std::numeric_limits<double>::max()) == std::numeric_limits<double>::max());
  CHECK(round_to(kFp16, kInf) == kInf);
  CHECK(round_to(kFp16, -kInf) == -kInf);
}

TEST_CASE("round_to underflows gradually through subnormals", "[floating_point]") {
  const double tiny = 0x1p-24;  // fp16's smallest subnormal
  CHECK(round_to(kFp16, tiny) == tiny);
  CHECK(round_to(kFp16, -tiny) == -tiny);
  CHECK(round_to(kFp16, tiny / 2) == 0.0);  // a tie between 0 (even) and 2^-24
  CHECK(round_to(kFp16, std::nextafter(tiny / 2, 1.0)) == tiny);
  CHECK(round_to(kFp16, 0.49 * tiny) == 0.0);
  CHECK(round_to(kFp16, 1e-30) == 0.0);
  CHECK(round_to(kFp16, 0.75 * tiny) == tiny);
  CHECK(round_to(kFp16, 1.5 * tiny) == 2 * tiny);  // a tie between 1 and 2 units: 2 is even
  CHECK(round_to(kFp16, 2.5 * tiny) == 2 * tiny);
  CHECK(round_to(kFp16, 3.5 * tiny) == 4 * tiny);
  CHECK(round_to(kFp16, 1023 * tiny) == 1023 * tiny);  // the largest subnormal
  CHECK(round_to(kFp16, 0x1p-14) == 0x1p-14);         // the smallest normal
  CHECK(round_to(kFp16, 0x1p-14 + tiny / 2) == 0x1p-14);
  CHECK(round_to(kFp16, 0x1p-15 + tiny / 4) == 0x1p-15);  // subnormal spacing stays 2^-24
  // An underflow to zero keeps the sign.
  CHECK(std::signbit(round_to(kFp16, -0.25 * tiny)));
  CHECK(round_to(kFp16, -0.25 * tiny) == 0.0);
  CHECK(std::signbit(round_to(kFp32, -0.0)));
  // bf16 and fp32 share the exponent range: their smallest subnormals are 2^-133 and 2^-149.
  CHECK(round_to(kBf16, 0x1p-133) == 0x1p-133);
  CHECK(round_to(kBf16, 0x1p-134) == 0.0);
  CHECK(round_to(kBf16, 0x1.8p-133) == 0x1p-132);
  CHECK(round_to(kBf16, 0x1p-130 + 0x1p-133) == 0x1p-130 + 0x1p-133);
  CHECK(round_to(kFp32, 0x1p-149) == 0x1p-149);
  CHECK(round_to(kFp32, 0x1p-150) == 0.0);
  CHECK(round_to(kFp32, 0x1.8p-149) == 0x1p-148);
  CHECK(round_to(kFp32, 1e-50) == 0.0);
  // Subnormal doubles round through the double grid unchanged.
  CHECK(round_to(kFp64, std::numeric_limits<double>::denorm_min()) == std::numeric_limits<double>::denorm_min());
}

TEST_CASE("round_to keeps NaN, infinities and zeros", "[floating_point]") {
  for (const FloatFormat* f : {&kFp32, &kBf16, &kFp16, &kFp64}) {
    INFO(f->name);
    CHECK(std::isnan(round_to(*f, std::numeric_limits<double>::quiet_NaN())));
    CHECK(std::isnan(round_to(*f, -std::numeric_limits<double>::quiet_NaN())));
    CHECK(round_to(*f, kInf) == kInf);
    CHECK(round_to(*f, -kInf) == -kInf);
    CHECK(round_to(*f, 0.0) == 0.0);
    CHECK_FALSE(std::signbit(round_to(*f, 0.0)));
    CHECK(std::signbit(round_to(*f, -0.0)));
    CHECK_FALSE(gacc::representable(*f, std::numeric_limits<double>::quiet_NaN()));
    CHECK(gacc::representable(*f, kInf));
    CHECK(gacc::representable(*f, 1.0));
    CHECK(gacc::representable(*f, -0.5));
  }
}

TEST_CASE("representable tells exactly which values a format holds", "[floating_point]") {
  CHECK(gacc::representable(kFp32, 0.125));
  CHECK_FALSE(gacc::representable(kFp32, 0.1));
  CHECK(gacc::representable(kFp32, static_cast<double>(0.1f)));
  CHECK(gacc::representable(kFp32, 16777216.0));
  CHECK_FALSE(gacc::representable(kFp32, 16777217.0));
  CHECK(gacc::representable(kBf16, 1 + 0x1p-7));
  CHECK_FALSE(gacc::representable(kBf16, 1 + 0x1p-8));
  CHECK_FALSE(gacc::representable(kBf16, static_cast<double>(0.1f)));
  CHECK(gacc::representable(kFp16, 65504.0));
  CHECK_FALSE(gacc::representable(kFp16, 65505.0));
  CHECK_FALSE(gacc::representable(kFp16, 65536.0));  // finite in double, infinite in fp16
  CHECK(gacc::representable(kFp16, 0x1p-24));
  CHECK_FALSE(gacc::representable(kFp16, 0x1p-25));
  CHECK(gacc::representable(kFp16, 1 + 0x1p-10));
  CHECK_FALSE(gacc::representable(kFp16, 1 + 0x1p-11));
  CHECK(gacc::representable(kBf16, 65536.0));
  CHECK(gacc::representable(kFp64, 0.1));
}

TEST_CASE("every fp16 value is representable and every midpoint rounds to the even neighbour",
          "[floating_point]") {
  const Grid grid = fp16_grid();
  CHECK(grid.values.size() == 0x7c00);
  CHECK(grid.values[1] == 0x1p-24);
  check_grid(kFp16, grid);
  // Beyond the last value: half a spacing above 65504 is the overflow threshold.
  CHECK(round_to(kFp16, 65504.0 + 16.0) == kInf);
}

TEST_CASE("every bf16 value is representable and every midpoint rounds to the even neighbour",
          "[floating_point]") {
  const Grid grid = bf16_grid();
  CHECK(grid.values.size() == 0x7f80);
  CHECK(grid.values[1] == 0x1p-133);
  check_grid(kBf16, grid);
}

TEST_CASE("round_to(fp32) agrees with the hardware's conversion to float", "[floating_point]") {
  REQUIRE(std::numeric_limits<float>::is_iec559);
  int64_t checked = 0;
  // Magnitudes from far below fp32's subnormals to far above its largest value.
  for (const auto& [lo, hi] : {std::pair{-160, -120}, std::pair{-30, 30}, std::pair{120, 140},
                                std::pair{-1074, 1023}}) {
    for (uint64_t i = 0; i < 40000; ++i) {
      const double x = random_double(static_cast<uint64_t>(checked), lo, hi);
      // Beyond 2^128 a conversion to float is undefined in C++ (IEEE 754 says infinity).
      const double want = std::fabs(x) >= 0x1p128 ? std::copysign(kInf, x)
                                                  : static_cast<double>(static_cast<float>(x));
      const double got = round_to(kFp32, x);
      if (!(got == want && std::signbit(got) == std::signbit(want))) {
        FAIL_CHECK("round_to(fp32, " << x << ") = " << got << ", but (float) gives " << want);
      }
      ++checked;
    }
  }
  // Exact ties on the fp32 grid: a float plus half its spacing.
  for (uint64_t i = 0; i < 40000; ++i) {
    const double f = static_cast<float>(random_double(i + 1000000, -140, 126));
    const double half = std::ldexp(1.0, std::max(std::ilogb(f), -126) - 24);
    for (const double x : {f + half, f - half}) {
      const double want = static_cast<double>(static_cast<float>(x));
      if (round_to(kFp32, x) != want) {
        FAIL_CHECK("round_to(fp32, " << x << ") = " << round_to(kFp32, x) << ", but (float) gives " << want);
      }
    }
  }
  CHECK(checked == 160000);
}

TEST_CASE("round_to(bf16) of a float agrees with the bit-level rounding of its upper half",
          "[floating_point]") {
  for (uint64_t i = 0; i < 100000; ++i) {
    // Random float bit patterns, NaN and infinity excluded: every exponent, subnormals included.
    uint32_t bits = static_cast<uint32_t>(splitmix(i + 77));
    if (((bits >> 23) & 0xffu) == 0xffu) bits ^= 0x00800000u;
    const float f = bits_to_float(bits);
    const double want = bf16_by_bits(f);
    if (round_to(kBf16, f) != want) {
      FAIL_CHECK("round_to(bf16, " << f << ") = " << round_to(kBf16, f) << ", but the bit trick gives " << want);
    }
  }
}

TEST_CASE("round_to is idempotent, monotonic and errs by at most the unit roundoff", "[floating_point]") {
  for (const FloatFormat* f : {&kFp32, &kBf16, &kFp16}) {
    INFO(f->name);
    const double smallest_normal = std::ldexp(1.0, f->min_exponent);
    const double largest = gacc::max_finite(*f);
    double previous_x = -kInf, previous_r = -kInf;
    std::vector<double> xs;
    for (uint64_t i = 0; i < 20000; ++i) {
      xs.push_back(random_double(i + 5000000, f->min_exponent - 12, f->max_exponent + 1));
    }
    std::sort(xs.begin(), xs.end());
    for (const double x : xs) {
      const double r = round_to(*f, x);
      if (round_to(*f, r) != r) FAIL_CHECK("not idempotent at " << x);
      if (x > previous_x && r < previous_r) FAIL_CHECK("not monotonic between " << previous_x << " and " << x);
      const double ax = std::fabs(x);
      if (ax >= smallest_normal && ax <= largest) {
        if (std::fabs(r - x) > gacc::unit_roundoff(*f) * ax) FAIL_CHECK("error above u|x| at " << x << ": " << r);
      } else if (ax < smallest_normal) {
        // Subnormals: absolute error at most half the subnormal spacing.
        const double spacing = std::ldexp(1.0, f->min_exponent - (f->precision - 1));
        if (std::fabs(r - x) > spacing / 2) FAIL_CHECK("subnormal error above half a spacing at " << x);
      }
      previous_x = x;
      previous_r = r;
    }
  }
}

TEST_CASE("round_to(fp64) is the identity on finite doubles", "[floating_point]") {
  for (uint64_t i = 0; i < 20000; ++i) {
    const double x = random_double(i + 9000000, -1074, 1023);
    if (round_to(kFp64, x) != x) FAIL_CHECK("round_to(fp64, " << x << ") = " << round_to(kFp64, x));
  }
}

TEST_CASE("the overflow threshold is where round_to starts giving infinity", "[floating_point]") {
  CHECK(gacc::overflow_threshold(kFp16) == 65520.0);
  for (const FloatFormat* format : {&kFp16, &kBf16, &kFp32}) {
    INFO(format->name);
    const double threshold = gacc::overflow_threshold(*format);
    CHECK(round_to(*format, threshold) == kInf);
    CHECK(round_to(*format, -threshold) == -kInf);
    CHECK(round_to(*format, std::nextafter(threshold, 0.0)) == gacc::max_finite(*format));
  }
}

TEST_CASE("the underflow error is the worst rounding error among subnormals", "[floating_point]") {
  CHECK(gacc::underflow_error(kFp16) == 0x1p-25);
  CHECK(gacc::underflow_error(kBf16) == 0x1p-134);
  for (const FloatFormat* format : {&kFp16, &kBf16}) {
    INFO(format->name);
    const double eta = gacc::underflow_error(*format), smallest = 2 * eta;
    // Halfway between the smallest subnormals errs by exactly eta; nothing below the normal range errs more.
    CHECK(std::fabs(round_to(*format, 3 * eta) - 3 * eta) == eta);
    CHECK(std::fabs(round_to(*format, eta * 0.75) - eta * 0.75) <= eta);
    const double normal = std::ldexp(1.0, format->min_exponent);
    for (double x = smallest * 0.3; x < normal; x *= 1.37) CHECK(std::fabs(round_to(*format, x) - x) <= eta);
  }
}
