#include "reference/bounded.h"

#include <algorithm>

namespace gacc::reference {
namespace {

thread_local const FloatFormat* t_format = &kFp32;
thread_local const FloatFormat* t_low = nullptr;
thread_local OverflowAnalysis* t_analysis = nullptr;
thread_local bool t_propagation_only = false;

double u() { return t_propagation_only ? 0.0 : unit_roundoff(*t_format); }

/// An error bound that arithmetic made NaN (an infinite bound times a zero) is unbounded.
double bound(double error) { return std::isnan(error) ? HUGE_VAL : error; }

/// Absolute accuracy of erf in the current format (Note [tolerance]).
double erf_absolute() { return !t_propagation_only && t_format->precision <= kFp32.precision ? kErfAbsolute : 0.0; }

/// A library function's rounding: k ulps of the result, 2 k u |v|.
double function_rounding(double v) { return 2.0 * kFunctionUlps * u() * std::fabs(v); }

}  // namespace

const FloatFormat& rounding_format() { return *t_format; }
double unit_roundoff() { return u(); }

RoundingScope::RoundingScope(const FloatFormat& format) : previous_(t_format) { t_format = &format; }
RoundingScope::~RoundingScope() { t_format = previous_; }

const FloatFormat* low_precision() { return t_propagation_only ? nullptr : t_low; }

PropagationOnly::PropagationOnly() : previous_(t_propagation_only) { t_propagation_only = true; }
PropagationOnly::~PropagationOnly() { t_propagation_only = previous_; }

LowPrecisionScope::LowPrecisionScope(const FloatFormat* format) : previous_(t_low) { t_low = format; }
LowPrecisionScope::~LowPrecisionScope() { t_low = previous_; }

void round_low(Bounded& x) {
  const FloatFormat* low = low_precision();
  if (!low) return;
  if (t_analysis) t_analysis->store(*low, x);
  x.error = bound(x.error + unit_roundoff(*low) * std::fabs(x.value) + underflow_error(*low));
}

Overflow overflow_of(const FloatFormat& format, const Bounded& x) {
  const double threshold = overflow_threshold(format), magnitude = std::fabs(x.value);
  if (!(magnitude - x.error < threshold)) return Overflow::definite;  // NaN compares false: definite too
  return magnitude + x.error < threshold ? Overflow::none : Overflow::ambiguous;
}

OverflowAnalysis::OverflowAnalysis(bool ambiguous_overflow)
    : ambiguous_overflow_(ambiguous_overflow), previous_(t_analysis) {
  t_analysis = this;
}

OverflowAnalysis::~OverflowAnalysis() { t_analysis = previous_; }

void OverflowAnalysis::store(const FloatFormat& format, Bounded& x) {
  if (!std::isfinite(x.value)) return;  // already infinite or NaN: stays so
  const Overflow overflow = overflow_of(format, x);
  saw_ambiguous_ = saw_ambiguous_ || overflow == Overflow::ambiguous;
  if (overflow == Overflow::definite || (overflow == Overflow::ambiguous && ambiguous_overflow_)) {
    x.value = std::copysign(HUGE_VAL, x.value);
  }
}

double gamma_k(double k) {
  const double ku = k * u();
  return ku / (1.0 - ku);
}

Bounded operator+(const Bounded& a, const Bounded& b) {
  const double v = a.value + b.value;
  return {v, bound(a.error + b.error + u() * std::fabs(v))};
}

Bounded operator-(const Bounded& a, const Bounded& b) {
  const double v = a.value - b.value;
  return {v, bound(a.error + b.error + u() * std::fabs(v))};
}

// Products and quotients keep their second-order term: where a value is exactly zero (a gradient
// that vanishes by symmetry), e(a) e(b) is all the error there is.
Bounded operator*(const Bounded& a, const Bounded& b) {
  const double v = a.value * b.value;
  return {v, bound(std::fabs(b.value) * a.error + std::fabs(a.value) * b.error + a.error * b.error + u() * std::fabs(v))};
}

Bounded operator/(const Bounded& a, const Bounded& b) {
  const double v = a.value / b.value;
  const double margin = std::fabs(b.value) - b.error;
  const double propagated = margin > 0.0 ? (a.error + std::fabs(v) * b.error) / margin : HUGE_VAL;
  return {v, bound(propagated + u() * std::fabs(v))};
}

Bounded sqrt(const Bounded& a) {
  const double v = std::sqrt(a.value);
  const double propagated = v > 0.0 ? std::min(a.error / (2.0 * v), std::sqrt(a.error)) : std::sqrt(a.error);
  return {v, bound(propagated + u() * v)};
}

Bounded tanh(const Bounded& a) {
  const double v = std::tanh(a.value);
  return {v, bound((1.0 - v * v) * a.error + function_rounding(v))};
}

Bounded exp(const Bounded& a) {
  const double v = std::exp(a.value);
  return {v, bound(v * std::expm1(a.error) + function_rounding(v))};
}

Bounded log(const Bounded& a) {
  const double v = std::log(a.value);
  const double margin = std::fabs(a.value) - a.error;
  return {v, bound((margin > 0.0 ? -std::log1p(-a.error / std::fabs(a.value)) : HUGE_VAL) + function_rounding(v))};
}

Bounded erf(const Bounded& a) {
  const double v = std::erf(a.value);
  const double slope = 2.0 / std::sqrt(M_PI) * std::exp(-a.value * a.value);
  return {v, bound(slope * a.error + function_rounding(v) + erf_absolute())};
}

Bounded cos(const Bounded& a) {
  const double v = std::cos(a.value);
  return {v, bound(std::fabs(std::sin(a.value)) * a.error + function_rounding(v))};
}

Bounded max(const Bounded& a, const Bounded& b) {
  return {std::max(a.value, b.value), bound(std::max(a.error, b.error))};
}

Bounded min(const Bounded& a, const Bounded& b) {
  return {std::min(a.value, b.value), bound(std::max(a.error, b.error))};
}

Bounded constant_of(double c, const Bounded*) {
  return {c, representable(*t_format, c) ? 0.0 : u() * std::fabs(c)};
}

Bounded host_scalar_rounded(const Bounded& c) {
  return {c.value, c.error + (representable(*t_format, c.value) ? 0.0 : u() * std::fabs(c.value))};
}

Bounded sum_of(const Bounded* x, size_t n) {
  Sum<Bounded> sum;
  for (size_t i = 0; i < n; ++i) sum.add(x[i]);
  return sum.result();
}

Bounded dot_of(const Bounded* a, const Bounded* b, size_t n) {
  double value = 0.0, magnitude = 0.0, propagated = 0.0;
  for (size_t i = 0; i < n; ++i) {
    value += a[i].value * b[i].value;
    magnitude += std::fabs(a[i].value * b[i].value);
    propagated += bound(std::fabs(a[i].value) * b[i].error + std::fabs(b[i].value) * a[i].error + a[i].error * b[i].error);
  }
  return {value, bound(propagated + gamma_k(static_cast<double>(n)) * magnitude)};
}

}  // namespace gacc::reference
