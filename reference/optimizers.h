#pragma once
/// The oracle's optimizers, with PyTorch's documented semantics, templated on the number type.

#include <map>
#include <string>
#include <vector>

#include "core/scenario.h"

namespace gacc::reference {

/// Optimizer state by name, flattened in canonical parameter order (as in core/trace.h).
template <class T>
using StateOf = std::map<std::string, std::vector<T>>;

/// One step of torch.optim.SGD at learning rate `lr`, in place on `params` and `state`:
///   d = g + weight_decay * p
///   buf = d on the first step, else momentum * buf + (1 - dampening) * d   (momentum != 0)
///   d = d + momentum * buf if nesterov, else buf                              (momentum != 0)
///   p = p - lr * d
/// The buffer lives in state["momentum_buffer"], created on the first step only when
/// momentum != 0, as PyTorch does.
template <class T>
void sgd_step(const OptimizerSpec& options, double lr, std::vector<T>& params,
              const std::vector<T>& grad, StateOf<T>& state);

/// One optimizer step of the scenario's optimizer.
template <class T>
void optimizer_step(const Scenario& scenario, int step, std::vector<T>& params,
                    const std::vector<T>& grad, StateOf<T>& state);

/// The learning rate of `step` (constant for now: LR schedules arrive with the full matrix).
double learning_rate(const Scenario& scenario, int step);

}  // namespace gacc::reference
