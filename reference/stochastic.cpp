#include "reference/stochastic.h"

#include <cmath>

#include "fixtures/random.h"

namespace gacc::reference {
namespace {

thread_local uint64_t t_state = 0x2545f4914f6cdd1dULL;

Stochastic rounded(double x) { return {round_stochastically(rounding_format(), x)}; }

}  // namespace

RoundingDraw::RoundingDraw(uint64_t seed, int draw) : previous_(t_state) {
  t_state = fixtures::mix64(fixtures::mix64(seed) ^ static_cast<uint64_t>(draw));
}

RoundingDraw::~RoundingDraw() { t_state = previous_; }

double next_uniform() {
  t_state += 0x9e3779b97f4a7c15ULL;
  return static_cast<double>(fixtures::mix64(t_state) >> 11) * 0x1p-53;
}

double round_stochastically(const FloatFormat& format, double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  const double magnitude = std::fabs(x);
  if (magnitude > max_finite(format)) return round_to(format, x);
  int exponent = 0;
  std::frexp(magnitude, &exponent);  // magnitude in [2^(exponent-1), 2^exponent)
  const int spacing_exponent = std::max(exponent - 1, format.min_exponent) - (format.precision - 1);
  const double spacing = std::ldexp(1.0, spacing_exponent);
  const double lower = std::floor(magnitude / spacing) * spacing;
  if (lower == magnitude) return x;
  const double upper = lower + spacing;
  const double chosen = next_uniform() * spacing < magnitude - lower ? upper : lower;
  return std::copysign(chosen > max_finite(format) ? HUGE_VAL : chosen, x);
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
  return rounded(std::erf(a.value) + (2.0 * next_uniform() - 1.0) * absolute);
}

Stochastic constant_of(double c, const Stochastic*) { return {round_to(rounding_format(), c)}; }

void round_low(Stochastic& x) {
  if (const FloatFormat* low = low_precision()) x.value = round_stochastically(*low, x.value);
}

}  // namespace gacc::reference
