#include "reference/oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <stdexcept>
#include <type_traits>

#include "core/errors.h"
#include "reference/bounded.h"
#include "reference/loss_scale.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"
#include "reference/stochastic.h"
#include "fixtures/random.h"

namespace gacc::reference {
namespace {

template <class T>
struct WindowResult {
  Host<T> lr;
  T loss;
  std::vector<T> grad;
  std::vector<T> unclipped;  ///< the unscaled gradient before clipping
  T norm;
  std::vector<T> params_after;
  StateOf<T> state_after;
  std::vector<T> buffers_after;
};

/// GradScaler's unscale: every gradient times the fp32 reciprocal of the scale (PyTorch computes it
/// in double and rounds it to fp32), one rounding each. The truth divides exactly.
template <class T>
void unscale(std::vector<T>& grad, double loss_scale) {
  if (loss_scale == 1.0) return;
  if constexpr (std::is_same_v<T, Bounded> || std::is_same_v<T, Stochastic> || std::is_same_v<T, float>) {
    const T inverse = constant<T>(1.0 / loss_scale);
    for (auto& g : grad) g = g * inverse;
  } else {
    const T scale = T(loss_scale);
    for (auto& g : grad) g = g / scale;
  }
}

/// The window's loss, gradient (scaled by `loss_scale`) and buffers after it. The truth and the bound
/// evaluate the window as one batch (BatchNorm over `virtual_batches` when ghost: Note [tolerance]
/// makes the bound hold for every split). A rounding draw evaluates it as a correct accumulating
/// implementation does (Note [probabilistic tolerance]): each micro-batch of each rank on its own,
/// normalized by the window's loss elements, BatchNorm's buffers carried from one to the next, the
/// gradients and losses summed in fp32 — except BatchNorm over the whole window (not ghost), which
/// no split computes. With several ranks, `averaged_over_ranks` draws DDP's convention instead: each
/// rank's loss W times its share (its backward pass run W times larger), the summed gradient then
/// divided by W.
template <class T>
ModelEvaluation<T> evaluate_window(const Scenario& scenario, int step, const fixtures::Batch& batch,
                                   const std::vector<int64_t>& virtual_batches, double loss_scale,
                                   const std::vector<T>& params, const std::vector<T>& buffers,
                                   bool averaged_over_ranks = false) {
  EvaluationOptions options;
  options.loss_scale = loss_scale;
  const bool whole_window_batch_norm = is_batch_coupled(scenario.model) && virtual_batches.empty();
  if (!std::is_same_v<T, Stochastic> || whole_window_batch_norm) {
    options.virtual_batches = virtual_batches;
    return loss_and_gradient(scenario, params, buffers, batch, options);
  }
  options.loss_elements = fixtures::window_loss_elements(scenario, step);
  ModelEvaluation<T> total{T(0), std::vector<T>(params.size(), T(0)), buffers, {}};
  const auto& window = scenario.data.windows[static_cast<size_t>(step)];
  const bool averaged = averaged_over_ranks && window.size() > 1;
  if (averaged) options.loss_scale *= static_cast<double>(window.size());
  for (size_t rank = 0; rank < window.size(); ++rank) {
    for (size_t micro = 0; micro < window[rank].size(); ++micro) {
      const auto micro_batch = fixtures::micro_batch(scenario, step, static_cast<int>(rank), static_cast<int>(micro));
      auto part = loss_and_gradient(scenario, params, total.buffers_after, micro_batch, options);
      total.loss = total.loss + part.loss;
      for (size_t i = 0; i < part.grad.size(); ++i) total.grad[i] = total.grad[i] + part.grad[i];
      total.buffers_after = std::move(part.buffers_after);
    }
  }
  if (averaged) {
    const T inverse = constant<T>(1.0 / static_cast<double>(window.size()));
    for (auto& g : total.grad) g = g * inverse;
  }
  return total;
}

/// What one window of a run is: its data, and the circumstances of its step.
struct WindowSetup {
  int step = 0;
  const fixtures::Batch* batch = nullptr;
  const std::vector<int64_t>* virtual_batches = nullptr;
  double loss_scale = 1.0;  ///< the backward pass runs under it (fp16)
  bool skipped = false;     ///< GradScaler skips the step (a definite fp16 overflow)
  int schedule_position = 0;  ///< scheduler steps taken before this window: the rate is the schedule's there
};

/// Per element, caps on the bounds of a window's evaluation — its loss, buffers, unscaled gradient
/// before clipping and norm — in a Bounded run (Note [probabilistic tolerance]); empty: no cap.
struct EvaluationCaps {
  std::vector<double> loss, buffers, unclipped, norm;
};

void cap(std::vector<Bounded>& x, const std::vector<double>& caps) {
  if (caps.size() != x.size()) return;
  for (size_t i = 0; i < x.size(); ++i) x[i].error = std::min(x[i].error, caps[i]);
}

void cap(Bounded& x, const std::vector<double>& caps) {
  if (caps.size() == 1) x.error = std::min(x.error, caps[0]);
}

/// One optimizer step of large-batch training: the window's loss and gradient (the backward pass
/// run under the loss scale, then unscaled), the pre-clip norm, clipping, the step at the
/// scheduled rate — or, when the step is skipped (an fp16 overflow), the loss and buffers of the
/// window with parameters and state untouched. A Bounded run with `caps` caps its evaluation's
/// bounds before clipping and the step carry them on.
template <class T>
WindowResult<T> run_window(const Scenario& scenario, const fixtures::ModelLayout& layout, const WindowSetup& window,
                           std::vector<T> params, StateOf<T> state, const std::vector<T>& buffers,
                           const EvaluationCaps* caps = nullptr) {
  const double loss_scale = window.loss_scale;
  auto evaluation =
      evaluate_window(scenario, window.step, *window.batch, *window.virtual_batches, loss_scale, params, buffers);
  WindowResult<T> out;
  const int position = window.schedule_position;
  out.lr = host_value<T>([&](auto h) { return learning_rate<decltype(h)>(scenario, position); });
  out.loss = evaluation.loss;
  out.buffers_after = std::move(evaluation.buffers_after);
  if constexpr (std::is_same_v<T, Bounded>) {
    if (caps) {
      cap(out.loss, caps->loss);
      cap(out.buffers_after, caps->buffers);
    }
  }
  if (window.skipped) {
    out.norm = T(std::numeric_limits<double>::quiet_NaN());
  } else {
    unscale(evaluation.grad, loss_scale);
    out.norm = global_norm(layout, evaluation.grad);
    if constexpr (std::is_same_v<T, Bounded>) {
      if (caps) {
        cap(evaluation.grad, caps->unclipped);
        cap(out.norm, caps->norm);
      }
    }
    out.unclipped = evaluation.grad;
    out.grad = std::move(evaluation.grad);
    clip(scenario, out.norm, out.grad);
    optimizer_step(scenario, position, params, out.grad, state);
  }
  out.params_after = std::move(params);
  out.state_after = std::move(state);
  return out;
}

/// Note [overflow] (reference/bounded.h): whether GradScaler finds a non-finite gradient in the
/// window of `step` at `loss_scale`, for every fp16 implementation within the bound. Each
/// micro-batch of each rank runs its own scaled backward, as the recipe does: that is where fp16
/// overflows — in its activation gradients, and in its weight gradients as its matrix products
/// store them (a micro-batch's partial sum, not the window's). `params` and `buffers` carry their
/// own bounds (along the trajectory, how far a recipe may have drifted).
///
/// Over W ranks a correct stack may normalize each rank's loss by the whole window (then sum the
/// gradients) or by its rank's share, as DDP does (then average them): its scaled gradients are up
/// to W times larger in the second. Overflow is definite only if it happens at `loss_scale`, and
/// absent only if absent at W times it; in between, either is right.
Overflow window_overflow(const Scenario& scenario, int step, const std::vector<Bounded>& params,
                         const std::vector<Bounded>& buffers, double loss_scale) {
  if (scenario.precision != Precision::fp16) return Overflow::none;
  EvaluationOptions options;
  options.loss_elements = fixtures::window_loss_elements(scenario, step);
  const auto non_finite = [&](double scale, bool ambiguous_overflow, bool& saw_ambiguous) {
    options.loss_scale = scale;
    OverflowAnalysis analysis(ambiguous_overflow);
    bool found = false;
    const auto& window = scenario.data.windows[static_cast<size_t>(step)];
    for (size_t rank = 0; rank < window.size() && !found; ++rank) {
      for (size_t micro = 0; micro < window[rank].size() && !found; ++micro) {
        const auto batch = fixtures::micro_batch(scenario, step, static_cast<int>(rank), static_cast<int>(micro));
        auto evaluation = loss_and_gradient(scenario, params, buffers, batch, options);
        const LowPrecisionScope autocast(&kFp16);
        for (size_t i = 0; i < evaluation.grad.size() && !found; ++i) {
          if (evaluation.grad_low[i]) round_low(evaluation.grad[i]);  // the product's fp16 output
          found = !std::isfinite(evaluation.grad[i].value);
        }
      }
    }
    saw_ambiguous = analysis.saw_ambiguous();
    return found;
  };
  bool ambiguous = false;
  if (non_finite(loss_scale, false, ambiguous)) return Overflow::definite;
  const double largest = loss_scale * scenario.world_size;
  if (largest != loss_scale && non_finite(largest, false, ambiguous)) return Overflow::ambiguous;
  if (!ambiguous) return Overflow::none;
  return non_finite(largest, true, ambiguous) ? Overflow::ambiguous : Overflow::none;
}

template <class T>
std::vector<T> convert(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <class T>
StateOf<T> convert(const OptimizerState& state) {
  StateOf<T> out;
  for (const auto& [name, values] : state) out[name] = convert<T>(values);
  return out;
}

template <class T>
std::vector<double> values_of(const std::vector<T>& x) {
  std::vector<double> out;
  out.reserve(x.size());
  for (const auto& v : x) out.push_back(to_double(v));
  return out;
}

/// The tolerance of a Bounded result: kToleranceMargin times its bound (Note [tolerance]).
double tolerance_of(const Bounded& x) { return kToleranceMargin * x.error; }

std::vector<double> tolerances_of(const std::vector<Bounded>& x) {
  std::vector<double> out;
  out.reserve(x.size());
  for (const auto& v : x) out.push_back(tolerance_of(v));
  return out;
}

/// How draw `d` rounds (Note [probabilistic tolerance]): draws 0, 1, 4, 5, ... per value, 2, 3, 6,
/// 7, ... per operation (each pair then one of each data-parallel convention).
RoundingChoice choice_of_draw(int d) {
  return (d / 2) % 2 == 0 ? RoundingChoice::per_value : RoundingChoice::per_operation;
}

/// The root-mean-square deviation from `truth` of the draws whose values are all finite, elementwise
/// (both kinds of draw pooled: Note [probabilistic tolerance]); empty when fewer than half the draws
/// are.
std::vector<double> spread_of(const std::vector<double>& truth, const std::vector<std::vector<double>>& drawn) {
  std::vector<const std::vector<double>*> finite;
  for (const auto& values : drawn) {
    bool ok = values.size() == truth.size();
    for (size_t i = 0; ok && i < values.size(); ++i) ok = std::isfinite(values[i]);
    if (ok) finite.push_back(&values);
  }
  if (finite.empty() || 2 * finite.size() < drawn.size()) return {};
  std::vector<double> out(truth.size(), 0.0);
  for (size_t i = 0; i < truth.size(); ++i) {
    double squares = 0.0;
    for (const auto* values : finite) squares += ((*values)[i] - truth[i]) * ((*values)[i] - truth[i]);
    out[i] = std::sqrt(squares / static_cast<double>(finite.size()));
  }
  return out;
}

/// The caps of one quantity: where the draws give a spread, the error its inputs carry (`carried`,
/// or none) plus kRoundingSpread times the spread, floored at one rounding of the value.
std::vector<double> caps_of(const std::vector<double>& truth, const std::vector<std::vector<double>>& drawn,
                            const std::vector<Bounded>* carried) {
  auto caps = spread_of(truth, drawn);
  for (size_t i = 0; i < caps.size(); ++i) {
    caps[i] = std::max(kRoundingSpread * caps[i], unit_roundoff() * std::fabs(truth[i]));
    if (carried && carried->size() == caps.size()) caps[i] += (*carried)[i].error;
  }
  return caps;
}

/// Whether a window's strict bound is loose enough to be worth the draws under fp32 (Note
/// [probabilistic tolerance]): its loss or its gradient's norm bounded no better than 2^-12 of the
/// value (4096 u), or not finite.
bool loose_in_fp32(const WindowResult<Bounded>& strict) {
  const auto loose = [](const Bounded& x) { return !(x.error <= 0x1p-12 * std::fabs(x.value)); };
  return loose(strict.loss) || (!std::isnan(strict.norm.value) && loose(strict.norm));
}

/// Under fp32 the proof stands wherever it resolves a value (its bound below the value): the draws
/// cap only the elements it does not (Note [probabilistic tolerance]).
void keep_proof_where_resolved(EvaluationCaps& caps, const WindowResult<Bounded>& strict) {
  const auto keep = [](std::vector<double>& caps_of, const std::vector<Bounded>& bounded) {
    if (caps_of.size() != bounded.size()) return;
    for (size_t i = 0; i < caps_of.size(); ++i) {
      if (bounded[i].error < std::fabs(bounded[i].value)) caps_of[i] = std::numeric_limits<double>::infinity();
    }
  };
  keep(caps.loss, {strict.loss});
  keep(caps.norm, {strict.norm});
  keep(caps.unclipped, strict.unclipped);
  keep(caps.buffers, strict.buffers_after);
}

/// The probabilistic caps of a window's evaluation (Note [probabilistic tolerance]): kRoundingDraws
/// evaluations in stochastic rounding from the exact `params` and `buffers` of `truth`'s window,
/// measured against it, plus what `carried` (the same evaluation in Bounded arithmetic with fresh
/// rounding off, from parameters that carry a bound) says their inputs' error adds.
template <class T>
EvaluationCaps evaluation_caps(const Scenario& scenario, const fixtures::ModelLayout& layout, const WindowSetup& window,
                               const std::vector<double>& params, const std::vector<double>& buffers,
                               const WindowResult<T>& truth, const WindowResult<Bounded>* carried) {
  EvaluationCaps caps;
  std::vector<std::vector<double>> loss, unclipped, norm, buffers_after;
  const std::vector<Stochastic> drawn_params(params.begin(), params.end()), drawn_buffers(buffers.begin(), buffers.end());
  for (int d = 0; d < kRoundingDraws; ++d) {
    // Half the draws choose each rounding per operation, half per value; across those, half of a
    // multi-rank window's follow DDP's averaging convention (Note [probabilistic tolerance]): each
    // is what some correct implementation does, and they round differently.
    const RoundingDraw draw(fixtures::random_bits(scenario.data.seed, scenario.model.init_seed,
                                                  static_cast<uint64_t>(window.step)),
                            d, choice_of_draw(d));
    auto evaluation = evaluate_window(scenario, window.step, *window.batch, *window.virtual_batches, window.loss_scale,
                                      drawn_params, drawn_buffers, d % 2 == 1);
    loss.push_back({evaluation.loss.value});
    buffers_after.push_back(values_of(evaluation.buffers_after));
    if (!window.skipped) {
      unscale(evaluation.grad, window.loss_scale);
      norm.push_back({global_norm(layout, evaluation.grad).value});
      unclipped.push_back(values_of(evaluation.grad));
    }
  }
  const std::vector<Bounded> carried_loss{carried ? carried->loss : Bounded()};
  const std::vector<Bounded> carried_norm{carried ? carried->norm : Bounded()};
  caps.loss = caps_of({to_double(truth.loss)}, loss, &carried_loss);
  caps.buffers = caps_of(values_of(truth.buffers_after), buffers_after, carried ? &carried->buffers_after : nullptr);
  if (!window.skipped) {
    caps.norm = caps_of({to_double(truth.norm)}, norm, &carried_norm);
    caps.unclipped = caps_of(values_of(truth.unclipped), unclipped, carried ? &carried->unclipped : nullptr);
  }
  return caps;
}

/// An implementation may step its scheduler in chained form (PyTorch's schedulers update the rate
/// from the previous one): a few fp64 roundings per step beyond the closed form's.
double chained_schedule_allowance(int step, double lr) {
  return kScaleRoundings * (step + 1) * unit_roundoff(kFp64) * std::fabs(lr);
}

/// Combines the truth (values) and the Bounded run (tolerances) of one window.
template <class T>
WindowExpectation expectation(int step, double loss_scale, Overflow overflow, const WindowResult<T>& truth,
                              const WindowResult<Bounded>& bounded) {
  WindowExpectation e;
  e.step = step;
  e.lr = to_double(truth.lr);
  e.lr_tolerance = tolerance_of(bounded.lr) + kToleranceMargin * chained_schedule_allowance(step, e.lr);
  e.loss = to_double(truth.loss);
  e.loss_tolerance = tolerance_of(bounded.loss);
  e.grad = values_of(truth.grad);
  e.grad_tolerance = tolerances_of(bounded.grad);
  e.norm = to_double(truth.norm);
  e.norm_tolerance = tolerance_of(bounded.norm);
  e.params_after = values_of(truth.params_after);
  e.params_after_tolerance = tolerances_of(bounded.params_after);
  for (const auto& [name, values] : truth.state_after) e.state_after[name] = values_of(values);
  for (const auto& [name, values] : bounded.state_after) e.state_after_tolerance[name] = tolerances_of(values);
  e.buffers_after = values_of(truth.buffers_after);
  e.buffers_after_tolerance = tolerances_of(bounded.buffers_after);
  e.loss_scale = loss_scale;
  e.overflow = overflow;
  e.skipped = overflow == Overflow::definite;
  return e;
}

/// Large-batch training from the initial weights, with GradScaler's state machine under fp16: the
/// scale backs off after a skipped step and grows after `growth_interval` taken ones. A step whose
/// overflow is ambiguous is taken (an implementation that skips it leaves this path). The scheduler
/// steps on every window, or with `holds` only on taken steps.
template <class T>
std::vector<WindowExpectation> trajectory_in(const Scenario& scenario, const fixtures::ModelLayout& layout,
                                             const std::vector<fixtures::Batch>& windows,
                                             const std::vector<std::vector<int64_t>>& virtual_batches,
                                             const std::vector<double>& initial_params,
                                             const std::vector<double>& initial_buffers, bool holds) {
  std::vector<WindowExpectation> out;
  std::vector<T> params = convert<T>(initial_params), buffers = convert<T>(initial_buffers);
  std::vector<Bounded> bounded_params = convert<Bounded>(initial_params);
  std::vector<Bounded> bounded_buffers = convert<Bounded>(initial_buffers);
  StateOf<T> state;
  StateOf<Bounded> bounded_state;
  const bool scaled = scenario.precision == Precision::fp16;
  LossScaleState scaler = initial_loss_scale(scenario.loss_scale);
  int position = 0;
  for (int s = 0; s < scenario.steps; ++s) {
    const double loss_scale = scaled ? scaler.scale : 1.0;
    const Overflow overflow = window_overflow(scenario, s, bounded_params, bounded_buffers, loss_scale);
    const bool skipped = overflow == Overflow::definite;
    const WindowSetup window{s, &windows[s], &virtual_batches[s], loss_scale, skipped, position};
    auto truth = run_window(scenario, layout, window, params, state, buffers);
    std::optional<WindowResult<Bounded>> strict;
    if (scenario.precision == Precision::fp32) {
      strict = run_window(scenario, layout, window, bounded_params, bounded_state, bounded_buffers);
    }
    if (!strict || loose_in_fp32(*strict)) {
      // This window's own rounding, drawn from the truth's state; what the parameters' bound carries
      // into it, propagated (Note [probabilistic tolerance]).
      const auto carried = [&] {
        const PropagationOnly propagation;
        return run_window(scenario, layout, window, bounded_params, bounded_state, bounded_buffers);
      }();
      auto caps = evaluation_caps(scenario, layout, window, values_of(params), values_of(buffers), truth, &carried);
      if (strict) keep_proof_where_resolved(caps, *strict);
      strict = run_window(scenario, layout, window, bounded_params, bounded_state, bounded_buffers, &caps);
    }
    auto bounded = std::move(*strict);
    out.push_back(expectation(s, loss_scale, overflow, truth, bounded));
    out.back().schedule_position = position;
    if (!(skipped && holds)) ++position;
    if (scaled) scaler = update_loss_scale(scenario.loss_scale, scaler, skipped);
    params = std::move(truth.params_after);
    state = std::move(truth.state_after);
    buffers = std::move(truth.buffers_after);
    bounded_params = std::move(bounded.params_after);
    bounded_state = std::move(bounded.state_after);
    bounded_buffers = std::move(bounded.buffers_after);
  }
  return out;
}

/// The window from given exact values; `window.skipped` is decided here (Note [overflow]).
template <class T>
WindowExpectation window_in(const Scenario& scenario, const fixtures::ModelLayout& layout, WindowSetup window,
                            const std::vector<double>& params, const OptimizerState& state,
                            const std::vector<double>& buffers) {
  const Overflow overflow =
      window_overflow(scenario, window.step, convert<Bounded>(params), convert<Bounded>(buffers), window.loss_scale);
  window.skipped = overflow == Overflow::definite;
  auto truth = run_window(scenario, layout, window, convert<T>(params), convert<T>(state), convert<T>(buffers));
  const auto bounded_in = [&](const EvaluationCaps* caps) {
    return run_window(scenario, layout, window, convert<Bounded>(params), convert<Bounded>(state),
                      convert<Bounded>(buffers), caps);
  };
  std::optional<WindowResult<Bounded>> bounded;
  if (scenario.precision == Precision::fp32) bounded = bounded_in(nullptr);
  if (!bounded || loose_in_fp32(*bounded)) {
    auto caps = evaluation_caps(scenario, layout, window, params, buffers, truth, nullptr);
    if (bounded) keep_proof_where_resolved(caps, *bounded);
    bounded = bounded_in(&caps);
  }
  auto e = expectation(window.step, window.loss_scale, overflow, truth, *bounded);
  e.schedule_position = window.schedule_position;
  return e;
}

bool all_finite(const std::vector<double>& values) {
  for (double x : values) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

/// Throws InvalidCase when the true trajectory leaves the range an implementation in `format` can
/// hold. The limit is the magnitude whose square, summed over 2^16 elements, still fits the format
/// (2^56 for fp32): a gradient norm, Adam's second moment and a squared error square these values,
/// so beyond it a correct stack overflows where the truth does not. Real training never comes near;
/// a scenario that does diverges, and judging accumulation on it would blame the stack for its
/// format. Under fp16 a skipped step has no gradient and a NaN norm by design (not checked).
void check_in_range(const std::vector<WindowExpectation>& trajectory, const FloatFormat& format) {
  const double limit = std::sqrt(max_finite(format) / 65536.0);
  for (const auto& w : trajectory) {
    const auto check = [&](const std::string& what, double value) {
      if (std::fabs(value) <= limit) return;
      std::ostringstream message;
      message.precision(3);
      message << "invalid case: the large-batch trajectory diverges: step " << w.step << "'s " << what << " is "
              << value << ", beyond " << limit << " (the largest magnitude whose square over 2^16 elements fits "
              << format.name << "); no " << format.name << " stack can be judged on this scenario";
      throw InvalidCase(message.str());
    };
    const auto check_all = [&](const std::string& what, const std::vector<double>& values) {
      for (size_t i = 0; i < values.size(); ++i) check(what + " element " + std::to_string(i), values[i]);
    };
    check("loss", w.loss);
    if (!w.skipped) {
      check("gradient norm", w.norm);
      check_all("gradient", w.grad);
    }
    check_all("parameter", w.params_after);
    for (const auto& [name, values] : w.state_after) check_all("optimizer state \"" + name + "\"", values);
    check_all("buffer", w.buffers_after);
  }
}

}  // namespace

Oracle::Oracle(const Scenario& scenario, OracleOptions options)
    : scenario_(scenario),
      options_(options),
      format_(options.format ? options.format : &kFp32),
      layout_(fixtures::model_layout(scenario.model)),
      initial_params_(fixtures::initial_weights(scenario.model, scenario.precision)),
      initial_buffers_(fixtures::initial_buffers(scenario.model)) {
  validate(scenario_);
  for (int s = 0; s < scenario_.steps; ++s) {
    windows_.push_back(fixtures::window_batch(scenario_, s));
    auto& virtual_batches = virtual_batches_.emplace_back();
    if (options_.ghost_batch_norm) {
      for (const auto& rank : scenario_.data.windows[s]) virtual_batches.insert(virtual_batches.end(), rank.begin(), rank.end());
    }
  }
  RoundingScope rounding(*format_);
  const bool holds = options_.scheduler_holds_on_skipped_step;
  trajectory_ = options_.high_precision
                    ? trajectory_in<HighPrecision>(scenario_, layout_, windows_, virtual_batches_, initial_params_,
                                                   initial_buffers_, holds)
                    : trajectory_in<double>(scenario_, layout_, windows_, virtual_batches_, initial_params_,
                                            initial_buffers_, holds);
  check_in_range(trajectory_, *format_);
}

double Oracle::unit_roundoff() const { return gacc::unit_roundoff(*format_); }

const WindowExpectation& Oracle::window_from(int step, const std::vector<double>& params, const OptimizerState& state,
                                             const std::vector<double>& buffers, std::optional<double> loss_scale,
                                             std::optional<int> schedule_position) const {
  if (step < 0 || step >= scenario_.steps) {
    throw std::out_of_range("Oracle::window_from: step " + std::to_string(step) + " of " +
                            std::to_string(scenario_.steps));
  }
  if (static_cast<int64_t>(params.size()) != layout_.size || static_cast<int64_t>(buffers.size()) != layout_.buffer_size) {
    throw std::invalid_argument("Oracle::window_from: " + std::to_string(params.size()) + " parameters and " +
                                std::to_string(buffers.size()) + " buffer values; the model has " +
                                std::to_string(layout_.size) + " and " + std::to_string(layout_.buffer_size));
  }
  bool finite = all_finite(params) && all_finite(buffers);
  for (const auto& entry : state) finite = finite && all_finite(entry.second);
  if (!finite) throw std::invalid_argument("Oracle::window_from: non-finite parameters, state or buffers");
  const double scale = loss_scale.value_or(trajectory_[static_cast<size_t>(step)].loss_scale);
  const bool scaled = scenario_.precision == Precision::fp16;
  if (scaled ? !(std::isfinite(scale) && scale > 0.0) : scale != 1.0) {
    throw std::invalid_argument("Oracle::window_from: loss scale " + std::to_string(scale) +
                                (scaled ? " (must be positive and finite)" : " without fp16 (must be 1)"));
  }

  const int position = schedule_position.value_or(trajectory_[static_cast<size_t>(step)].schedule_position);
  if (position < 0 || position > step) {
    throw std::invalid_argument("Oracle::window_from: schedule position " + std::to_string(position) + " at step " +
                                std::to_string(step) + " (the scheduler steps at most once per window)");
  }
  Key key{step, params, state, buffers, scale, position};
  std::lock_guard<std::mutex> lock(memo_mutex_);
  auto it = memo_.find(key);
  if (it != memo_.end()) return *it->second;
  RoundingScope rounding(*format_);
  const WindowSetup setup{step, &windows_[static_cast<size_t>(step)], &virtual_batches_[static_cast<size_t>(step)],
                          scale, false, position};
  auto e = options_.high_precision ? window_in<HighPrecision>(scenario_, layout_, setup, params, state, buffers)
                                   : window_in<double>(scenario_, layout_, setup, params, state, buffers);
  auto& slot = memo_[std::move(key)];
  slot = std::make_unique<WindowExpectation>(std::move(e));
  return *slot;
}

}  // namespace gacc::reference

namespace gacc::reference {

const Oracle& Oracle::ghost() const {
  std::lock_guard<std::mutex> lock(memo_mutex_);
  if (options_.ghost_batch_norm) return *this;
  if (!ghost_) {
    OracleOptions options = options_;
    options.ghost_batch_norm = true;
    ghost_ = std::make_unique<Oracle>(scenario_, options);
  }
  return *ghost_;
}

const Oracle& Oracle::held() const {
  std::lock_guard<std::mutex> lock(memo_mutex_);
  if (options_.scheduler_holds_on_skipped_step) return *this;
  if (!held_) {
    OracleOptions options = options_;
    options.scheduler_holds_on_skipped_step = true;
    held_ = std::make_unique<Oracle>(scenario_, options);
  }
  return *held_;
}

std::vector<std::vector<double>> Oracle::buffers_in_other_orders(int step, const std::vector<double>& params,
                                                                 const std::vector<double>& buffers) const {
  const int micro_batches = micro_batch_count(scenario_, step);
  if (!options_.ghost_batch_norm || !is_batch_coupled(scenario_.model) || scenario_.world_size != 1 ||
      micro_batches < 2) {
    return {};
  }
  // Each micro-batch's update from zero buffers is momentum x its statistics (mean, unbiased
  // variance); the tracked-batches count (the last buffer) just counts.
  const double momentum = scenario_.model.batch_norm_momentum;
  std::vector<std::vector<double>> updates;
  for (int k = 0; k < micro_batches; ++k) {
    const auto batch = fixtures::micro_batch(scenario_, step, 0, k);
    updates.push_back(
        loss_and_gradient<double>(scenario_, params, std::vector<double>(buffers.size(), 0.0), batch).buffers_after);
  }
  std::vector<int> order(static_cast<size_t>(micro_batches));
  for (int k = 0; k < micro_batches; ++k) order[static_cast<size_t>(k)] = k;
  std::vector<std::vector<double>> out;
  while (std::next_permutation(order.begin(), order.end())) {
    std::vector<double> running = buffers;
    for (int k : order) {
      for (size_t i = 0; i + 1 < running.size(); ++i) running[i] = (1.0 - momentum) * running[i] + updates[k][i];
      running.back() += 1.0;
    }
    out.push_back(std::move(running));
  }
  return out;
}

std::pair<double, double> Oracle::scheduled_rate(int position) const {
  RoundingScope rounding(*format_);
  const double rate = learning_rate<double>(scenario_, position);
  const Bounded bounded = host_value<Bounded>([&](auto h) { return learning_rate<decltype(h)>(scenario_, position); });
  return {rate, kToleranceMargin * (bounded.error + chained_schedule_allowance(position, rate))};
}

}  // namespace gacc::reference
