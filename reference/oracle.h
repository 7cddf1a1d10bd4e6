#pragma once
/// The oracle: large-batch semantics of a Scenario, in high precision, with the tolerance every
/// observed quantity is judged by (Note [tolerance] in reference/bounded.h). Computed once per
/// scenario; every recipe is judged against the same Oracle. No LibTorch.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "core/floating_point.h"
#include "core/scenario.h"
#include "core/trace.h"
#include "fixtures/fixtures.h"
#include "reference/bounded.h"

namespace gacc::reference {

/// What one optimizer step of true large-batch training gives, and how far an implementation in
/// the scenario's precision may be from it: each `*_tolerance` holds, element for element,
/// kToleranceMargin times the first-order rounding bound (Note [tolerance], reference/bounded.h).
struct WindowExpectation {
  int step = 0;
  /// The scheduled learning rate (a host double in every implementation).
  double lr = 0.0, lr_tolerance = 0.0;
  double loss = 0.0, loss_tolerance = 0.0;
  /// The gradient handed to the optimizer: the large batch's, unscaled, after clipping.
  std::vector<double> grad, grad_tolerance;
  /// Its global L2 norm before clipping.
  double norm = 0.0, norm_tolerance = 0.0;
  std::vector<double> params_after, params_after_tolerance;
  OptimizerState state_after, state_after_tolerance;
  /// Buffers after the window (BatchNorm: running statistics updated once, from the window).
  std::vector<double> buffers_after, buffers_after_tolerance;
  /// Loss scale in force for the window (fp16 under dynamic loss scaling; 1 otherwise).
  double loss_scale = 1.0;
  /// Whether the window's fp16 gradients overflow at that scale in any micro-batch (Note [overflow],
  /// reference/bounded.h). `skipped` when definite: GradScaler skips the whole step, so the
  /// parameters and optimizer state after it are those before it (tolerance 0), `grad` is empty and
  /// `norm` NaN (there is no gradient to hand to the optimizer). When ambiguous, an implementation
  /// within the bound may skip or take the step; the values here are those of the step taken.
  Overflow overflow = Overflow::none;
  bool skipped = false;
  /// Scheduler steps taken before this window: `lr` is the schedule's there (the window's index when
  /// the scheduler steps on every window; fewer when it holds on skipped steps).
  int schedule_position = 0;
};

struct OracleOptions {
  /// Compute the truth in cpp_bin_float_50 (true) or in double (faster; ample for fp32 recipes).
  bool high_precision = true;
  /// The format of the implementation judged; null takes the scenario's (fp32 weights and updates
  /// for every precision policy). &kFp64 judges a float64 implementation, as the tests do with
  /// LibTorch in float64.
  const FloatFormat* format = nullptr;
  /// BatchNorm over each micro-batch ("ghost" BatchNorm over virtual batches of the micro-batch
  /// size, running statistics updated once per micro-batch) instead of over the whole window: what
  /// an accumulating recipe with BatchNorm computes.
  bool ghost_batch_norm = false;
  /// The LR scheduler holds on a step GradScaler skipped (as accelerate does) instead of stepping on
  /// every window (as PyTorch's AMP example does): both are in use, and both are correct.
  bool scheduler_holds_on_skipped_step = false;
};

class Oracle {
 public:
  /// Validates the scenario and computes the large-batch trajectory from the initial weights.
  /// Throws InvalidCase (core/errors.h) when that trajectory diverges beyond what the judged format
  /// can hold: equivalence is not judged there.
  explicit Oracle(const Scenario& scenario, OracleOptions options = {});

  const Scenario& scenario() const { return scenario_; }
  const fixtures::ModelLayout& layout() const { return layout_; }
  const std::vector<double>& initial_params() const { return initial_params_; }
  const std::vector<double>& initial_buffers() const { return initial_buffers_; }
  /// The format of the implementation judged, and its unit roundoff.
  const FloatFormat& format() const { return *format_; }
  double unit_roundoff() const;

  /// Large-batch training from the initial weights, one entry per step. Bounds are carried along
  /// the trajectory: entry s bounds an implementation that has made s steps of rounding errors.
  /// Under fp16 the path takes every step whose overflow is ambiguous.
  const std::vector<WindowExpectation>& trajectory() const { return trajectory_; }

  /// The large-batch step `step` taken from `params`, optimizer `state` and `buffers` (a recipe's
  /// own, held exactly) under `loss_scale` (fp16: the scale the recipe had in force; by default the
  /// trajectory's): the local check. Memoized: properties asking about the same recipe share one
  /// evaluation. Throws std::invalid_argument on sizes that do not fit, non-finite values, or a loss
  /// scale that is not a positive finite number (or not 1 without fp16).
  /// `schedule_position` is the scheduler steps the recipe took before this window (by default the
  /// trajectory's).
  const WindowExpectation& window_from(int step, const std::vector<double>& params, const OptimizerState& state,
                                       const std::vector<double>& buffers,
                                       std::optional<double> loss_scale = std::nullopt,
                                       std::optional<int> schedule_position = std::nullopt) const;

  /// The same scenario under ghost BatchNorm (OracleOptions::ghost_batch_norm), built on first use.
  const Oracle& ghost() const;
  /// The same scenario with the scheduler holding on skipped steps
  /// (OracleOptions::scheduler_holds_on_skipped_step), built on first use.
  const Oracle& held() const;

  /// Ghost BatchNorm on one rank: the buffers after window `step`, from `params` and `buffers`, for
  /// every order of its micro-batches but the case's (a loop may run them in any order, and running
  /// statistics, an exponential moving average, depend on it). Empty for any other model or oracle.
  /// In double: the order only reweights the same per-micro-batch statistics.
  std::vector<std::vector<double>> buffers_in_other_orders(int step, const std::vector<double>& params,
                                                           const std::vector<double>& buffers) const;

  /// The scheduled learning rate after `position` scheduler steps, and its tolerance.
  std::pair<double, double> scheduled_rate(int position) const;

 private:
  Scenario scenario_;
  OracleOptions options_;
  const FloatFormat* format_;
  fixtures::ModelLayout layout_;
  std::vector<double> initial_params_;
  std::vector<double> initial_buffers_;
  std::vector<fixtures::Batch> windows_;
  std::vector<std::vector<int64_t>> virtual_batches_;  ///< per window; empty unless ghost
  std::vector<WindowExpectation> trajectory_;

  using Key = std::tuple<int, std::vector<double>, OptimizerState, std::vector<double>, double, int>;
  mutable std::mutex memo_mutex_;
  mutable std::map<Key, std::unique_ptr<WindowExpectation>> memo_;
  mutable std::unique_ptr<Oracle> ghost_;
  mutable std::unique_ptr<Oracle> held_;
};

}  // namespace gacc::reference
