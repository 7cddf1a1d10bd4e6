#include "properties/trace_checks.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "reference/loss_scale.h"
#include "reference/stochastic.h"

namespace gacc::properties {
namespace {

bool all_finite(const std::vector<double>& values) {
  for (double v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

std::string tolerance_basis(const reference::Oracle& oracle) {
  const auto power = [](double u) { return std::to_string(static_cast<int>(std::lround(std::log2(u)))); };
  std::string basis = "tolerance: 2 x first-order rounding bound at u = 2^" + power(oracle.unit_roundoff());
  const Precision precision = oracle.scenario().precision;
  if (precision == Precision::fp32) return basis + " (Note [tolerance])";
  return basis + ", autocast ops in " + to_string(precision) + " (u = 2^" +
         power(unit_roundoff(format_of(precision))) + "), the window's evaluation capped where smaller at " +
         format_number(reference::kRoundingSpread) + " x the RMS deviation of " +
         std::to_string(reference::kRoundingDraws) +
         " stochastic-rounding draws and carried through the step (Note [tolerance], Note [probabilistic tolerance])";
}

}  // namespace

void Judgement::keep_worst(const std::string& what, const Comparison& c, const std::string& element) {
  if (any_ && !(c.worst_ratio > worst_)) return;
  any_ = true;
  worst_ = c.worst_ratio;
  detail_ = what + " " + element + ": " + describe(c) +
            (c.bad_count > 1 ? " (" + std::to_string(c.bad_count) + " elements at ratio >= 1)" : "") + "; " +
            tolerance_basis(oracle_);
}

void Judgement::count(const std::string& what, const Comparison& c, const std::vector<double>& expected,
                      const std::vector<double>& tolerance) {
  ++checks_;
  if (!(c.worst_ratio < 1.0)) return;  // a failure found something: it looked
  const Resolution r = resolution(expected, tolerance);
  if (r.looked) return;
  if (not_judged_++ == 0) {
    first_not_judged_ = what + ": the tolerance is below the value on only " +
                        format_ratio(100.0 * r.resolved_share) + "% of its squared mass (half is needed)";
  }
}

void Judgement::vector(const std::string& what, const std::vector<double>& observed,
                       const std::vector<double>& expected, const std::vector<double>& tolerance) {
  const Comparison c = compare(observed, expected, tolerance);
  if (c.worst_index < 0) return;
  count(what, c, expected, tolerance);
  keep_worst(what, c, oracle_.layout().element_name(c.worst_index));
}

void Judgement::per_step(const std::string& what, const std::vector<double>& observed,
                         const std::vector<double>& expected, const std::vector<double>& tolerance) {
  const Comparison c = compare(observed, expected, tolerance);
  if (c.worst_index < 0) return;
  count(what, c, expected, tolerance);
  keep_worst("step " + std::to_string(c.worst_index), c, what);
}

void Judgement::buffers(const std::string& what, const std::vector<double>& observed,
                        const std::vector<double>& expected, const std::vector<double>& tolerance) {
  const Comparison c = compare(observed, expected, tolerance);
  if (c.worst_index < 0) return;
  count(what, c, expected, tolerance);
  keep_worst(what, c, oracle_.layout().buffer_element_name(c.worst_index));
}

void Judgement::scalar(const std::string& what, double observed, double expected, double tolerance) {
  const Comparison c = compare(observed, expected, tolerance);
  count(what, c, {expected}, {tolerance});
  if (!any_ || c.worst_ratio > worst_) {
    any_ = true;
    worst_ = c.worst_ratio;
    detail_ = what + ": " + describe(c) + "; " + tolerance_basis(oracle_);
  }
}

void Judgement::structural(const std::string& why) {
  if (structural_) return;  // the first structural failure is the informative one
  ++checks_;
  structural_ = true;
  any_ = true;
  worst_ = std::numeric_limits<double>::infinity();
  detail_ = why;
}

void Judgement::free_choice(int step) {
  if (std::find(free_choices_.begin(), free_choices_.end(), step) == free_choices_.end()) free_choices_.push_back(step);
}

void Judgement::left_trajectory(int step) {
  if (left_trajectory_ < 0 || step < left_trajectory_) left_trajectory_ = step;
}

CaseVerdict Judgement::verdict() const {
  std::string detail = any_ ? detail_ : "nothing to compare";
  if (!free_choices_.empty()) {
    detail += " [fp16 overflow within the bound at step";
    for (int step : free_choices_) detail += " " + std::to_string(step);
    detail += ": skipping and taking are both right; the recipe's choice was judged]";
  }
  if (left_trajectory_ >= 0) {
    detail += " [trajectory compared up to step " + std::to_string(left_trajectory_) +
              ", where the recipe skipped a step whose overflow is within the bound]";
  }
  if (not_judged_ > 0) {
    detail += " [not judged: " + std::to_string(not_judged_) + " of " + std::to_string(checks_) +
              " checks could not see an error the size of the value (Note [looked]); first: " + first_not_judged_ + "]";
  }
  return {worst_, detail, false, checks_, not_judged_, notes_};
}

bool check_structure(const Trace& trace, const reference::Oracle& oracle, Judgement& judgement) {
  const auto& sc = oracle.scenario();
  const auto size = static_cast<size_t>(oracle.layout().size);
  if (trace.steps.size() != static_cast<size_t>(sc.steps)) {
    judgement.structural("the recipe took " + std::to_string(trace.steps.size()) + " optimizer step" +
                         (trace.steps.size() == 1 ? "" : "s") + "; the scenario has " + std::to_string(sc.steps) +
                         " windows (one step each)");
    return false;
  }
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    const auto& step = trace.steps[s];
    const std::string at = "step " + std::to_string(s) + ": ";
    if (step.grad.size() != size || step.params_after.size() != size) {
      judgement.structural(at + "the recipe reported " + std::to_string(step.grad.size()) + " gradient and " +
                           std::to_string(step.params_after.size()) + " parameter values; the model has " +
                           std::to_string(size));
      return false;
    }
    for (const auto& [name, values] : step.optimizer_state) {
      if (values.size() != size) {
        judgement.structural(at + "optimizer state " + name + " has " + std::to_string(values.size()) +
                             " values; the model has " + std::to_string(size));
        return false;
      }
    }
    if (step.buffers_after.size() != static_cast<size_t>(oracle.layout().buffer_size)) {
      judgement.structural(at + "the recipe reported " + std::to_string(step.buffers_after.size()) +
                           " buffer values; the model has " + std::to_string(oracle.layout().buffer_size));
      return false;
    }
    if (!all_finite(step.params_after) || !all_finite(step.buffers_after)) {
      judgement.structural(at + "non-finite parameters or buffers after the step");
      return false;
    }
    for (const auto& [name, values] : step.optimizer_state) {
      if (!all_finite(values)) {
        judgement.structural(at + "non-finite optimizer state " + name);
        return false;
      }
    }
    if (sc.precision == Precision::fp16 ? !(std::isfinite(step.loss_scale) && step.loss_scale > 0.0)
                                        : step.loss_scale != 1.0 || step.skipped) {
      judgement.structural(at + "loss scale " + format_number(step.loss_scale) + (step.skipped ? ", skipped" : "") +
                           (sc.precision == Precision::fp16 ? ": a loss scale is a positive finite number"
                                                            : ": without fp16 there is no loss scaling and no step is skipped"));
      return false;
    }
  }
  return true;
}

int schedule_position(const Trace& trace, int step, SchedulePolicy policy) {
  if (policy == SchedulePolicy::steps) return step;
  int taken = 0;
  for (int s = 0; s < step; ++s) taken += !trace.steps[static_cast<size_t>(s)].skipped;
  return taken;
}

SchedulePolicy schedule_policy(const reference::Oracle& oracle, const Trace& trace) {
  bool skipped_before_last = false;
  for (size_t s = 0; s + 1 < trace.steps.size(); ++s) skipped_before_last = skipped_before_last || trace.steps[s].skipped;
  if (!skipped_before_last || oracle.scenario().schedule.kind == ScheduleKind::constant) return SchedulePolicy::steps;
  return !schedule_fits(oracle, trace, SchedulePolicy::steps) && schedule_fits(oracle, trace, SchedulePolicy::holds)
             ? SchedulePolicy::holds
             : SchedulePolicy::steps;
}

bool schedule_fits(const reference::Oracle& oracle, const Trace& trace, SchedulePolicy policy) {
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    const auto [rate, tolerance] = oracle.scheduled_rate(schedule_position(trace, static_cast<int>(s), policy));
    if (!(element_ratio(trace.steps[s].lr, rate, tolerance) < 1.0)) return false;
  }
  return true;
}

const reference::Oracle& policy_oracle(const reference::Oracle& oracle, const Trace& trace) {
  return schedule_policy(oracle, trace) == SchedulePolicy::holds ? oracle.held() : oracle;
}

const reference::WindowExpectation& local_expectation(const reference::Oracle& oracle, const Trace& trace,
                                                      int step) {
  static const OptimizerState kNoState;
  const double loss_scale = trace.steps[static_cast<size_t>(step)].loss_scale;
  const int position = schedule_position(trace, step, schedule_policy(oracle, trace));
  if (step == 0) {
    return oracle.window_from(0, oracle.initial_params(), kNoState, oracle.initial_buffers(), loss_scale, position);
  }
  const auto& before = trace.steps[static_cast<size_t>(step - 1)];
  return oracle.window_from(step, before.params_after, before.optimizer_state, before.buffers_after, loss_scale,
                            position);
}

StepDecision skip_decision(const reference::WindowExpectation& expected, const StepRecord& observed,
                           const std::string& at, Judgement& judgement) {
  if (expected.overflow == reference::Overflow::ambiguous) {
    judgement.free_choice(expected.step);
    return observed.skipped ? StepDecision::skipped : StepDecision::taken;
  }
  if (observed.skipped == expected.skipped) {
    if (expected.loss_scale != 1.0 || expected.overflow != reference::Overflow::none) judgement.exact();  // GradScaler's decision
    return expected.skipped ? StepDecision::skipped : StepDecision::taken;
  }
  judgement.structural(at + (observed.skipped ? "was skipped" : "was taken") + " at loss scale " +
                       format_number(expected.loss_scale) + "; GradScaler " +
                       (expected.skipped ? "must skip it: a micro-batch's fp16 gradient overflows"
                                         : "takes it: no micro-batch's fp16 gradient overflows") +
                       " (Note [overflow])");
  return StepDecision::mismatch;
}

void check_gradient(const reference::Oracle& oracle, const Trace& trace, int step, Judgement& judgement) {
  const auto& expected = local_expectation(oracle, trace, step);
  const auto& observed = trace.steps[static_cast<size_t>(step)];
  const std::string at = "step " + std::to_string(step) + " ";
  const StepDecision decision = skip_decision(expected, observed, at, judgement);
  if (decision == StepDecision::mismatch) return;
  judgement.scalar(at + "loss", observed.loss, expected.loss, expected.loss_tolerance);
  if (decision == StepDecision::skipped) return;  // no gradient is handed to the optimizer
  judgement.vector(at + "grad", observed.grad, expected.grad, expected.grad_tolerance);
  judgement.scalar(at + "pre-clip norm", observed.pre_clip_norm, expected.norm, expected.norm_tolerance);
}

void check_gradients(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement) {
  if (!check_structure(trace, oracle, judgement)) return;
  for (int s = 0; s < oracle.scenario().steps; ++s) check_gradient(oracle, trace, s, judgement);
}

namespace {

/// The buffers after window `step` against the local expectation; for ghost BatchNorm, in the case's
/// order of the micro-batches or any other (a free choice of the loop).
void check_window_buffers(const reference::Oracle& oracle, const Trace& trace, int step,
                          const reference::WindowExpectation& expected, Judgement& judgement) {
  const auto& observed = trace.steps[static_cast<size_t>(step)].buffers_after;
  const std::string what = "step " + std::to_string(step) + " buffers after the window";
  const auto& tolerance = expected.buffers_after_tolerance;
  if (compare(observed, expected.buffers_after, tolerance).worst_ratio < 1.0) {
    judgement.buffers(what, observed, expected.buffers_after, tolerance);
    return;
  }
  const auto& before = step == 0 ? oracle.initial_params() : trace.steps[static_cast<size_t>(step - 1)].params_after;
  const auto& buffers = step == 0 ? oracle.initial_buffers() : trace.steps[static_cast<size_t>(step - 1)].buffers_after;
  for (const auto& other : oracle.buffers_in_other_orders(step, before, buffers)) {
    if (compare(observed, other, tolerance).worst_ratio < 1.0) {
      judgement.buffers(what, observed, other, tolerance);
      judgement.note("a window's micro-batches ran in another order than the case's (BatchNorm's running "
                     "statistics follow the order; any order is right)");
      return;
    }
  }
  judgement.buffers(what, observed, expected.buffers_after, tolerance);
}

}  // namespace

const reference::Oracle& accumulation_oracle(const reference::Oracle& oracle) {
  return is_batch_coupled(oracle.scenario().model) ? oracle.ghost() : oracle;
}

void check_step(const reference::Oracle& oracle, const Trace& trace, int step, Judgement& judgement) {
  const auto& expected = local_expectation(oracle, trace, step);
  const auto& observed = trace.steps[static_cast<size_t>(step)];
  const std::string at = "step " + std::to_string(step) + " ";
  const StepDecision decision = skip_decision(expected, observed, at, judgement);
  if (decision == StepDecision::mismatch) return;
  judgement.scalar(at + "learning rate", observed.lr, expected.lr, expected.lr_tolerance);
  if (decision == StepDecision::skipped) {
    // GradScaler never called optimizer.step(): everything it owns is exactly as before.
    static const OptimizerState kNoState;
    const auto& params_before = step == 0 ? oracle.initial_params() : trace.steps[static_cast<size_t>(step - 1)].params_after;
    const auto& state_before = step == 0 ? kNoState : trace.steps[static_cast<size_t>(step - 1)].optimizer_state;
    judgement.vector(at + "params after a skipped step", observed.params_after, params_before,
                     std::vector<double>(params_before.size(), 0.0));
    if (observed.optimizer_state.size() != state_before.size()) {
      judgement.structural(at + "the optimizer state changed shape over a skipped step");
      return;
    }
    for (const auto& [name, values] : state_before) {
      auto it = observed.optimizer_state.find(name);
      if (it == observed.optimizer_state.end()) {
        judgement.structural(at + "optimizer state " + name + " vanished over a skipped step");
        return;
      }
      judgement.vector(at + name + " after a skipped step", it->second, values, std::vector<double>(values.size(), 0.0));
    }
    check_window_buffers(oracle, trace, step, expected, judgement);
    return;
  }
  judgement.vector(at + "params after the step", observed.params_after, expected.params_after,
                   expected.params_after_tolerance);
  for (const auto& [name, values] : expected.state_after) {
    auto it = observed.optimizer_state.find(name);
    if (it == observed.optimizer_state.end()) {
      judgement.structural(at + "optimizer state has no " + name + " after the step");
      return;
    }
    judgement.vector(at + name, it->second, values, expected.state_after_tolerance.at(name));
  }
  check_window_buffers(oracle, trace, step, expected, judgement);
  for (const auto& entry : observed.optimizer_state) {
    if (!expected.state_after.count(entry.first)) {
      judgement.structural(at + "optimizer state " + entry.first + " has no large-batch counterpart");
      return;
    }
  }
}

void check_trajectory(const reference::Oracle& base, const Trace& trace, int step, Judgement& judgement) {
  const reference::Oracle& oracle = policy_oracle(base, trace);
  const auto& expected = oracle.trajectory().at(static_cast<size_t>(step));
  const auto& observed = trace.steps[static_cast<size_t>(step)];
  const std::string at = "trajectory: step " + std::to_string(step) + " ";
  // The oracle's path takes every step whose overflow is ambiguous; a recipe that skipped one of
  // them is on another path from there on, equally right.
  for (int s = 0; s <= step; ++s) {
    if (oracle.trajectory()[static_cast<size_t>(s)].overflow == reference::Overflow::ambiguous &&
        trace.steps[static_cast<size_t>(s)].skipped) {
      judgement.left_trajectory(s);
      return;
    }
  }
  const StepDecision decision = skip_decision(expected, observed, at, judgement);
  if (decision == StepDecision::mismatch) return;
  judgement.vector(at + "params after the step", observed.params_after, expected.params_after,
                   expected.params_after_tolerance);
  // BatchNorm's running statistics do not enter a training-mode forward, and the local check judges
  // them window by window from the recipe's own (in any order of the micro-batches): along the
  // trajectory only the parameters are compared.
  if (!is_batch_coupled(oracle.scenario().model)) {
    judgement.buffers(at + "buffers after the window", observed.buffers_after, expected.buffers_after,
                      expected.buffers_after_tolerance);
  }
}

namespace {

std::vector<double> doubled(const std::vector<double>& tolerance) {
  std::vector<double> out(tolerance);
  for (auto& t : out) t *= 2.0;
  return out;
}

}  // namespace

void check_same_run(const reference::Oracle& oracle, const Trace& a, const Trace& b, const std::string& what,
                    Judgement& judgement) {
  const auto& first = oracle.trajectory().at(0);
  judgement.scalar(what + ": step 0 loss", a.steps[0].loss, b.steps[0].loss, 2.0 * first.loss_tolerance);
  if (!first.skipped && !a.steps[0].skipped && !b.steps[0].skipped) {
    judgement.vector(what + ": step 0 grad", a.steps[0].grad, b.steps[0].grad, doubled(first.grad_tolerance));
  }
  for (size_t s = 0; s < a.steps.size(); ++s) {
    const auto& expected = oracle.trajectory().at(s);
    // The tolerances are the trajectory's: they describe both runs while both are on its path.
    const bool same_path = a.steps[s].skipped == b.steps[s].skipped && a.steps[s].skipped == expected.skipped &&
                           a.steps[s].loss_scale == b.steps[s].loss_scale && a.steps[s].loss_scale == expected.loss_scale;
    if (!same_path) return;
    const std::string at = what + ": step " + std::to_string(s) + " ";
    judgement.vector(at + "params after the step", a.steps[s].params_after, b.steps[s].params_after,
                     doubled(expected.params_after_tolerance));
    judgement.buffers(at + "buffers", a.steps[s].buffers_after, b.steps[s].buffers_after,
                      doubled(expected.buffers_after_tolerance));
    for (const auto& [name, tolerance] : expected.state_after_tolerance) {
      const auto ia = a.steps[s].optimizer_state.find(name), ib = b.steps[s].optimizer_state.find(name);
      if (ia == a.steps[s].optimizer_state.end() || ib == b.steps[s].optimizer_state.end()) {
        judgement.structural(at + "optimizer state " + name + " missing in one of the runs");
        return;
      }
      judgement.vector(at + name, ia->second, ib->second, doubled(tolerance));
    }
  }
}

void check_loss_scales(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement) {
  const auto& spec = oracle.scenario().loss_scale;
  reference::LossScaleState scaler = reference::initial_loss_scale(spec);
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    const auto& step = trace.steps[s];
    if (step.loss_scale != scaler.scale) {
      judgement.structural("step " + std::to_string(s) + ": loss scale " + format_number(step.loss_scale) +
                           "; GradScaler's is " + format_number(scaler.scale) + " (init_scale " +
                           format_number(spec.init_scale) + ", backed off once per skipped step, grown once per " +
                           std::to_string(spec.growth_interval) + " taken steps)");
      return;
    }
    judgement.exact();
    scaler = reference::update_loss_scale(spec, scaler, step.skipped);
  }
}

void check_steps(const reference::Oracle& oracle, const Trace& trace, Judgement& judgement) {
  if (!check_structure(trace, oracle, judgement)) return;
  for (int s = 0; s < oracle.scenario().steps && !judgement.failed_structurally(); ++s) {
    check_gradient(oracle, trace, s, judgement);
    check_step(oracle, trace, s, judgement);
    check_trajectory(oracle, trace, s, judgement);
  }
}

}  // namespace gacc::properties
