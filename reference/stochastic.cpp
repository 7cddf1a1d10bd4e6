#include "reference/stochastic.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fixtures/random.h"

namespace gacc::reference {
namespace {

thread_local uint64_t t_state = 0x2545f4914f6cdd1dULL;  ///< the current draw's key, or its counter
thread_local RoundingChoice t_choice = RoundingChoice::per_value;

Stochastic rounded(double x) { return {round_stochastically(rounding_format(), x)}; }

}  // namespace

RoundingDraw::RoundingDraw(uint64_t seed, int draw, RoundingChoice choice)
    : previous_state_(t_state), previous_choice_(t_choice) {
  t_state = fixtures::mix64(fixtures::mix64(seed) ^ static_cast<uint64_t>(draw));
  t_choice = choice;
}

RoundingDraw::~RoundingDraw() {
  t_state = previous_state_;
  t_choice = previous_choice_;
}

namespace {

/// The draw's random bits for rounding the exact value `x` into a format of `precision` bits
/// (Note [probabilistic tolerance]): per_value, a function of |x| within the draw, as
/// round-to-nearest is (equal values round alike and opposite ones oppositely, so their errors add
/// up, or cancel, as a real implementation's do); per_operation, the draw's next bits.
uint64_t bits_for(double x, int precision) {
  if (t_choice == RoundingChoice::per_operation) {
    t_state += 0x9e3779b97f4a7c15ULL;
    return fixtures::mix64(t_state);
  }
  const double magnitude = std::fabs(x);
  uint64_t bits = 0;
  std::memcpy(&bits, &magnitude, sizeof bits);
  return fixtures::mix64(t_state ^ fixtures::mix64(bits ^ (static_cast<uint64_t>(precision) << 56)));
}

/// A uniform number in [0, 1) for `x` (as bits_for).
double uniform_for(double x, int precision) { return static_cast<double>(bits_for(x, precision) >> 11) * 0x1p-53; }

/// The general case (values that are subnormal in double, or below the format's spacing).
double round_stochastically_slow(const FloatFormat& format, double x) {
  const double magnitude = std::fabs(x);
  int exponent = 0;
  std::frexp(magnitude, &exponent);  // magnitude in [2^(exponent-1), 2^exponent)
  const double spacing = std::ldexp(1.0, std::max(exponent - 1, format.min_exponent) - (format.precision - 1));
  const double lower = std::floor(magnitude / spacing) * spacing;
  if (lower == magnitude) return x;
  const double chosen = uniform_for(x, format.precision) * spacing < magnitude - lower ? lower + spacing : lower;
  return std::copysign(chosen > max_finite(format) ? HUGE_VAL : chosen, x);
}

}  // namespace

double round_stochastically(const FloatFormat& format, double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  if (std::fabs(x) > max_finite(format)) return round_to(format, x);
  uint64_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  const uint64_t sign = bits & (uint64_t{1} << 63), magnitude = bits & ~(uint64_t{1} << 63);
  const int exponent = static_cast<int>(magnitude >> 52) - 1023;
  // The double's significand bits below the format's spacing at x (more of them in the format's
  // subnormal range).
  const int drop = 53 - format.precision + std::max(0, format.min_exponent - exponent);
  if (exponent == -1023 || drop > 52) return round_stochastically_slow(format, x);
  if (drop <= 0) return x;
  const uint64_t mask = (uint64_t{1} << drop) - 1, remainder = magnitude & mask;
  if (remainder == 0) return x;
  // Up with probability remainder / 2^drop; the carry of lower + spacing into the exponent is the
  // next binade's first value, as it should be.
  const uint64_t lower = magnitude & ~mask;
  const uint64_t chosen =
      (bits_for(x, format.precision) >> (64 - drop)) < remainder ? lower + (uint64_t{1} << drop) : lower;
  double out = 0.0;
  const uint64_t out_bits = chosen | sign;
  std::memcpy(&out, &out_bits, sizeof out);
  return std::fabs(out) > max_finite(format) ? std::copysign(HUGE_VAL, x) : out;
}

Stochastic operator+(const Stochastic& a, const Stochastic& b) { return rounded(a.value + b.value); }
Stochastic operator-(const Stochastic& a, const Stochastic& b) { return rounded(a.value - b.value); }
Stochastic operator*(const Stochastic& a, const Stochastic& b) { return rounded(a.value * b.value); }
Stochastic operator/(const Stochastic& a, const Stochastic& b) { return rounded(a.value / b.value); }

Stochastic sqrt(const Stochastic& a) { return rounded(std::sqrt(a.value)); }
Stochastic tanh(const Stochastic& a) { return rounded(std::tanh(a.value)); }
Stochastic exp(const Stochastic& a) { return rounded(std::exp(a.value)); }
Stochastic log(const Stochastic& a) { return rounded(std::log(a.value)); }
Stochastic cos(const Stochastic& a) { return rounded(std::cos(a.value)); }

Stochastic erf(const Stochastic& a) {
  const double absolute = rounding_format().precision <= kFp32.precision ? kErfAbsolute : 0.0;
  return rounded(std::erf(a.value) + (2.0 * uniform_for(a.value, 0) - 1.0) * absolute);
}

Stochastic constant_of(double c, const Stochastic*) { return {round_to(rounding_format(), c)}; }

void round_low(Stochastic& x) {
  if (const FloatFormat* low = low_precision()) x.value = round_stochastically(*low, x.value);
}

}  // namespace gacc::reference
