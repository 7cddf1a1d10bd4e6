#pragma once
/// Building blocks the properties share: a running "worst so far" over many comparisons, and the
/// checks of a trace's structure, gradients, steps and trajectory against the oracle.

#include <algorithm>
#include <string>
#include <vector>

#include "core/trace.h"
#include "properties/compare.h"
#include "properties/property.h"
#include "reference/oracle.h"

namespace gacc::properties {

/// Collects comparisons and keeps the worst, with a description of where it was.
class Judgement {
 public:
  explicit Judgement(const reference::Oracle& oracle) : oracle_(oracle) {}

  /// Compares a vector in canonical parameter order; `what` names it ("step 1 grad").
  void vector(const std::string& what, const std::vector<double>& observed,
              const std::vector<double>& expected, const std::vector<double>& tolerance);
  /// Compares a vector in canonical buffer order.
  void buffers(const std::string& what, const std::vector<double>& observed,
               const std::vector<double>& expected, const std::vector<double>& tolerance);
  void scalar(const std::string& what, double observed, double expected, double tolerance);
  /// Compares one value per step ("learning rate": element s is step s), judged as one series: a
  /// value that is exactly zero at one step (a warmup's start) carries none of the series' mass.
  void per_step(const std::string& what, const std::vector<double>& observed, const std::vector<double>& expected,
                const std::vector<double>& tolerance);
  /// A failure that is not a numeric deviation (ratio +inf).
  void structural(const std::string& why);
  /// An exact check that held (a count, a decision): judged by construction.
  void exact() { ++checks_; }
  /// Something the case showed of a legitimate choice of the recipe (CaseVerdict::notes).
  void note(const std::string& text) {
    if (std::find(notes_.begin(), notes_.end(), text) == notes_.end()) notes_.push_back(text);
  }
  /// At step `step` fp16 overflow is within the bound (Note [overflow]): skipping and taking the
  /// step are both correct, and the recipe's choice was judged. The verdict says so.
  void free_choice(int step);
  /// Along the trajectory, the recipe left the oracle's path at `step` by skipping a step whose
  /// overflow is ambiguous (the path takes it): trajectory comparisons end there. The verdict says so.
  void left_trajectory(int step);

  bool failed_structurally() const { return structural_; }
  CaseVerdict verdict() const;

 private:
  void keep_worst(const std::string& what, const Comparison& c, const std::string& element);
  /// Counts a comparison, and whether it looked (Note [looked]).
  void count(const std::string& what, const Comparison& c, const std::vector<double>& expected,
             const std::vector<double>& tolerance);

  const reference::Oracle& oracle_;
  double worst_ = 0.0;
  std::string detail_;
  bool structural_ = false;
  bool any_ = false;
  int checks_ = 0, not_judged_ = 0;
  std::vector<std::string> notes_;
  std::string first_not_judged_;
  std::vector<int> free_choices_;
  int left_trajectory_ = -1;
};

/// The trace has one step per window, vectors of the model's size, and finite values; a loss scale
/// that is a positive finite number under fp16, and 1 with no skipped step otherwise. Otherwise
/// records a structural failure and returns false.
bool check_structure(const Trace& trace, const reference::Oracle& oracle, Judgement& judgement);

/// How a recipe's LR scheduler treats a step GradScaler skipped: it steps on every window (PyTorch's
/// AMP example) or holds (accelerate). Both are correct; the rates the recipe reports tell which
/// (steps when they fit both, or neither).
enum class SchedulePolicy { steps, holds };
SchedulePolicy schedule_policy(const reference::Oracle& oracle, const Trace& trace);
/// Whether every step's recorded learning rate is the schedule's under `policy`.
bool schedule_fits(const reference::Oracle& oracle, const Trace& trace, SchedulePolicy policy);
/// Scheduler steps the recipe took before window `step` under its policy.
int schedule_position(const Trace& trace, int step, SchedulePolicy policy);
/// The oracle whose trajectory follows the recipe's policy (oracle.held() when it holds).
const reference::Oracle& policy_oracle(const reference::Oracle& oracle, const Trace& trace);

/// The oracle's large-batch window `step`, taken from the recipe's own parameters, optimizer state
/// and buffers before that step, under the loss scale the recipe had in force and at the rate of
/// its scheduler's position (the local check). Requires check_structure.
const reference::WindowExpectation& local_expectation(const reference::Oracle& oracle,
                                                      const Trace& trace, int step);

/// What a correct accumulating recipe must equal: the large batch, or with BatchNorm ghost BatchNorm
/// over its micro-batches (each normalized by its own statistics).
const reference::Oracle& accumulation_oracle(const reference::Oracle& oracle);

/// How the recipe's step is judged against `expected` (Note [overflow]).
enum class StepDecision {
  taken,     ///< compare the gradient and the step
  skipped,   ///< compare nothing of the gradient; the step must leave parameters and state untouched
  mismatch,  ///< the recipe skipped a step GradScaler takes, or took one it skips: a structural failure
};

/// The recipe skipped the step exactly when GradScaler must; where overflow is ambiguous either
/// choice is right (noted as a free choice). Without fp16 always `taken`.
StepDecision skip_decision(const reference::WindowExpectation& expected, const StepRecord& observed,
                           const std::string& at, Judgement& judgement);

/// Gradient handed to the optimizer, its pre-clip norm and the window's loss, against the
/// large-batch window from the recipe's own parameters (a skipped step: its loss only).
void check_gradient(const reference::Oracle& oracle, const Trace& trace, int step, Judgement& judgement);

/// check_structure, then check_gradient at every step: what the gradient-level properties share.
void check_gradients(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement);

/// Parameters and optimizer state after the step, against the large-batch step from the recipe's
/// own parameters and state (a skipped step: exactly unchanged).
void check_step(const reference::Oracle& oracle, const Trace& trace, int step, Judgement& judgement);

/// check_structure, then at every step the gradient, the step from the recipe's own state, and the
/// trajectory: what the step-level properties share.
void check_steps(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement);

/// Parameters after the step against large-batch training from the initial weights, with the
/// bound carried along the whole trajectory — while the recipe is on the oracle's path (under fp16
/// it may leave it by skipping a step whose overflow is ambiguous).
void check_trajectory(const reference::Oracle& oracle, const Trace& trace, int step, Judgement& judgement);

/// GradScaler's state machine over the recipe's own skip decisions: the first window runs at
/// init_scale (rounded to fp32), each skipped step backs the scale off once, and growth_interval
/// consecutive taken steps grow it once. Compared exactly: each new scale is rounded to fp32, as
/// ATen's _amp_update_scale_ stores it.
void check_loss_scales(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement);

/// Two runs of one scenario (say, two splits of it) against each other: step 0's gradient and
/// loss, then parameters, optimizer state and buffers at every step. Each run may be off the truth
/// by its tolerance, so they may differ by twice it. Under fp16 the runs are compared while both
/// follow the oracle's trajectory (the same skipped steps and loss scales): which weight gradients
/// overflow legitimately depends on the split (a micro-batch's partial sum is smaller than the
/// window's), and property 7 judges each run's decisions on its own. Requires check_structure on both.
void check_same_run(const reference::Oracle& oracle, const Trace& a, const Trace& b, const std::string& what,
                    Judgement& judgement);

}  // namespace gacc::properties
