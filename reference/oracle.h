#pragma once
/// The oracle: large-batch semantics of a Scenario, in high precision, with the tolerance every
/// observed quantity is judged by (Note [tolerance] in reference/bounded.h). Computed once per
/// scenario; every recipe is judged against the same Oracle. No LibTorch.

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/scenario.h"
#include "core/trace.h"
#include "fixtures/fixtures.h"

namespace gacc::reference {

/// What one optimizer step of true large-batch training gives, and how far an implementation in
/// the scenario's precision may be from it: each `*_tolerance` holds element for element
/// (kToleranceMargin times the first-order rounding bound; Note [tolerance], reference/bounded.h).
struct WindowExpectation {
  int step = 0;
  double lr = 0.0;
  double loss = 0.0, loss_tolerance = 0.0;
  /// The large-batch gradient of the window's loss (what the optimizer must be handed).
  std::vector<double> grad, grad_tolerance;
  /// Its global L2 norm.
  double norm = 0.0, norm_tolerance = 0.0;
  std::vector<double> params_after, params_after_tolerance;
  OptimizerState state_after, state_after_tolerance;
};

struct OracleOptions {
  /// Compute the truth in cpp_bin_float_50 (true) or in double (faster; ample for fp32 recipes).
  bool high_precision = true;
  /// Unit roundoff of the implementation judged; 0 takes the scenario's precision. (2^-53 judges
  /// a float64 implementation, as the tests do with LibTorch in float64.)
  double unit_roundoff = 0.0;
};

class Oracle {
 public:
  /// Validates the scenario and computes the large-batch trajectory from the initial weights.
  explicit Oracle(const Scenario& scenario, OracleOptions options = {});

  const Scenario& scenario() const { return scenario_; }
  const fixtures::ModelLayout& layout() const { return layout_; }
  const std::vector<double>& initial_params() const { return initial_params_; }
  /// Unit roundoff of the scenario's precision (2^-24 for fp32).
  double unit_roundoff() const { return unit_roundoff_; }

  /// Large-batch training from the initial weights, one entry per step. Bounds are carried along
  /// the trajectory: entry s bounds an implementation that has made S rounding errors before.
  const std::vector<WindowExpectation>& trajectory() const { return trajectory_; }

  /// The large-batch step `step` taken from `params` and `state` (a recipe's own, held exactly):
  /// the local check. Memoized: properties asking about the same recipe share one evaluation.
  const WindowExpectation& window_from(int step, const std::vector<double>& params,
                                       const OptimizerState& state) const;

 private:
  Scenario scenario_;
  OracleOptions options_;
  fixtures::ModelLayout layout_;
  std::vector<double> initial_params_;
  std::vector<fixtures::Batch> windows_;
  double unit_roundoff_;
  std::vector<WindowExpectation> trajectory_;

  using Key = std::tuple<int, std::vector<double>, OptimizerState>;
  mutable std::mutex memo_mutex_;
  mutable std::map<Key, std::unique_ptr<WindowExpectation>> memo_;
};

/// Unit roundoff of a precision: 2^-24 (fp32).
double unit_roundoff_of(Precision precision);

}  // namespace gacc::reference
