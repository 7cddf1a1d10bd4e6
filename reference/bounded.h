#pragma once
/// `Bounded`: a number that carries, beside its value, a first-order bound on how far a
/// floating-point implementation of the same computation can be from the exact result.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/floating_point.h"

namespace gacc::reference {

// Note [tolerance]
// ~~~~~~~~~~~~~~~~
// gacc never hand-picks an atol or rtol. Every tolerance is a bound on the rounding error of an
// implementation in the recipe's precision, derived by running the oracle's own code (the same
// template that computes the exact answer) in `Bounded` arithmetic: running error analysis
// (Wilkinson), automated by operator overloading.
//
// Each Bounded value x carries e(x) >= |computed(x) - exact(x)| to first order in the unit
// roundoff u of the format being bounded (2^-24 for fp32; set by RoundingScope). Inputs that the
// recipe holds exactly (weights and data from fixtures, the recipe's own parameters when a step is
// checked from them) carry e = 0; a constant the implementation must round to its format (lr = 0.1,
// eps = 1e-5, 1/sqrt(d)) carries u|c| (`constant`). Every operation adds the error it propagates
// and the rounding it makes (standard model fl(a op b) = (a op b)(1 + d), |d| <= u):
//   a +- b   e = e(a) + e(b) + u|a +- b|
//   a * b    e = |b| e(a) + |a| e(b) + e(a) e(b) + u|ab|
//   a / b    e = (e(a) + |a/b| e(b)) / (|b| - e(b)) + u|a/b|
//   sqrt(a)  e = min(e(a) / (2 sqrt a), sqrt e(a)) + u sqrt(a)
//   f(a)     e = |f'(a)| e(a) + 2 k u |f(a)| + A   for a library function accurate to k ulps and to
//            A absolutely: tanh, exp, log k = kFunctionUlps (Sleef's u10 and u20 variants: <= 2);
//            erf A = kErfAbsolute for fp32, because ATen's AVX2/AVX-512 float erf is Abramowitz &
//            Stegun 7.1.26 (|error| <= 1.5e-7) evaluated in fp32 — an absolute, not a relative,
//            accuracy, which matters for GELU far left of zero.
//   max, min, clamp  e = the larger e of the operands (they are 1-Lipschitz), no rounding.
// Reductions whose order an implementation chooses (matrix products, batch and token sums, norms,
// the all-reduce) never take the order of the oracle's loop. They use the order-free bound (Higham,
// "The accuracy of floating point summation", 1993): any summation tree of n terms in which each
// term passes through at most n - 1 additions errs by at most
//   gamma_{n-1} * sum |x_i|,   gamma_k = k u / (1 - k u),
// plus the propagated sum of e(x_i) (sum_of, dot_of, and Sum for a reduction built term by term).
// This is what makes one bound hold for every split: a gradient element accumulated over K
// micro-batches of sizes m_1..m_K (and W ranks) passes each term through at most
// (m_k - 1) + (K - 1) + (W - 1) <= N - 1 additions, N the terms of the window: the large batch's own
// bound covers every split, uneven, partial or data-parallel, with no term that depends on K.
//
// Where an implementation's formula has different rounding behaviour from the textbook one, the
// oracle computes ATen's (equal in exact arithmetic): LayerNorm and GroupNorm normalize as
// x * rstd - mean * rstd and differentiate through ds = sum(dy gamma x) (cancellation when
// |mean| >> std is then charged, not hidden); softmax multiplies by the reciprocal of its sum.
//
// What the oracle does not model, it allows for: a correct recipe multiplies each example's loss
// gradient by a few constants the large batch does not have (its micro-batch's share m_k / N or
// 1/K, 1/W, the reduction's 2/numel rounded to the format). Each adds at most u relative; the
// oracle grants kScaleRoundings of them at the loss-gradient seed (rounding_allowance), and at the
// loss.
//
// An optimizer step is checked from the recipe's own parameters and state (exact inputs) with the
// oracle's gradient carrying its bound, so the step's tolerance is |d update / d grad| times the
// gradient's tolerance plus the step's own roundings — for SGD, lr times the gradient's bound and
// a few u of each term; for Adam about lr / (sqrt(v_hat) + eps) per element — again computed, not
// written down. Along the whole trajectory the same arithmetic carries each step's error into the
// next (the parameters' bounds enter the next gradient through the model's own derivatives).
//
// The bound is first order in u (terms in u^2, 2^-48 relative at fp32, are dropped), except that
// products and quotients keep e(a) e(b): where an exact value is zero — a gradient that vanishes by
// symmetry — that term is the whole error, and the comparison must not demand exactness. It is also
// attained: one correctly rounded operation whose result lies just above a power of two errs by
// half an ulp, which is u|v| (here the standard model is exact, not pessimistic). So the tolerance
// is kToleranceMargin = 2 times the bound: a correct implementation stays at ratio
// (|observed - expected| / tolerance) <= 0.5 by construction, and a verdict fails at ratio >= 1,
// an error more than twice the worst case. A pitfall's error is a model-level mistake (a factor K,
// a missing micro-batch, an extra decay), orders of magnitude above u: its ratio is typically
// 1e3..1e7. tests/reference/bounded_test.cpp re-enacts the oracle in fp32 and checks that the
// bound holds.

/// Tolerance = kToleranceMargin x the first-order bound (see Note [tolerance]).
constexpr double kToleranceMargin = 2.0;
/// Roundings of an implementation's constant scalings granted per term (see Note [tolerance]).
constexpr double kScaleRoundings = 4.0;
/// Accuracy of the elementary functions (tanh, exp, log, erf) an implementation calls, in ulps.
constexpr double kFunctionUlps = 2.0;
/// Absolute accuracy of fp32 erf in ATen: Abramowitz & Stegun 7.1.26's 1.5e-7, plus the rounding
/// of its dozen fp32 operations on values of magnitude at most 1.
constexpr double kErfAbsolute = 1.5e-7 + 12 * 0x1p-24;

/// The format of the implementation being bounded, for the calling thread (default fp32).
const FloatFormat& rounding_format();
/// Its unit roundoff u.
double unit_roundoff();

/// Sets the format being bounded for the calling thread while it lives.
class RoundingScope {
 public:
  explicit RoundingScope(const FloatFormat& format);
  ~RoundingScope();
  RoundingScope(const RoundingScope&) = delete;
  RoundingScope& operator=(const RoundingScope&) = delete;

