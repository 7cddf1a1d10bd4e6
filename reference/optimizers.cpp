#include "reference/optimizers.h"

#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "reference/bounded.h"
#include "reference/number_types.h"

namespace gacc::reference {
namespace {

template <class T>
T power(const T& base, int64_t n) {
  T result = T(1);
  for (int64_t i = 0; i < n; ++i) result = result * base;
  return result;
}

void check_sizes(const char* who, size_t grads, size_t params) {
  if (grads != params) {
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(grads) + " gradients for " +
                                std::to_string(params) + " parameters");
  }
}

// Note [bounded Adam update]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Adam's update is lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), a quotient whose
// first-order bound explodes where the gradient is within its bound of zero (m and v then carry
// bounds as large as themselves). But the update itself is bounded whatever the gradients were
// (Kingma & Ba, section 2.1): with m = (1 - beta1) sum_i beta1^(t-i) g_i and v = (1 - beta2)
// sum_i beta2^(t-i) g_i^2, Cauchy-Schwarz gives |m| <= (1 - beta1) sqrt(S_t / (1 - beta2)) sqrt(v),
// S_t = sum_{j<t} (beta1^2 / beta2)^j, so
//   |update| <= lr C_t,   C_t = (1 - beta1) / (1 - beta1^t) * sqrt((1 - beta2^t) / (1 - beta2) * S_t)
// (C_1 = 1: the first step moves each parameter by lr sign(g) at most; amsgrad's larger denominator
// and eps only shrink it). The implementation's update obeys it as the truth's does, so they differ
// by at most 2 lr C_t: the bound of the update is capped there (with a few roundings of margin). A
// gradient element that is zero within rounding can still flip a whole lr step — that is what
// the cap allows, and no more.

/// C_t of Note [bounded Adam update].
double adam_update_limit(double beta1, double beta2, int64_t t) {
  const double r = beta1 * beta1 / beta2;
  double sum = 0.0, term = 1.0;
  for (int64_t j = 0; j < t; ++j, term *= r) sum += term;
  return (1.0 - beta1) / (1.0 - std::pow(beta1, static_cast<double>(t))) *
         std::sqrt((1.0 - std::pow(beta2, static_cast<double>(t))) / (1.0 - beta2) * sum);
}

/// Caps the bound of an Adam update at 2 lr C_t (Note [bounded Adam update]); other types unchanged.
template <class T>
void cap_adam_update(T& update, double lr, double limit) {
  if constexpr (std::is_same_v<T, Bounded>) {
    update.error = std::min(update.error, 2.0 * std::fabs(lr) * limit * (1.0 + 16.0 * 0x1p-24));
  }
}

}  // namespace

template <class T>
void sgd_step(const OptimizerSpec& o, const Host<T>& lr, std::vector<T>& params, const std::vector<T>& grad,
              StateOf<T>& state) {
  check_sizes("sgd_step", grad.size(), params.size());
  const T weight_decay = constant<T>(o.weight_decay), momentum = constant<T>(o.momentum);
  const T step_size = host_scalar<T>([&](auto) { return lr; });
  const T damping = host_scalar<T>([&](auto h) { return decltype(h)(1) - decltype(h)(o.dampening); });
  const bool first = state.find("momentum_buffer") == state.end();
  std::vector<T>* buffer = nullptr;
  if (o.momentum != 0.0) {
    buffer = &state["momentum_buffer"];
    if (first) buffer->resize(params.size());
  }
  for (size_t i = 0; i < params.size(); ++i) {
    T d = grad[i];
    if (o.weight_decay != 0.0) d = d + weight_decay * params[i];
    if (buffer) {
      T& buf = (*buffer)[i];
      buf = first ? d : momentum * buf + damping * d;
      d = o.nesterov ? d + momentum * buf : buf;
    }
    params[i] = params[i] - step_size * d;
  }
}

template <class T>
void adam_step(const OptimizerSpec& o, const Host<T>& lr, bool decoupled, std::vector<T>& params, const std::vector<T>& grad,
               StateOf<T>& state) {
  check_sizes("adam_step", grad.size(), params.size());
  const size_t n = params.size();
  if (state.find("step") == state.end()) {
    state["step"].assign(n, T(0));
    state["exp_avg"].assign(n, T(0));
    state["exp_avg_sq"].assign(n, T(0));
    if (o.amsgrad) state["max_exp_avg_sq"].assign(n, T(0));
  }
  auto& steps = state["step"];
  auto& exp_avg = state["exp_avg"];
  auto& exp_avg_sq = state["exp_avg_sq"];
  std::vector<T>* max_exp_avg_sq = o.amsgrad ? &state["max_exp_avg_sq"] : nullptr;
  const auto step = static_cast<int64_t>(std::llround(to_double(steps.at(0)))) + 1;

  const T beta1 = constant<T>(o.beta1), beta2 = constant<T>(o.beta2), eps = constant<T>(o.eps);
  const T weight_decay = constant<T>(o.weight_decay);
  using H = Host<T>;
  const T one_minus_beta1 = host_scalar<T>([&](H) { return H(1) - H(o.beta1); });
  const T one_minus_beta2 = host_scalar<T>([&](H) { return H(1) - H(o.beta2); });
  const T decay = host_scalar<T>([&](H) { return H(1) - lr * H(o.weight_decay); });
  const T root_correction2 = host_scalar<T>([&](H) { return sqrt(H(1) - power(H(o.beta2), step)); });
  const T step_size = host_scalar<T>([&](H) { return lr / (H(1) - power(H(o.beta1), step)); });
  const double update_limit = adam_update_limit(o.beta1, o.beta2, step);

  for (size_t i = 0; i < n; ++i) {
    steps[i] = T(static_cast<double>(step));
    T g = grad[i];
    if (o.weight_decay != 0.0) {
      if (decoupled) {
        params[i] = params[i] * decay;
      } else {
        g = g + weight_decay * params[i];
      }
    }
    exp_avg[i] = exp_avg[i] * beta1 + one_minus_beta1 * g;
    exp_avg_sq[i] = exp_avg_sq[i] * beta2 + one_minus_beta2 * (g * g);
    T second = exp_avg_sq[i];
    if (max_exp_avg_sq) second = (*max_exp_avg_sq)[i] = max((*max_exp_avg_sq)[i], exp_avg_sq[i]);
    const T denom = sqrt(second) / root_correction2 + eps;
    T update = step_size * (exp_avg[i] / denom);
    cap_adam_update(update, to_double(lr), update_limit);
    params[i] = params[i] - update;
  }
}

