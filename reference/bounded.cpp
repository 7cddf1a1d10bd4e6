#include "reference/bounded.h"

#include <algorithm>

namespace gacc::reference {
namespace {

thread_local double t_unit_roundoff = 0x1p-24;

}  // namespace

double unit_roundoff() { return t_unit_roundoff; }

RoundingScope::RoundingScope(double u) : previous_(t_unit_roundoff) { t_unit_roundoff = u; }
RoundingScope::~RoundingScope() { t_unit_roundoff = previous_; }

double gamma_k(double k) {
  const double ku = k * t_unit_roundoff;
  return ku / (1.0 - ku);
}

Bounded operator+(const Bounded& a, const Bounded& b) {
  const double v = a.value + b.value;
  return {v, a.error + b.error + t_unit_roundoff * std::fabs(v)};
}

Bounded operator-(const Bounded& a, const Bounded& b) {
  const double v = a.value - b.value;
  return {v, a.error + b.error + t_unit_roundoff * std::fabs(v)};
}

Bounded operator*(const Bounded& a, const Bounded& b) {
  const double v = a.value * b.value;
  return {v, std::fabs(b.value) * a.error + std::fabs(a.value) * b.error +
                 t_unit_roundoff * std::fabs(v)};
}

Bounded operator/(const Bounded& a, const Bounded& b) {
  const double v = a.value / b.value;
  return {v, (a.error + std::fabs(v) * b.error) / std::fabs(b.value) + t_unit_roundoff * std::fabs(v)};
}

Bounded sqrt(const Bounded& a) {
  const double v = std::sqrt(a.value);
  const double propagated =
      v > 0.0 ? std::min(a.error / (2.0 * v), std::sqrt(a.error)) : std::sqrt(a.error);
  return {v, propagated + t_unit_roundoff * v};
}

Bounded tanh(const Bounded& a) {
  const double v = std::tanh(a.value);
  return {v, (1.0 - v * v) * a.error + 2.0 * kTanhUlps * t_unit_roundoff * std::fabs(v)};
}

Bounded sum_of(const Bounded* x, size_t n) {
  double value = 0.0, magnitude = 0.0, propagated = 0.0;
  for (size_t i = 0; i < n; ++i) {
    value += x[i].value;
    magnitude += std::fabs(x[i].value);
    propagated += x[i].error;
  }
  return {value, propagated + (n > 1 ? gamma_k(static_cast<double>(n - 1)) : 0.0) * magnitude};
}

Bounded dot_of(const Bounded* a, const Bounded* b, size_t n) {
  double value = 0.0, magnitude = 0.0, propagated = 0.0;
  for (size_t i = 0; i < n; ++i) {
    value += a[i].value * b[i].value;
    magnitude += std::fabs(a[i].value * b[i].value);
    propagated += std::fabs(a[i].value) * b[i].error + std::fabs(b[i].value) * a[i].error;
  }
  return {value, propagated + gamma_k(static_cast<double>(n)) * magnitude};
}

}  // namespace gacc::reference