 private:
  const FloatFormat* previous_;
};

/// The low-precision format of an autocast region (bf16 or fp16), for the calling thread; null
/// outside autocast (every tensor in the rounding format).
const FloatFormat* low_precision();

/// Sets the autocast format for the calling thread while it lives (null: no autocast).
class LowPrecisionScope {
 public:
  explicit LowPrecisionScope(const FloatFormat* format);
  ~LowPrecisionScope();
  LowPrecisionScope(const LowPrecisionScope&) = delete;
  LowPrecisionScope& operator=(const LowPrecisionScope&) = delete;

 private:
  const FloatFormat* previous_;
};

/// While it lives, Bounded arithmetic on the calling thread adds no rounding of its own: errors the
/// inputs carry propagate through the operations' derivatives, and nothing else (no unit
/// roundoff, no autocast store, no library function's ulps). How far an error in the parameters
/// alone moves a window's results (Note [probabilistic tolerance], reference/stochastic.h).
class PropagationOnly {
 public:
  PropagationOnly();
  ~PropagationOnly();
  PropagationOnly(const PropagationOnly&) = delete;
  PropagationOnly& operator=(const PropagationOnly&) = delete;

 private:
  bool previous_;
};

/// gamma_k = k u / (1 - k u) for the current unit roundoff.
double gamma_k(double k);

/// A value with a first-order bound on the error of computing it in floating point.
struct Bounded {
  double value = 0.0;
  double error = 0.0;  ///< bound on |computed - exact|, first order in u

