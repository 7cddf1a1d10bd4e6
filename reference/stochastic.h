#pragma once
/// `Stochastic`: a number whose every operation is rounded into the implementation's format by
/// stochastic rounding, so that one run of the oracle's code in it is one draw of the rounding
/// errors a real implementation makes. Many draws measure how far an implementation in that format
/// typically is from the truth: the probabilistic tolerance (Note [probabilistic tolerance]).

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/floating_point.h"
#include "reference/bounded.h"

namespace gacc::reference {

// Note [probabilistic tolerance]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The first-order bound of Note [tolerance] is a proof: no implementation in the format can be
// further from the truth. It is tight in fp32 (a correct recipe reaches half of it), but it charges
// every rounding at its worst, with every sign aligned, and in bf16 (u = 2^-8) through a few layers
// that worst case grows past the value it bounds, or to infinity where a first-order expansion
// breaks down (a variance whose bound exceeds it). A check against such a tolerance passes a zero
// gradient: it did not look. Measured on LibTorch's CPU autocast (bf16, the zoo): the real error of
// a correct recipe's gradient is 0.1%..1.5% of its norm, while the strict bound is 5% to over 100x
// of it.
//
// The realistic size of rounding errors is the subject of probabilistic rounding error analysis
// (Higham & Mary, "A new approach to probabilistic rounding error analysis", SISC 2019; Connolly,
// Higham & Mary, "Stochastic rounding and its probabilistic backward error analysis", SISC 2021):
// model each rounding error as a random variable of mean zero bounded by u, and the error of a
// computation of n roundings grows like sqrt(n) u, not n u. gacc measures that growth instead of
// bounding it: the oracle's own code runs R = kRoundingDraws more times in `Stochastic`, where
// every operation the Bounded analysis charges — each arithmetic operation and library function in
// fp32, each value autocast stores in bf16 or fp16 (round_low), each constant and host scalar as
// the implementation holds it — rounds to one of its two neighbours in the format, up with
// probability equal to its distance from the lower one. Stochastic rounding is unbiased and its
// error has twice the variance of round-to-nearest's on average (p(1 - p) ulp^2 against ulp^2 / 12),
// so its spread over-estimates a round-to-nearest implementation's. Each draw runs the window as a
// correct accumulating implementation does — every micro-batch of every rank on its own (its
// products' low-precision outputs rounded per micro-batch), the gradients summed in fp32, then
// unscale, norm, clipping, the optimizer — so the split's own roundings are part of the spread.
//
// For each element the root mean square of the R draws' deviations from the truth, s, estimates the
// standard deviation of an implementation's error. The probabilistic bound is kRoundingSpread * s:
// an error of a correct implementation beyond it needs the implementation to be kRoundingSpread
// estimated standard deviations out, which for a sum of many independent roundings (close to
// Gaussian; the estimate from R = 16 draws follows Student's t with 16 degrees of freedom) has a
// probability below 1e-8 per element: kRoundingSpread = 8 gives P(|t_16| > 8) = 5.5e-7 at the
// tolerance's half (the 0.5 a correct recipe must stay under) once the factor 2 between stochastic
// and nearest rounding's variance is counted (8 sqrt 2 = 11.3 standard deviations of the
// nearest-rounding error: P(|t_16| > 11.3) = 4.4e-9). The tolerance is kToleranceMargin times the
// smaller of the two bounds, elementwise: the strict one where it is tighter (it stays the proof),
// the probabilistic one where the strict one has grown past it. The false-alarm rate is measured,
// not assumed (bench/RESULTS.md: correct recipes' worst ratio over thousands of bf16 and fp16 cases).
// A draw that overflows (fp16 at a scale within the bound of overflowing) is left out of the
// spread; if fewer than half of the draws are finite, the strict bound stands alone.
//
// The fp32 policy keeps the strict bound alone: there it is tight, and it is a proof.

/// Stochastic re-runs per window (R).
constexpr int kRoundingDraws = 16;
/// The probabilistic bound in units of the draws' root-mean-square deviation.
constexpr double kRoundingSpread = 8.0;

/// A double whose every operation rounds stochastically into the current rounding format
/// (RoundingScope), and whose round_low rounds into the autocast format (LowPrecisionScope).
struct Stochastic {
  double value = 0.0;

  Stochastic() = default;
  /// An exact value (constants the implementation holds go through constant_of).
  Stochastic(double v) : value(v) {}  // NOLINT(google-explicit-constructor)
};

/// Seeds the calling thread's stochastic rounding while it lives: draw `draw` of `seed`.
class RoundingDraw {
 public:
  RoundingDraw(uint64_t seed, int draw);
  ~RoundingDraw();
  RoundingDraw(const RoundingDraw&) = delete;
  RoundingDraw& operator=(const RoundingDraw&) = delete;

 private:
  uint64_t previous_;
};

/// `x` rounded to one of its two neighbours in `format`, up with probability equal to its distance
/// from the lower one in units of their spacing (subnormals included); beyond the largest finite
/// value, rounded as round_to does (infinity); exact values and non-finite ones unchanged.
double round_stochastically(const FloatFormat& format, double x);

/// The calling thread's next uniform number in [0, 1) (the rounding draws' source).
double next_uniform();

Stochastic operator+(const Stochastic& a, const Stochastic& b);
Stochastic operator-(const Stochastic& a, const Stochastic& b);
Stochastic operator*(const Stochastic& a, const Stochastic& b);
Stochastic operator/(const Stochastic& a, const Stochastic& b);
inline Stochastic operator-(const Stochastic& a) { return {-a.value}; }
inline Stochastic& operator+=(Stochastic& a, const Stochastic& b) { return a = a + b; }
inline Stochastic& operator-=(Stochastic& a, const Stochastic& b) { return a = a - b; }
inline Stochastic& operator*=(Stochastic& a, const Stochastic& b) { return a = a * b; }
inline Stochastic& operator/=(Stochastic& a, const Stochastic& b) { return a = a / b; }
inline bool operator<(const Stochastic& a, const Stochastic& b) { return a.value < b.value; }
inline bool operator>(const Stochastic& a, const Stochastic& b) { return a.value > b.value; }
inline bool operator<=(const Stochastic& a, const Stochastic& b) { return a.value <= b.value; }
inline bool operator>=(const Stochastic& a, const Stochastic& b) { return a.value >= b.value; }

Stochastic sqrt(const Stochastic& a);
Stochastic tanh(const Stochastic& a);
Stochastic exp(const Stochastic& a);
Stochastic log(const Stochastic& a);
/// fp32 erf also errs absolutely (kErfAbsolute): a uniform draw of that size is added.
Stochastic erf(const Stochastic& a);
Stochastic cos(const Stochastic& a);
inline Stochastic max(const Stochastic& a, const Stochastic& b) { return {std::fmax(a.value, b.value)}; }
inline Stochastic min(const Stochastic& a, const Stochastic& b) { return {std::fmin(a.value, b.value)}; }
inline Stochastic abs(const Stochastic& a) { return {std::fabs(a.value)}; }
inline double to_double(const Stochastic& x) { return x.value; }

/// Host values (a scheduled rate, a bias correction) are doubles, as in every implementation.
template <>
struct HostType<Stochastic> {
  using type = double;
};

/// A constant the implementation holds in its format: rounded to nearest, as a cast does.
Stochastic constant_of(double c, const Stochastic*);
/// x stored in the autocast format: one stochastic rounding into it. No-op outside autocast.
void round_low(Stochastic& x);

}  // namespace gacc::reference
