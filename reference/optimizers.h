#pragma once
/// The oracle's optimizers, schedules and gradient clipping, with PyTorch's documented semantics,
/// templated on the number type.

#include <map>
#include <string>
#include <vector>

#include "core/scenario.h"
#include "fixtures/fixtures.h"
#include "reference/bounded.h"

namespace gacc::reference {

/// Optimizer state by name, flattened in canonical parameter order (as in core/trace.h). Adam's
/// step count is kept per element ("step"), so that every state tensor compares the same way.
template <class T>
using StateOf = std::map<std::string, std::vector<T>>;

/// One step of torch.optim.SGD at learning rate `lr` (a host value: see host_value), in place on `params` and `state`:
///   d = g + weight_decay * p
///   buf = d on the first step, else momentum * buf + (1 - dampening) * d   (momentum != 0)
///   d = d + momentum * buf if nesterov, else buf                              (momentum != 0)
///   p = p - lr * d
/// The buffer lives in state["momentum_buffer"], created on the first step only when
/// momentum != 0, as PyTorch does.
template <class T>
void sgd_step(const OptimizerSpec& options, const Host<T>& lr, std::vector<T>& params, const std::vector<T>& grad,
              StateOf<T>& state);

/// One step of torch.optim.Adam (decoupled = false) or AdamW (decoupled = true):
///   step += 1; AdamW: p = p (1 - lr wd); Adam: g = g + wd p
///   m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2; amsgrad: v_max = max(v_max, v)
///   p = p - (lr / (1 - beta1^step)) m / (sqrt(v or v_max) / sqrt(1 - beta2^step) + eps)
/// State: "step", "exp_avg", "exp_avg_sq", and "max_exp_avg_sq" with amsgrad.
template <class T>
void adam_step(const OptimizerSpec& options, const Host<T>& lr, bool decoupled, std::vector<T>& params,
               const std::vector<T>& grad, StateOf<T>& state);

/// One optimizer step of the scenario's optimizer at the scheduled learning rate of `step`.
template <class T>
void optimizer_step(const Scenario& scenario, int step, std::vector<T>& params, const std::vector<T>& grad,
                    StateOf<T>& state);

/// The learning rate of optimizer step `step` (0-based: after `step` scheduler steps), in the
/// closed form of PyTorch's schedulers:
///   step           lr gamma^floor(step / step_size)
///   linear_warmup  lr (f + (1 - f) min(step, warmup) / warmup)
///   cosine         eta_min + (lr - eta_min) (1 + cos(pi step / t_max)) / 2
template <class T>
T learning_rate(const Scenario& scenario, int step);

/// The global L2 norm of a gradient, as the norm of per-parameter-tensor norms (the order of
/// torch.nn.utils.clip_grad_norm_).
template <class T>
T global_norm(const fixtures::ModelLayout& layout, const std::vector<T>& grad);

/// Clips `grad` in place as the scenario says: by global norm (coefficient max_norm / (norm + 1e-6),
/// applied when below 1) or by value (clamp to +-clip_value). `norm` is global_norm(grad).
template <class T>
void clip(const Scenario& scenario, const T& norm, std::vector<T>& grad);

}  // namespace gacc::reference
