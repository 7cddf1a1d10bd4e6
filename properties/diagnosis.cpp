#include "properties/diagnosis.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "core/signatures.h"
#include "fixtures/fixtures.h"
#include "properties/compare.h"
#include "properties/trace_checks.h"
#include "reference/models.h"

namespace gacc::properties {
namespace {

/// A step or optimizer-step count that does not match the windows'.
std::string step_count_signature(const Scenario& sc, const Trace& trace) {
  const auto steps = static_cast<int64_t>(trace.steps.size());
  if (auto s = gacc::step_count_signature(steps, sc.steps); !s.empty()) return s;
  int64_t taken = 0;
  for (const auto& step : trace.steps) taken += !step.skipped;
  if (std::llabs(trace.counters.optimizer_steps - taken) == 1) {
    return "a step count off by one: optimizer.step() called " + std::to_string(trace.counters.optimizer_steps) +
           " times for " + count_text(taken, "step") + " taken";
  }
  return {};
}

/// Rates that follow a scheduler stepped after every micro-batch.
std::string scheduler_signature(const reference::Oracle& oracle, const Trace& trace) {
  const auto& sc = oracle.scenario();
  if (sc.schedule.kind == ScheduleKind::constant || static_cast<int>(trace.steps.size()) != sc.steps) return {};
  // Stepped after every micro-batch, the scheduler has taken the earlier windows' micro-batches and
  // this window's (all of them, or all but the last) when the optimizer steps.
  const auto follows = [&](int last_offset) {
    int64_t before = 0;  // micro-batches of the earlier windows
    bool ahead = false;
    for (int s = 0; s < sc.steps; ++s) {
      const int k = micro_batch_count(sc, s);
      const auto position = static_cast<int>(before + k + last_offset);
      const auto [rate, tolerance] = oracle.scheduled_rate(position);
      if (!(element_ratio(trace.steps[static_cast<size_t>(s)].lr, rate, tolerance) < 1.0)) return false;
      const auto [right, right_tolerance] = oracle.scheduled_rate(s);
      ahead = ahead || !(element_ratio(rate, right, right_tolerance) < 1.0);  // the schedule moved meanwhile
      before += k;
    }
    return ahead;
  };
  if (!follows(0) && !follows(-1)) return {};
  return "the learning rate runs ahead: the scheduler was stepped once per micro-batch, K - 1 scheduler steps too "
         "many per window (" + std::to_string(trace.counters.scheduler_steps) + " scheduler steps over " +
         count_text(sc.steps, "window") + ")";
}

/// The unclipped, unscaled gradient of rank 0's micro-batch `micro` of window 0 at the initial
/// parameters, its loss divided by `normalizer` (its own loss elements, or the window's).
std::vector<double> micro_batch_gradient(const reference::Oracle& oracle, int micro, int64_t normalizer) {
  reference::EvaluationOptions options;
  options.loss_elements = normalizer;
  const auto batch = fixtures::micro_batch(oracle.scenario(), 0, 0, micro);
  return reference::loss_and_gradient<double>(oracle.scenario(), oracle.initial_params(), oracle.initial_buffers(),
                                              batch, options)
      .grad;
}

double norm_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

/// The first window's gradient against the hypotheses of Note [diagnosis].
std::string gradient_signature(const reference::Oracle& oracle, const Trace& trace) {
  const auto& sc = oracle.scenario();
  if (trace.steps.empty() || trace.steps[0].skipped) return {};
  const auto& expected = local_expectation(oracle, trace, 0);
  const auto& observed = trace.steps[0];
  if (expected.skipped || observed.grad.size() != expected.grad.size()) return {};
  // Where clipping acts, the gradient handed over is clipped: compare the pre-clip norms.
  const bool clipped = sc.clipping.kind != ClippingKind::none;
  // The large batch's unclipped gradient: the expected one where nothing clips it.
  std::vector<double> large_batch = expected.grad;
  if (clipped) {
    const double norm = norm_of(expected.grad);
    if (norm > 0.0) {
      for (auto& g : large_batch) g *= expected.norm / norm;  // norm clipping only rescales
    }
  }
  // `observed` fits a hypothesis when it is within twice the tolerance of it, and the hypothesis is
  // a bug here: outside the tolerance of the large batch (equal micro-batches make a mean of means
  // the window's mean, for one).
  const auto close = [&](const std::vector<double>& a, const std::vector<double>& b, double scale, double norm_a) {
    if (clipped) return element_ratio(norm_a, norm_of(b), 2.0 * scale * expected.norm_tolerance) < 1.0;
    std::vector<double> tolerance(expected.grad_tolerance);
    for (auto& t : tolerance) t *= 2.0 * scale;
    return compare(a, b, tolerance).worst_ratio < 1.0;
  };
  const auto fits = [&](const std::vector<double>& candidate, double scale) {
    return close(observed.grad, candidate, scale, observed.pre_clip_norm) &&
           !close(candidate, large_batch, scale, norm_of(candidate));
  };
  const int k = micro_batch_count(sc, 0), w = sc.world_size;
  for (const auto& [factor, text] : gradient_factor_signatures(k, w)) {
    std::vector<double> scaled(large_batch);
    for (auto& g : scaled) g *= factor;
    if (fits(scaled, factor)) return "the gradient is " + text;
  }
  // Per-micro-batch hypotheses: one rank, examples not coupled, a mean to get wrong.
  if (w != 1 || k < 2 || is_batch_coupled(sc.model) || sc.loss.reduction == Reduction::sum) return {};
  const int64_t window_elements = fixtures::window_loss_elements(sc, 0);
  std::vector<double> sum_of_means(large_batch.size(), 0.0);
  std::vector<double> last_own;
  for (int m = 0; m < k; ++m) {
    const int64_t own = fixtures::micro_batch(sc, 0, 0, m).counted_targets();
    if (own == 0) return {};  // a micro-batch without a counted token has no mean of its own
    last_own = micro_batch_gradient(oracle, m, own);
    for (size_t i = 0; i < sum_of_means.size(); ++i) sum_of_means[i] += last_own[i];
  }
  if (fits(sum_of_means, k)) {
    return "the gradient is the sum of the micro-batches' own means: each micro-batch normalized by itself and "
           "the loss never divided by K (K = " + std::to_string(k) + ")";
  }
  std::vector<double> mean_of_means(sum_of_means);
  for (auto& g : mean_of_means) g /= k;
  if (fits(mean_of_means, 1.0)) {
    return "the gradient is the mean of the micro-batches' own means, not the window's mean: normalize every "
           "micro-batch by the window's total count (" + std::to_string(window_elements) + ")";
  }
  if (fits(micro_batch_gradient(oracle, k - 1, window_elements), 1.0) || fits(last_own, 1.0)) {
    return "the gradient is the last micro-batch's alone: the earlier micro-batches' gradients were cleared or lost "
           "before the step";
  }
  return {};
}

}  // namespace

std::string diagnose(const reference::Oracle& oracle, const Trace& trace) {
  const auto& sc = oracle.scenario();
  if (auto s = step_count_signature(sc, trace); !s.empty()) return s;
  if (auto s = scheduler_signature(oracle, trace); !s.empty()) return s;
  // The gradient hypotheses need a trace the oracle can take the first window from.
  const auto size = static_cast<size_t>(oracle.layout().size);
  if (trace.steps.empty() || trace.steps[0].grad.size() != size) return {};
  try {
    return gradient_signature(accumulation_oracle(oracle), trace);
  } catch (const std::exception&) {
    return {};  // a trace the oracle cannot start from (non-finite values): no hint
  }
}

}  // namespace gacc::properties
