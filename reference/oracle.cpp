#include "reference/oracle.h"

#include <cmath>
#include <limits>
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
/// no split computes.
template <class T>
ModelEvaluation<T> evaluate_window(const Scenario& scenario, int step, const fixtures::Batch& batch,
                                   const std::vector<int64_t>& virtual_batches, double loss_scale,
                                   const std::vector<T>& params, const std::vector<T>& buffers) {
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
  for (size_t rank = 0; rank < window.size(); ++rank) {
    for (size_t micro = 0; micro < window[rank].size(); ++micro) {
      const auto micro_batch = fixtures::micro_batch(scenario, step, static_cast<int>(rank), static_cast<int>(micro));
      auto part = loss_and_gradient(scenario, params, total.buffers_after, micro_batch, options);
      total.loss = total.loss + part.loss;
      for (size_t i = 0; i < part.grad.size(); ++i) total.grad[i] = total.grad[i] + part.grad[i];
      total.buffers_after = std::move(part.buffers_after);
    }
  }
  return total;
}

/// One optimizer step of large-batch training: the window's loss and gradient (the backward pass
/// run under `loss_scale`, then unscaled), the pre-clip norm, clipping, the step — or, when the
/// step is `skipped` (an fp16 overflow), the loss and buffers of the window with parameters and
/// state untouched.
template <class T>
WindowResult<T> run_window(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                           const fixtures::Batch& batch, const std::vector<int64_t>& virtual_batches,
                           double loss_scale, bool skipped, std::vector<T> params, StateOf<T> state,
                           const std::vector<T>& buffers) {
  auto evaluation = evaluate_window(scenario, step, batch, virtual_batches, loss_scale, params, buffers);
  WindowResult<T> out;
  out.lr = host_value<T>([&](auto h) { return learning_rate<decltype(h)>(scenario, step); });
  out.loss = evaluation.loss;
  out.buffers_after = std::move(evaluation.buffers_after);
  if (skipped) {
    out.norm = T(std::numeric_limits<double>::quiet_NaN());
  } else {
    unscale(evaluation.grad, loss_scale);
    out.norm = global_norm(layout, evaluation.grad);
    out.grad = std::move(evaluation.grad);
    clip(scenario, out.norm, out.grad);
    optimizer_step(scenario, step, params, out.grad, state);
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

/// The rounding draws of one window (Note [probabilistic tolerance]): none under fp32.
using Draws = std::vector<WindowResult<Stochastic>>;

/// Tolerances of one quantity: kToleranceMargin times, elementwise, the smaller of the strict bound
/// and the probabilistic one — kRoundingSpread times the root-mean-square deviation from the truth of
/// the draws whose values are all finite, floored at one rounding of the value, used only when at
/// least half the draws are (Note [probabilistic tolerance]).
std::vector<double> tolerances_of(const std::vector<Bounded>& bounded, const std::vector<double>& truth,
                                  const std::vector<const std::vector<Stochastic>*>& drawn) {
  std::vector<const std::vector<Stochastic>*> finite;
  for (const auto* values : drawn) {
    bool ok = values->size() == truth.size();
    for (size_t i = 0; ok && i < values->size(); ++i) ok = std::isfinite((*values)[i].value);
    if (ok) finite.push_back(values);
  }
  const bool calibrated = !finite.empty() && 2 * finite.size() >= static_cast<size_t>(kRoundingDraws);
  std::vector<double> out;
  out.reserve(bounded.size());
  for (size_t i = 0; i < bounded.size(); ++i) {
    double bound = bounded[i].error;
    if (calibrated) {
      double squares = 0.0;
      for (const auto* values : finite) {
        const double deviation = (*values)[i].value - truth[i];
        squares += deviation * deviation;
      }
      const double spread = std::sqrt(squares / static_cast<double>(finite.size()));
      bound = std::min(bound, std::max(kRoundingSpread * spread, unit_roundoff() * std::fabs(truth[i])));
    }
    out.push_back(kToleranceMargin * bound);
  }
  return out;
}

/// tolerances_of for one value of each draw, picked by `pick`.
template <class Pick>
double tolerance_of(const Bounded& bounded, double truth, const Draws& draws, Pick pick) {
  std::vector<std::vector<Stochastic>> values;
  for (const auto& draw : draws) values.push_back({pick(draw)});
  std::vector<const std::vector<Stochastic>*> drawn;
  for (const auto& v : values) drawn.push_back(&v);
  return tolerances_of({bounded}, {truth}, drawn).front();
}

/// tolerances_of for one vector of each draw, picked by `pick`.
template <class Pick>
std::vector<double> tolerances_of(const std::vector<Bounded>& bounded, const std::vector<double>& truth,
                                  const Draws& draws, Pick pick) {
  std::vector<const std::vector<Stochastic>*> drawn;
  for (const auto& draw : draws) drawn.push_back(&pick(draw));
  return tolerances_of(bounded, truth, drawn);
}

/// An implementation may step its scheduler in chained form (PyTorch's schedulers update the rate
/// from the previous one): a few fp64 roundings per step beyond the closed form's.
double chained_schedule_allowance(int step, double lr) {
  return kScaleRoundings * (step + 1) * unit_roundoff(kFp64) * std::fabs(lr);
}

/// Combines the truth (values), the Bounded run and the rounding draws (tolerances) of one window.
template <class T>
WindowExpectation expectation(int step, double loss_scale, Overflow overflow, const WindowResult<T>& truth,
                              const WindowResult<Bounded>& bounded, const Draws& draws) {
  WindowExpectation e;
  e.step = step;
  e.lr = to_double(truth.lr);
  e.lr_tolerance = tolerance_of(bounded.lr) + kToleranceMargin * chained_schedule_allowance(step, e.lr);
  e.loss = to_double(truth.loss);
  e.loss_tolerance = tolerance_of(bounded.loss, e.loss, draws, [](const auto& d) { return d.loss; });
  e.grad = values_of(truth.grad);
  e.grad_tolerance = tolerances_of(bounded.grad, e.grad, draws, [](const auto& d) -> const auto& { return d.grad; });
  e.norm = to_double(truth.norm);
  e.norm_tolerance = tolerance_of(bounded.norm, e.norm, draws, [](const auto& d) { return d.norm; });
  e.params_after = values_of(truth.params_after);
  e.params_after_tolerance =
      tolerances_of(bounded.params_after, e.params_after, draws, [](const auto& d) -> const auto& { return d.params_after; });
  for (const auto& [name, values] : truth.state_after) e.state_after[name] = values_of(values);
  for (const auto& [name, values] : bounded.state_after) {
    const std::string& key = name;
    e.state_after_tolerance[name] = tolerances_of(values, e.state_after.at(name), draws,
                                                  [&key](const auto& d) -> const auto& { return d.state_after.at(key); });
  }
  e.buffers_after = values_of(truth.buffers_after);
  e.buffers_after_tolerance = tolerances_of(bounded.buffers_after, e.buffers_after, draws,
                                            [](const auto& d) -> const auto& { return d.buffers_after; });
  e.loss_scale = loss_scale;
  e.overflow = overflow;
  e.skipped = overflow == Overflow::definite;
  return e;
}

/// Where a rounding draw stands: its own parameters, optimizer state and buffers.
struct DrawnState {
  std::vector<Stochastic> params, buffers;
  StateOf<Stochastic> state;
};

/// The seed of the rounding draws of window `step`: fixed by the scenario, so that a verdict is
/// reproducible.
uint64_t draw_seed(const Scenario& scenario, int step) {
  return fixtures::random_bits(scenario.data.seed, scenario.model.init_seed, static_cast<uint64_t>(step));
}

/// Runs window `step` for every draw from where it stands, and moves each draw on. Under fp32 there
/// are no draws (the strict bound stands alone: Note [probabilistic tolerance]).
Draws draw_window(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                  const fixtures::Batch& batch, const std::vector<int64_t>& virtual_batches, double loss_scale,
                  bool skipped, std::vector<DrawnState>& drawn) {
  Draws draws;
  for (size_t d = 0; d < drawn.size(); ++d) {
    const RoundingDraw draw(draw_seed(scenario, step), static_cast<int>(d));
    draws.push_back(run_window(scenario, layout, step, batch, virtual_batches, loss_scale, skipped, drawn[d].params,
                               drawn[d].state, drawn[d].buffers));
    drawn[d] = {draws.back().params_after, draws.back().buffers_after, draws.back().state_after};
  }
  return draws;
}

/// Every draw starting from the same exact values.
std::vector<DrawnState> draws_from(const Scenario& scenario, const std::vector<double>& params,
                                   const OptimizerState& state, const std::vector<double>& buffers) {
  if (scenario.precision == Precision::fp32) return {};
  return std::vector<DrawnState>(static_cast<size_t>(kRoundingDraws),
                                 {convert<Stochastic>(params), convert<Stochastic>(buffers), convert<Stochastic>(state)});
}

/// Large-batch training from the initial weights, with GradScaler's state machine under fp16: the
/// scale backs off after a skipped step and grows after `growth_interval` taken ones. A step whose
/// overflow is ambiguous is taken (an implementation that skips it leaves this path).
template <class T>
std::vector<WindowExpectation> trajectory_in(const Scenario& scenario, const fixtures::ModelLayout& layout,
                                             const std::vector<fixtures::Batch>& windows,
                                             const std::vector<std::vector<int64_t>>& virtual_batches,
                                             const std::vector<double>& initial_params,
                                             const std::vector<double>& initial_buffers) {
  std::vector<WindowExpectation> out;
  std::vector<T> params = convert<T>(initial_params), buffers = convert<T>(initial_buffers);
  std::vector<Bounded> bounded_params = convert<Bounded>(initial_params);
  std::vector<Bounded> bounded_buffers = convert<Bounded>(initial_buffers);
  StateOf<T> state;
  StateOf<Bounded> bounded_state;
  auto drawn = draws_from(scenario, initial_params, {}, initial_buffers);
  const bool scaled = scenario.precision == Precision::fp16;
  LossScaleState scaler = initial_loss_scale(scenario.loss_scale);
  for (int s = 0; s < scenario.steps; ++s) {
    const double loss_scale = scaled ? scaler.scale : 1.0;
    const Overflow overflow = window_overflow(scenario, s, bounded_params, bounded_buffers, loss_scale);
    const bool skipped = overflow == Overflow::definite;
    auto truth = run_window(scenario, layout, s, windows[s], virtual_batches[s], loss_scale, skipped, params, state,
                            buffers);
    auto bounded = run_window(scenario, layout, s, windows[s], virtual_batches[s], loss_scale, skipped,
                              bounded_params, bounded_state, bounded_buffers);
    const auto draws = draw_window(scenario, layout, s, windows[s], virtual_batches[s], loss_scale, skipped, drawn);
    out.push_back(expectation(s, loss_scale, overflow, truth, bounded, draws));
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

template <class T>
WindowExpectation window_in(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                            const fixtures::Batch& batch, const std::vector<int64_t>& virtual_batches,
                            double loss_scale, const std::vector<double>& params, const OptimizerState& state,
                            const std::vector<double>& buffers) {
  const Overflow overflow =
      window_overflow(scenario, step, convert<Bounded>(params), convert<Bounded>(buffers), loss_scale);
  const bool skipped = overflow == Overflow::definite;
  auto truth = run_window(scenario, layout, step, batch, virtual_batches, loss_scale, skipped, convert<T>(params),
                          convert<T>(state), convert<T>(buffers));
  auto bounded = run_window(scenario, layout, step, batch, virtual_batches, loss_scale, skipped,
                            convert<Bounded>(params), convert<Bounded>(state), convert<Bounded>(buffers));
  auto drawn = draws_from(scenario, params, state, buffers);
  const auto draws = draw_window(scenario, layout, step, batch, virtual_batches, loss_scale, skipped, drawn);
  return expectation(step, loss_scale, overflow, truth, bounded, draws);
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
  trajectory_ = options_.high_precision
                    ? trajectory_in<HighPrecision>(scenario_, layout_, windows_, virtual_batches_, initial_params_,
                                                   initial_buffers_)
                    : trajectory_in<double>(scenario_, layout_, windows_, virtual_batches_, initial_params_,
                                            initial_buffers_);
  check_in_range(trajectory_, *format_);
}

double Oracle::unit_roundoff() const { return gacc::unit_roundoff(*format_); }

const WindowExpectation& Oracle::window_from(int step, const std::vector<double>& params, const OptimizerState& state,
                                             const std::vector<double>& buffers,
                                             std::optional<double> loss_scale) const {
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

  Key key{step, params, state, buffers, scale};
  std::lock_guard<std::mutex> lock(memo_mutex_);
  auto it = memo_.find(key);
  if (it != memo_.end()) return *it->second;
  RoundingScope rounding(*format_);
  auto e = options_.high_precision
               ? window_in<HighPrecision>(scenario_, layout_, step, windows_[step], virtual_batches_[step], scale,
                                          params, state, buffers)
               : window_in<double>(scenario_, layout_, step, windows_[step], virtual_batches_[step], scale, params,
                                   state, buffers);
  auto& slot = memo_[std::move(key)];
  slot = std::make_unique<WindowExpectation>(std::move(e));
  return *slot;
}

}  // namespace gacc::reference

namespace gacc::reference {

const Oracle& Oracle::ghost() const {
  std::lock_guard<std::mutex> lock(memo_mutex_);
  if (!ghost_) {
    OracleOptions options = options_;
    options.ghost_batch_norm = true;
    ghost_ = std::make_unique<Oracle>(scenario_, options);
  }
  return *ghost_;
}

}  // namespace gacc::reference
