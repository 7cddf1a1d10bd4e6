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
// every rounding at its worst, with every sign aligned, and under bf16 autocast (u = 2^-8) through a
// few layers that worst case grows past the value it bounds, or to infinity where a first-order
// expansion breaks down (a variance whose bound exceeds it). A check against such a tolerance passes
// a zero gradient: it did not look (Note [looked], properties/compare.h). Measured on LibTorch's CPU
// autocast over the zoo: the real error of a correct recipe's bf16 gradient is 0.1% to 1.5% of its
// norm, while the strict bound is 5% to over 100 times it, or infinite.
//
// The realistic size of rounding errors is the subject of probabilistic rounding error analysis
// (Higham & Mary, "A new approach to probabilistic rounding error analysis", SISC 2019; Connolly,
// Higham & Mary, "Stochastic rounding and its probabilistic backward error analysis", SISC 2021):
// model each rounding error as a random variable of mean zero bounded by u, and the error of n
// roundings grows like sqrt(n) u, not n u. gacc measures that growth rather than bounding it. The
// oracle's own model code runs kRoundingDraws more times in `Stochastic`, where every operation the
// Bounded analysis charges — each arithmetic operation and library function in fp32, each value
// autocast stores in bf16 or fp16 (round_low), a low-precision product's gradient once per
// micro-batch — rounds to one of its two neighbours in the format, up with probability equal to its
// distance from the lower one. Stochastic rounding is unbiased, and its error has twice the variance
// of round-to-nearest's on average (p(1 - p) ulp^2 against ulp^2 / 12), so the draws' spread
// over-estimates a round-to-nearest implementation's. Half the draws choose afresh at every
// operation, half as a function of the value's magnitude, as round-to-nearest is (RoundingChoice).
// Real kernels do both. Where a value recurs — the same token in the same context in many sequences
// of a window, as a small vocabulary and short sequences make common — they compute it alike each
// time and its errors add up n-fold, not sqrt(n)-fold: draws that choose per operation alone missed
// that (a correct recipe's LayerNorm bias gradient reached 0.56 of its tolerance in a 2000-case bf16
// run, 9 of their deviations from the truth). But where two equal values meet in a cancellation
// (two equal keys of one query: a query gradient that is exactly zero), a kernel may compute them by
// different paths (a GEMM's vector body and its tail) and leave a residue of a rounding, while draws
// keyed by value cancel exactly and would allow none: draws that choose per value alone flagged a
// correct fp32 recipe there at 3e-19 against a tolerance of 0. Each kind of draw covers the other's
// blind spot; their spread is pooled. Each draw
// evaluates the window as a correct accumulating implementation does — every micro-batch of every rank on its own, normalized by the
// window's loss elements, the gradients summed in fp32 — so the split's own roundings are in the
// spread. With W > 1 ranks, half the draws follow DDP's convention instead (each rank's loss W times
// its share of the window's mean, the summed gradient divided by W): both conventions are correct
// and in use, and they round differently — under fp16 at a loss scale of 1 a W times larger
// backward pass rounds and underflows elsewhere (with the first convention's draws alone, a correct
// ddp-average reached 0.793 of its tolerance in 2000 cases).
//
// The draws measure one thing only: what this window's rounding does to its evaluation — the loss,
// the buffers, the unscaled gradient before clipping and its norm. For each of their elements s is
// the draws' root-mean-square deviation from the truth, and the evaluation's bound is capped at kRoundingSpread * s (at least one rounding of the value), or left as it is
// where that is smaller.
// Everything downstream keeps the first-order analysis: clipping, the optimizer step and the
// trajectory carry the capped bound through their own derivatives, in Bounded arithmetic. That
// matters where the step is not smooth in the gradient: Adam's update at step one is lr * g / (|g| +
// eps), a whole lr of either sign for a gradient element within rounding of zero, which a handful of
// draws may never show flipping; propagated, the bound there is as wide as the flip, and only there.
// Along the trajectory the evaluation's cap is the bound the parameters carry into it (the same
// evaluation in Bounded arithmetic with fresh rounding off: PropagationOnly) plus kRoundingSpread * s
// for this window's own rounding, drawn from the truth's state.
//
// kRoundingSpread = 8 (and kToleranceMargin = 2 on top, as for the strict bound): for a sum of many
// independent roundings (close to Gaussian), an implementation rounds like one kind of draw, whose
// 8 draws estimate its standard deviation (Student's t with 8 degrees of freedom) and make up at
// least half of the pooled mean square. Half the tolerance is then at least 8 / sqrt(2) = 5.7
// estimated standard deviations of stochastic rounding, 8 of nearest rounding's (half its
// variance): a round-to-nearest error beyond it has probability P(|t_8| > 8) < 5e-5 per element, and
// one beyond the whole tolerance (a false alarm) P(|t_8| > 16) < 3e-7. (The larger of the two
// kinds' spreads instead of the pooled one, tried, widened the tolerance enough that BatchNorm's
// documented deviation fell to 9.7 of it in the mutation matrix: the pooled spread is kept.) That is
// the model's figure; the false-alarm rate is measured, not assumed (bench/RESULTS.md: correct recipes' worst ratio over thousands of bf16 and fp16 cases),
// and the tests check that a round-to-nearest re-enactment of the oracle stays within half of it. A
// draw that overflows (fp16 at a scale within the bound of overflowing) is left out; with fewer than
// half the draws finite, the strict bound stands alone. Under fp32 the strict bound is tight and a
// proof, and the draws are skipped where it already pins the window down; where it is loose (the
// loss or the gradient's norm bounded no better than 2^-12 of its value, 4096 u: a LayerNorm over a
// few nearly equal features, a softmax saturating) it breaks down as in low precision, and the
// draws cap it there too — only the elements it does not resolve (its bound not below the value:
// where it resolves one, the proof stands), at the cost of a second Bounded run of that window.

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

/// How a draw chooses between a value's two neighbours (Note [probabilistic tolerance]).
enum class RoundingChoice {
  per_operation,  ///< independently at every operation: equal values computed by different paths
  per_value,      ///< as a function of the value, as round-to-nearest is: equal values round alike
};

/// Seeds the calling thread's stochastic rounding while it lives: draw `draw` of `seed`.
class RoundingDraw {
 public:
  RoundingDraw(uint64_t seed, int draw, RoundingChoice choice);
  ~RoundingDraw();
  RoundingDraw(const RoundingDraw&) = delete;
  RoundingDraw& operator=(const RoundingDraw&) = delete;

 private:
  uint64_t previous_state_;
  RoundingChoice previous_choice_;
};

/// `x` rounded to one of its two neighbours in `format`, up with probability equal to its distance
/// from the lower one in units of their spacing (subnormals included); beyond the largest finite
/// value, rounded as round_to does (infinity); exact values and non-finite ones unchanged. Within a
/// RoundingChoice::per_value draw the choice is a function of |x| (equal values round alike, opposite
/// ones oppositely); in a per_operation draw it is made afresh at every call.
double round_stochastically(const FloatFormat& format, double x);

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