template <class T>
T learning_rate(const Scenario& sc, int step) {
  const auto& s = sc.schedule;
  const T lr = T(sc.optimizer.lr);
  switch (s.kind) {
    case ScheduleKind::constant:
      return lr;
    case ScheduleKind::step:
      return lr * power(T(s.gamma), step / s.step_size);
    case ScheduleKind::linear_warmup: {
      const T progress = T(static_cast<double>(std::min<int64_t>(step, s.warmup_steps))) /
                         T(static_cast<double>(s.warmup_steps));
      return lr * (T(s.start_factor) + (T(1) - T(s.start_factor)) * progress);
    }
    case ScheduleKind::cosine: {
      const T angle = pi<T>() * T(static_cast<double>(step)) / T(static_cast<double>(s.t_max));
      return T(s.eta_min) + (lr - T(s.eta_min)) * (T(1) + cos(angle)) / T(2);
    }
  }
  throw std::logic_error("learning_rate: unknown schedule");
}

template <class T>
void optimizer_step(const Scenario& scenario, int step, std::vector<T>& params, const std::vector<T>& grad,
                    StateOf<T>& state) {
  // The scheduled rate is computed on the host, in double.
  const Host<T> lr = host_value<T>([&](auto h) { return learning_rate<decltype(h)>(scenario, step); });
  switch (scenario.optimizer.kind) {
    case OptimizerKind::sgd:
      sgd_step(scenario.optimizer, lr, params, grad, state);
      return;
    case OptimizerKind::adam:
    case OptimizerKind::adamw:
      adam_step(scenario.optimizer, lr, scenario.optimizer.kind == OptimizerKind::adamw, params, grad, state);
      return;
  }
  throw std::logic_error("optimizer_step: unknown optimizer");
}

template <class T>
T global_norm(const fixtures::ModelLayout& layout, const std::vector<T>& grad) {
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
void clip(const Scenario& sc, const T& norm, std::vector<T>& grad) {
  switch (sc.clipping.kind) {
    case ClippingKind::none:
      return;
    case ClippingKind::norm: {
      // max_norm / (norm + 1e-6), as a scalar over a tensor: reciprocal, then multiply.
      const T coefficient = (T(1) / (norm + constant<T>(1e-6))) * constant<T>(sc.clipping.max_norm);
      const T clamped = min(coefficient, T(1));
      for (auto& g : grad) g = g * clamped;
      return;
    }
    case ClippingKind::value: {
      const T limit = constant<T>(sc.clipping.clip_value);
      for (auto& g : grad) g = max(-limit, min(g, limit));
      return;
    }
  }
}

#define GACC_INSTANTIATE_OPTIMIZERS(T)                                                                       \
  template void sgd_step<T>(const OptimizerSpec&, const Host<T>&, std::vector<T>&, const std::vector<T>&,      \
                            StateOf<T>&);                                                                    \
  template void adam_step<T>(const OptimizerSpec&, const Host<T>&, bool, std::vector<T>&, const std::vector<T>&, \
                             StateOf<T>&);                                                                   \
  template void optimizer_step<T>(const Scenario&, int, std::vector<T>&, const std::vector<T>&, StateOf<T>&); \
  template T learning_rate<T>(const Scenario&, int);                                                         \
  template T global_norm<T>(const fixtures::ModelLayout&, const std::vector<T>&);                            \
  template void clip<T>(const Scenario&, const T&, std::vector<T>&);

GACC_INSTANTIATE_OPTIMIZERS(float)
GACC_INSTANTIATE_OPTIMIZERS(double)
GACC_INSTANTIATE_OPTIMIZERS(HighPrecision)
GACC_INSTANTIATE_OPTIMIZERS(Bounded)
GACC_INSTANTIATE_OPTIMIZERS(Stochastic)

#undef GACC_INSTANTIATE_OPTIMIZERS

}  // namespace gacc::reference
