#pragma once
/// `Bounded`: a number that carries, beside its value, a first-order bound on how far a
/// floating-point implementation of the same computation can be from the exact result.

#include <cmath>
#include <cstddef>

namespace gacc::reference {

// Note [tolerance]
// ~~~~~~~~~~~~~~~~
// gacc never hand-picks an atol or rtol. Every tolerance is a bound on the rounding error of an
// implementation in the recipe's precision, derived by running the oracle's own code (the same
// template that computes the exact answer) in `Bounded` arithmetic: running error analysis
// (Wilkinson), automated by operator overloading.
//
// Each Bounded value x carries e(x) >= |computed(x) - exact(x)| to first order in the unit
// roundoff u (2^-24 for fp32; set by RoundingScope). Inputs that the recipe holds exactly (fp32
// weights and data from fixtures, hyperparameters, the recipe's own parameters when a step is
// checked from them) carry e = 0. Every operation adds the error it propagates and the rounding
// it makes (standard model fl(a op b) = (a op b)(1 + d), |d| <= u):
//   a +- b   e = e(a) + e(b) + u|a +- b|
//   a * b    e = |b| e(a) + |a| e(b) + u|ab|
//   a / b    e = (e(a) + |a/b| e(b)) / |b| + u|a/b|
//   sqrt(a)  e = min(e(a) / (2 sqrt a), sqrt e(a)) + u sqrt(a)
//   tanh(a)  e = (1 - tanh^2 a) e(a) + 2 k u |tanh a|, k = kTanhUlps (a k-ulp library function)
// Reductions whose order an implementation chooses (matrix products, batch sums, norms, the
// all-reduce) never take the order of the oracle's loop. They use the order-free bound (Higham,
// "The accuracy of floating point summation", 1993): any summation tree of n terms in which each
// term passes through at most n - 1 additions errs by at most
//   gamma_{n-1} * sum |x_i|,   gamma_k = k u / (1 - k u),
// plus the propagated sum of e(x_i) (sum_of, dot_of below). This is what makes one bound hold for
// every split: a gradient element accumulated over K micro-batches of sizes m_1..m_K (and W
// ranks) passes each example's term through at most (m_k - 1) + (K - 1) + (W - 1) <= N - 1
// additions, N the examples of the window: the large batch's own bound covers every split,
// uneven, partial or data-parallel, with no term that depends on K.
//
// What the oracle does not model, it allows for: a correct recipe multiplies each example's loss
// gradient by a few constants the large batch does not have (its micro-batch's share m_k / N or
// 1/K, 1/W, the reduction's 2/numel rounded to fp32). Each adds at most u relative; the oracle
// grants kScaleRoundings of them at the loss-gradient seed (rounding_allowance), and at the loss.
//
// An optimizer step is checked from the recipe's own parameters and state (exact inputs) with the
// oracle's gradient carrying its bound, so the step's tolerance is |d update / d grad| times the
// gradient's tolerance plus the step's own roundings — for SGD, lr times the gradient's bound and
// a few u of each term; for Adam about lr / (sqrt(v_hat) + eps) per element — again computed, not
// written down. Along the whole trajectory the same arithmetic carries each step's error into the
// next (the parameters' bounds enter the next gradient through the model's own derivatives).
//
// The bound is first order: terms in u^2 are dropped (at fp32, 2^-48 relative). It is also
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
/// Accuracy of the tanh an fp32 implementation calls, in ulps (Sleef and glibc tanhf: <= 2).
constexpr double kTanhUlps = 2.0;

/// Unit roundoff of the implementation being bounded, for the calling thread (default fp32).
double unit_roundoff();

/// Sets the unit roundoff for the calling thread while it lives.
class RoundingScope {
 public:
  explicit RoundingScope(double unit_roundoff);
  ~RoundingScope();
  RoundingScope(const RoundingScope&) = delete;
  RoundingScope& operator=(const RoundingScope&) = delete;

 private:
  double previous_;
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

template <class T>
double error_of(const T&) {
  return 0.0;
}

}  // namespace gacc::reference
