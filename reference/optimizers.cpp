#include "reference/optimizers.h"

#include <stdexcept>

#include "reference/bounded.h"
#include "reference/number_types.h"

namespace gacc::reference {

template <class T>
void sgd_step(const OptimizerSpec& o, double lr, std::vector<T>& params, const std::vector<T>& grad,
              StateOf<T>& state) {
  if (grad.size() != params.size()) {
    throw std::invalid_argument("sgd_step: " + std::to_string(grad.size()) + " gradients for " +
                                std::to_string(params.size()) + " parameters");
  }
  const T weight_decay = T(o.weight_decay), momentum = T(o.momentum), step_size = T(lr);
  const T damping = T(1) - T(o.dampening);
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

double learning_rate(const Scenario& scenario, int /*step*/) { return scenario.optimizer.lr; }

template <class T>
void optimizer_step(const Scenario& scenario, int step, std::vector<T>& params,
                    const std::vector<T>& grad, StateOf<T>& state) {
  switch (scenario.optimizer.kind) {
    case OptimizerKind::sgd:
      sgd_step(scenario.optimizer, learning_rate(scenario, step), params, grad, state);
      return;
  }
  throw std::logic_error("optimizer_step: unknown optimizer");
}

#define GACC_INSTANTIATE_OPTIMIZERS(T)                                                            \
  template void sgd_step<T>(const OptimizerSpec&, double, std::vector<T>&, const std::vector<T>&, \
                            StateOf<T>&);                                                         \
  template void optimizer_step<T>(const Scenario&, int, std::vector<T>&, const std::vector<T>&,   \
                                  StateOf<T>&);

GACC_INSTANTIATE_OPTIMIZERS(float)
GACC_INSTANTIATE_OPTIMIZERS(double)
GACC_INSTANTIATE_OPTIMIZERS(HighPrecision)
GACC_INSTANTIATE_OPTIMIZERS(Bounded)

#undef GACC_INSTANTIATE_OPTIMIZERS

}  // namespace gacc::reference
