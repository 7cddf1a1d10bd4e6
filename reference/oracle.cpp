#include "reference/oracle.h"

#include <cmath>
#include <stdexcept>

#include "reference/bounded.h"
#include "reference/loss_scale.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"

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

/// One optimizer step of large-batch training: the window's loss and gradient, the pre-clip norm,
/// clipping, the step.
template <class T>
WindowResult<T> run_window(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                           const fixtures::Batch& batch, const std::vector<int64_t>& virtual_batches,
                           std::vector<T> params, StateOf<T> state, const std::vector<T>& buffers) {
  EvaluationOptions options;
  options.virtual_batches = virtual_batches;
  auto evaluation = loss_and_gradient(scenario, params, buffers, batch, options);
  WindowResult<T> out;
  out.lr = host_value<T>([&](auto h) { return learning_rate<decltype(h)>(scenario, step); });
  out.loss = evaluation.loss;
  out.norm = global_norm(layout, evaluation.grad);
  out.grad = std::move(evaluation.grad);
  clip(scenario, out.norm, out.grad);
  optimizer_step(scenario, step, params, out.grad, state);
  out.params_after = std::move(params);
  out.state_after = std::move(state);
  out.buffers_after = std::move(evaluation.buffers_after);
  return out;
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

/// An implementation may step its scheduler in chained form (PyTorch's schedulers update the rate
/// from the previous one): a few fp64 roundings per step beyond the closed form's.
double chained_schedule_allowance(int step, double lr) {
  return kScaleRoundings * (step + 1) * unit_roundoff(kFp64) * std::fabs(lr);
}

/// Combines the truth (values) and the Bounded run (tolerances) of one window.
template <class T>
WindowExpectation expectation(int step, double loss_scale, const WindowResult<T>& truth,
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
  return e;
}

template <class T>
std::vector<WindowExpectation> trajectory_in(const Scenario& scenario, const fixtures::ModelLayout& layout,
                                             const std::vector<fixtures::Batch>& windows,
                                             const std::vector<std::vector<int64_t>>& virtual_batches,
                                             const std::vector<double>& loss_scales,
                                             const std::vector<double>& initial_params,
                                             const std::vector<double>& initial_buffers) {
  std::vector<WindowExpectation> out;
  std::vector<T> params = convert<T>(initial_params), buffers = convert<T>(initial_buffers);
  std::vector<Bounded> bounded_params = convert<Bounded>(initial_params);
  std::vector<Bounded> bounded_buffers = convert<Bounded>(initial_buffers);
  StateOf<T> state;
  StateOf<Bounded> bounded_state;
  for (int s = 0; s < scenario.steps; ++s) {
    auto truth = run_window(scenario, layout, s, windows[s], virtual_batches[s], params, state, buffers);
    auto bounded =
        run_window(scenario, layout, s, windows[s], virtual_batches[s], bounded_params, bounded_state, bounded_buffers);
    out.push_back(expectation(s, loss_scales[s], truth, bounded));
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
  auto truth = run_window(scenario, layout, step, batch, virtual_batches, convert<T>(params), convert<T>(state),
                          convert<T>(buffers));
  auto bounded = run_window(scenario, layout, step, batch, virtual_batches, convert<Bounded>(params),
                            convert<Bounded>(state), convert<Bounded>(buffers));
  return expectation(step, loss_scale, truth, bounded);
}

bool all_finite(const std::vector<double>& values) {
  for (double x : values) {
    if (!std::isfinite(x)) return false;
  }
  return true;
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
  LossScaleState loss_scale = initial_loss_scale(scenario_.loss_scale);
  for (int s = 0; s < scenario_.steps; ++s) {
    const bool scaled = scenario_.precision == Precision::fp16;
    loss_scales_.push_back(scaled ? loss_scale.scale : 1.0);
    loss_scale = update_loss_scale(scenario_.loss_scale, loss_scale, false);
  }
  RoundingScope rounding(*format_);
  trajectory_ = options_.high_precision
                    ? trajectory_in<HighPrecision>(scenario_, layout_, windows_, virtual_batches_, loss_scales_,
                                                   initial_params_, initial_buffers_)
                    : trajectory_in<double>(scenario_, layout_, windows_, virtual_batches_, loss_scales_,
                                            initial_params_, initial_buffers_);
}

double Oracle::unit_roundoff() const { return gacc::unit_roundoff(*format_); }

const WindowExpectation& Oracle::window_from(int step, const std::vector<double>& params, const OptimizerState& state,
                                             const std::vector<double>& buffers) const {
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

  Key key{step, params, state, buffers};
  std::lock_guard<std::mutex> lock(memo_mutex_);
  auto it = memo_.find(key);
  if (it != memo_.end()) return *it->second;
  RoundingScope rounding(*format_);
  auto e = options_.high_precision
               ? window_in<HighPrecision>(scenario_, layout_, step, windows_[step], virtual_batches_[step],
                                          loss_scales_[step], params, state, buffers)
               : window_in<double>(scenario_, layout_, step, windows_[step], virtual_batches_[step],
                                   loss_scales_[step], params, state, buffers);
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
