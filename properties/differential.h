#pragma once
/// Differential mode's judge: gradient accumulation judged for a model gacc does not know. gacc
/// generates splits (core/differential.h), the stack trains its own model on them three ways, and
/// the accumulated run is judged against the float64 large batch element by element with a
/// tolerance derived from the stack's own measured float32 noise (docs/external-stacks.md,
/// "Differential mode"). The loop generates splits, runs the stack through a callback, judges,
/// records every case through properties::add_case and shrinks the first failure (Note [shrinking]).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/differential.h"
#include "properties/runner.h"

namespace gacc::properties {

/// The most micro-batches a generated window holds, the most examples in one micro-batch, and the
/// most optimizer steps.
inline constexpr int kMaxDifferentialK = 6;
inline constexpr int kMaxDifferentialMicroSize = 4;
inline constexpr int kMaxDifferentialSteps = 3;

/// Splits drawn from `seed`: S in 1..3 steps, K in 1..6 micro-batches of uneven sizes (1..4
/// examples each) summing to the global batch, a partial last window in a third of the cases.
Splits generate_splits(uint64_t seed);

/// The splits of generated differential case `index` under run seed `seed` (what the loop draws).
Splits generated_splits(uint64_t seed, int index);

/// Smaller splits to try when shrinking a failure, most promising first: fewer steps, a smaller K
/// (two neighbours merged, or one dropped, in every window that holds them), a shorter last window,
/// fewer examples. Each keeps every window but the last at K micro-batches.
std::vector<Splits> shrink_candidates(const Splits& splits);

/// One judged quantity over one case: its worst ratio (error / tolerance; at least 1 fails,
/// infinity for a structural failure) and where it was, with the tolerance's derivation.
struct DifferentialCheck {
  std::string name;   ///< differential-gradients, -losses, -params, -counters, -fp32-probe
  std::string claim;  ///< what it checks, one line
  double ratio = 0.0;
  std::string detail;
  std::string diagnosis = {};  ///< of a failure, where a known signature fits (Note [diagnosis])
  bool failed() const { return !(ratio < 1.0); }
};

/// The names of the checks, in the order judge_differential returns them.
std::vector<std::string> differential_check_names();

/// Judges a result against its splits (the derivation: docs/external-stacks.md):
///   noise64(Q) = 2^-29 x max_i |large_batch_fp32_i - large_batch_i| over quantity Q of a step
///                (the whole gradient, the whole parameters, the loss)
///   tolerance_i = kToleranceMargin x (2 x noise64(Q) + (K + 1) u64 (|acc_i| + |lb_i|))
/// for every gradient, loss and parameter after each step; the counters structurally; and the
/// probe that the float32 variant is rounding noise at all (within 2^-10 of large_batch's scale),
/// without which a wrong float32 run would loosen every tolerance. A result whose float64 runs
/// computed in float32, or whose large batches miss a window, is an InputError (exit 3).
std::vector<DifferentialCheck> judge_differential(const Splits& splits, const DifferentialResult& result);

/// Whether any check failed.
bool any_failed(const std::vector<DifferentialCheck>& checks);

/// One result judged (`gacc case verify`): a row per check for recipe "result", one case.
RunReport judge_differential_case(const Splits& splits, const DifferentialResult& result);

/// Runs the stack on splits and returns what it wrote; throws InputError or EnvironmentError where
/// it cannot (a shrink candidate that throws is passed over; a generated case that throws ends the run).
using RunStack = std::function<DifferentialResult(const Splits&)>;

struct DifferentialRunOptions {
  int cases = 20;
  uint64_t seed = 1;
  /// Runs of the stack allowed to shrink the first failure.
  int max_shrink_evaluations = 40;
  /// Called after each case with (cases done, cases in all); may be empty.
  std::function<void(int, int)> progress;
  /// The lines that rerun a shrunk counterexample's splits, added to the failing rows; may be empty.
  std::function<std::string(const Splits&)> reproducer;
};

/// The differential loop: generated splits of `options.seed`, each run by `run_stack` and judged
/// into a row per check for `recipe` (every case's verdicts recorded); the first failing case is
/// shrunk and the failing rows carry its counterexample.
RunReport run_differential(const std::string& recipe, const RunStack& run_stack,
                           const DifferentialRunOptions& options);

}  // namespace gacc::properties