  Bounded() = default;
  /// An exact constant (implicit, so templated code can write T(2)).
  Bounded(double v) : value(v) {}  // NOLINT(google-explicit-constructor)
  Bounded(double v, double e) : value(v), error(e) {}
};

Bounded operator+(const Bounded& a, const Bounded& b);
Bounded operator-(const Bounded& a, const Bounded& b);
Bounded operator*(const Bounded& a, const Bounded& b);
Bounded operator/(const Bounded& a, const Bounded& b);
inline Bounded operator-(const Bounded& a) { return {-a.value, a.error}; }
inline Bounded& operator+=(Bounded& a, const Bounded& b) { return a = a + b; }
inline Bounded& operator-=(Bounded& a, const Bounded& b) { return a = a - b; }
inline Bounded& operator*=(Bounded& a, const Bounded& b) { return a = a * b; }
inline Bounded& operator/=(Bounded& a, const Bounded& b) { return a = a / b; }
// Comparisons look at values: they steer control flow the way the implementation's would.
inline bool operator<(const Bounded& a, const Bounded& b) { return a.value < b.value; }
inline bool operator>(const Bounded& a, const Bounded& b) { return a.value > b.value; }
inline bool operator<=(const Bounded& a, const Bounded& b) { return a.value <= b.value; }
inline bool operator>=(const Bounded& a, const Bounded& b) { return a.value >= b.value; }

Bounded sqrt(const Bounded& a);
Bounded tanh(const Bounded& a);
Bounded exp(const Bounded& a);
Bounded log(const Bounded& a);
Bounded erf(const Bounded& a);
Bounded cos(const Bounded& a);
Bounded max(const Bounded& a, const Bounded& b);
Bounded min(const Bounded& a, const Bounded& b);
inline Bounded abs(const Bounded& a) { return {std::fabs(a.value), a.error}; }
inline double to_double(const Bounded& x) { return x.value; }
inline double error_of(const Bounded& x) { return x.error; }

/// Sum of n terms, bounded for any summation order.
Bounded sum_of(const Bounded* x, size_t n);
/// a . b over n terms, bounded for any order (and for fused multiply-add).
Bounded dot_of(const Bounded* a, const Bounded* b, size_t n);
/// Grants `roundings` extra roundings of x (see Note [tolerance]).
inline void rounding_allowance(Bounded& x, double roundings) {
  x.error += roundings * unit_roundoff() * std::fabs(x.value);
}
/// A constant the implementation holds in its format: exact if representable, else rounded.
Bounded constant_of(double c, const Bounded*);
/// x stored in the autocast format (an op's low-precision output, or an fp32 weight cast for a
/// low-precision matrix product): one more rounding, u_low |x| + underflow_error(low) (gradual
/// underflow: what loss scaling protects fp16 gradients from). No-op outside autocast. Under an
/// OverflowAnalysis it also decides whether the stored value is infinite.
void round_low(Bounded& x);
/// The fp32 re-enactment rounds for real (to infinity beyond the format's range).
inline void round_low(float& x) {
  if (const FloatFormat* low = low_precision()) x = static_cast<float>(round_to(*low, x));
}

// Note [overflow]
// ~~~~~~~~~~~~~~~
// Under fp16 with dynamic loss scaling the question GradScaler asks of each window is not "how far
// from the truth" but "is any gradient non-finite": the whole step is skipped if so. The oracle
// answers it by running each micro-batch's scaled backward in Bounded arithmetic under an
// OverflowAnalysis. Every value stored in fp16 (round_low) is classified against the format's
// overflow threshold T (65520): if |value| - error >= T every implementation within the bound stores
// infinity (definite), if |value| + error < T none does, otherwise it is ambiguous. A definite
// overflow sets the value to +-infinity, and IEEE arithmetic carries it on exactly as the
// implementation's does (inf times a finite nonzero stays infinite, times zero is NaN, tanh(inf) is
// 1), because the oracle computes ATen's formulas: so it reaches a parameter's gradient exactly
// where the implementation's does, and never through a value that autograd does not compute (the
// first layer's input gradient). An ambiguous value is run both ways: assumed finite, and assumed
// infinite. If the gradient is non-finite even when every ambiguous value is finite, the window
// definitely overflows; if it is finite even when they are all infinite, it definitely does not;
// otherwise either outcome is right, and the recipe's choice is judged (the verdict says so). Over W
// ranks the scaled gradients of a correct stack may be up to W times larger (DDP normalizes each
// rank's loss by its own share): definite is judged at the loss scale, none at W times it.

/// Whether a value stored in a format overflows to infinity, for every implementation within the bound.
enum class Overflow { none, ambiguous, definite };

/// Classifies x (computed within x.error of x.value, before the rounding) against `format`'s
/// overflow threshold. Non-finite values are definite.
Overflow overflow_of(const FloatFormat& format, const Bounded& x);

/// While it lives, round_low on the calling thread sets values that overflow (Note [overflow]) to
/// infinity: the definite ones, and the ambiguous ones too when `ambiguous_overflow` is true.
class OverflowAnalysis {
 public:
  explicit OverflowAnalysis(bool ambiguous_overflow);
  ~OverflowAnalysis();
  OverflowAnalysis(const OverflowAnalysis&) = delete;
  OverflowAnalysis& operator=(const OverflowAnalysis&) = delete;

