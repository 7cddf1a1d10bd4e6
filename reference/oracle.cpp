#include "reference/oracle.h"

#include <cmath>
#include <stdexcept>

#include "reference/bounded.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"

namespace gacc::reference {
namespace {

template <class T>
struct WindowResult {
  T loss;
  std::vector<T> grad;
  T norm;
  std::vector<T> params_after;
  StateOf<T> state_after;
};

/// Global L2 norm as the norm of per-tensor norms (torch.nn.utils.clip_grad_norm_'s order).
template <class T>
T global_norm(const fixtures::ModelLayout& layout, const std::vector<T>& grad) {
  using std::sqrt;
  std::vector<T> squares, tensor_norms;
  for (const auto& p : layout.parameters) {
    squares.clear();
    for (int64_t i = 0; i < p.numel; ++i) squares.push_back(grad[p.offset + i] * grad[p.offset + i]);
    const T norm = sqrt(sum_of(squares.data(), squares.size()));
    tensor_norms.push_back(norm * norm);
  }
  return sqrt(sum_of(tensor_norms.data(), tensor_norms.size()));
}

template <class T>
WindowResult<T> run_window(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                           const fixtures::Batch& batch, std::vector<T> params, StateOf<T> state) {
  auto lg = loss_and_gradient(scenario, params, batch);
  WindowResult<T> out{lg.loss, lg.grad, global_norm(layout, lg.grad), {}, {}};
  optimizer_step(scenario, step, params, lg.grad, state);
  out.params_after = std::move(params);
  out.state_after = std::move(state);
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

/// Combines the truth (values) and the Bounded run (tolerances) of one window.
template <class T>
WindowExpectation expectation(int step, double lr, const WindowResult<T>& truth,
                              const WindowResult<Bounded>& bounded) {
  WindowExpectation e;
  e.step = step;
  e.lr = lr;
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
  return e;
}

template <class T>
std::vector<WindowExpectation> trajectory_in(const Scenario& scenario,
                                             const fixtures::ModelLayout& layout,
                                             const std::vector<fixtures::Batch>& windows,
                                             const std::vector<double>& initial) {
  std::vector<WindowExpectation> out;
  std::vector<T> params = convert<T>(initial);
  std::vector<Bounded> bounded_params = convert<Bounded>(initial);
  StateOf<T> state;
  StateOf<Bounded> bounded_state;
  for (int s = 0; s < scenario.steps; ++s) {
    auto truth = run_window(scenario, layout, s, windows[s], params, state);
    auto bounded = run_window(scenario, layout, s, windows[s], bounded_params, bounded_state);
    out.push_back(expectation(s, learning_rate(scenario, s), truth, bounded));
    params = std::move(truth.params_after);
    state = std::move(truth.state_after);
    bounded_params = std::move(bounded.params_after);
    bounded_state = std::move(bounded.state_after);
  }
  return out;
}

template <class T>
WindowExpectation window_in(const Scenario& scenario, const fixtures::ModelLayout& layout, int step,
                            const fixtures::Batch& batch, const std::vector<double>& params,
                            const OptimizerState& state) {
  auto truth = run_window(scenario, layout, step, batch, convert<T>(params), convert<T>(state));
  auto bounded =
      run_window(scenario, layout, step, batch, convert<Bounded>(params), convert<Bounded>(state));
  return expectation(step, learning_rate(scenario, step), truth, bounded);
}

}  // namespace

double unit_roundoff_of(Precision precision) {
  switch (precision) {
    case Precision::fp32:
      return 0x1p-24;
  }
  return 0x1p-24;
}

Oracle::Oracle(const Scenario& scenario, OracleOptions options)
    : scenario_(scenario),
      options_(options),
      layout_(fixtures::model_layout(scenario.model)),
      initial_params_(fixtures::initial_weights(scenario.model, scenario.precision)),
      unit_roundoff_(options.unit_roundoff > 0 ? options.unit_roundoff : unit_roundoff_of(scenario.precision)) {
  validate(scenario_);
  for (int s = 0; s < scenario_.steps; ++s) windows_.push_back(fixtures::window_batch(scenario_, s));
  RoundingScope rounding(unit_roundoff_);
  trajectory_ = options_.high_precision
                    ? trajectory_in<HighPrecision>(scenario_, layout_, windows_, initial_params_)
                    : trajectory_in<double>(scenario_, layout_, windows_, initial_params_);
}

const WindowExpectation& Oracle::window_from(int step, const std::vector<double>& params,
                                             const OptimizerState& state) const {
  if (step < 0 || step >= scenario_.steps) {
    throw std::out_of_range("Oracle::window_from: step " + std::to_string(step) + " of " +
                            std::to_string(scenario_.steps));
  }
  if (static_cast<int64_t>(params.size()) != layout_.size) {
    throw std::invalid_argument("Oracle::window_from: " + std::to_string(params.size()) +
                                " parameters, the model has " + std::to_string(layout_.size));
  }
  auto finite = [](const std::vector<double>& v) {
    for (double x : v) {
      if (!std::isfinite(x)) return false;
    }
    return true;
  };
  bool all_finite = finite(params);
  for (const auto& entry : state) all_finite = all_finite && finite(entry.second);
  if (!all_finite) {
    throw std::invalid_argument("Oracle::window_from: non-finite parameters or optimizer state");
  }
  Key key{step, params, state};
  std::lock_guard<std::mutex> lock(memo_mutex_);
  auto it = memo_.find(key);
  if (it != memo_.end()) return *it->second;
  RoundingScope rounding(unit_roundoff_);
  auto e = options_.high_precision
               ? window_in<HighPrecision>(scenario_, layout_, step, windows_[step], params, state)
               : window_in<double>(scenario_, layout_, step, windows_[step], params, state);
  auto& slot = memo_[std::move(key)];
  slot = std::make_unique<WindowExpectation>(std::move(e));
  return *slot;
}

}  // namespace gacc::reference