  /// Whether any stored value was ambiguous.
  bool saw_ambiguous() const { return saw_ambiguous_; }

  /// Applies the analysis to a value being stored in `format` (round_low's hook).
  void store(const FloatFormat& format, Bounded& x);

 private:
  bool ambiguous_overflow_;
  bool saw_ambiguous_ = false;
  OverflowAnalysis* previous_;
};

// The same operations for the plain number types: the natural loop, no bound to keep.

template <class T>
T sum_of(const T* x, size_t n) {
  T s = T(0);
  for (size_t i = 0; i < n; ++i) s += x[i];
  return s;
}

template <class T>
T dot_of(const T* a, const T* b, size_t n) {
  T s = T(0);
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
void rounding_allowance(T&, double) {}

/// The truth has no storage format: casts are exact.
template <class T>
void round_low(T&) {}

template <class T>
double error_of(const T&) {
  return 0.0;
}

template <class T>
T constant_of(double c, const T*) {
  return T(c);
}

/// The constant `c` as the implementation holds it (see constant_of).
template <class T>
T constant(double c) {
  return constant_of(c, static_cast<const T*>(nullptr));
}

/// The type a value computed on the host (in double, by every implementation) takes when the
/// oracle runs in T: T itself, but double for the fp32 re-enactment (float).
template <class T>
struct HostType {
  using type = T;
};
template <>
struct HostType<float> {
  using type = double;
};
template <class T>
using Host = typename HostType<T>::type;

/// A value an implementation computes on the host in double (a scheduled learning rate, a bias
/// correction). `compute(Host<T>{})` returns it (the argument only names the type to compute in);
/// a Bounded run computes it under fp64 rounding.
template <class T, class Compute>
Host<T> host_value(Compute compute) {
  if constexpr (std::is_same_v<T, Bounded>) {
    RoundingScope fp64(kFp64);
    return compute(Bounded{});
  } else {
    return compute(Host<T>{});
  }
}

/// host_scalar's last step for Bounded: the rounding of an fp64 result into the current format.
Bounded host_scalar_rounded(const Bounded& computed_in_fp64);

/// A host value applied as a constant in the implementation's format (a step size, 1 - beta):
/// host_value, then one rounding into the format.
template <class T, class Compute>
T host_scalar(Compute compute) {
  if constexpr (std::is_same_v<T, Bounded>) {
    return host_scalar_rounded(host_value<T>(compute));
  } else if constexpr (std::is_same_v<Host<T>, T>) {
    return host_value<T>(compute);  // the truth: no format to round into
  } else {
    return constant<T>(host_value<T>(compute));  // float: the cast; Stochastic: rounded to nearest
  }
}

/// A reduction built term by term (a gradient element summed over examples and tokens), bounded
/// like sum_of for any order of the terms.
template <class T>
class Sum {
 public:
  void add(const T& term) { total_ += term; }
  T result() const { return total_; }

 private:
  T total_ = T(0);
};

template <>
class Sum<Bounded> {
 public:
  void add(const Bounded& term) {
    value_ += term.value;
    propagated_ += term.error;
    magnitude_ += std::fabs(term.value);
    ++count_;
  }
  /// In autocast, the sum is stored in the low-precision format, once per micro-batch in an
  /// accumulating recipe: that rounding is charged on the mass, u_low sum |x_i| >= the sum over
  /// micro-batches of u_low |partial sum|, so that the bound stays independent of the split.
  /// Each partial sum may also underflow once: count times underflow_error(low) bounds that for
  /// any number of micro-batches.
  Bounded result() const {
    double error = propagated_ + (count_ > 1 ? gamma_k(static_cast<double>(count_ - 1)) : 0.0) * magnitude_;
    if (const FloatFormat* low = low_precision()) {
      error += unit_roundoff(*low) * magnitude_ + static_cast<double>(count_) * underflow_error(*low);
    }
    return {value_, std::isnan(error) ? HUGE_VAL : error};
  }

 private:
  double value_ = 0.0, propagated_ = 0.0, magnitude_ = 0.0;
  int64_t count_ = 0;
};

}  // namespace gacc::reference
