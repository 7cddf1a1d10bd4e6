#pragma once
/// The oracle's models: hand-written forward and backward passes of the zoo, templated on the
/// number type (reference/number_types.h). No LibTorch here, nor anywhere in reference/.

#include <vector>

#include "core/scenario.h"
#include "fixtures/fixtures.h"

namespace gacc::reference {

/// The loss of a batch and its gradient with respect to every parameter (canonical order).
template <class T>
struct LossAndGradient {
  T loss;
  std::vector<T> grad;
};

/// Evaluates the scenario's model and loss on `batch` as one large batch: the loss with the
/// scenario's reduction over every element of the batch, and its exact gradient at `params`.
template <class T>
LossAndGradient<T> loss_and_gradient(const Scenario& scenario, const std::vector<T>& params,
                                     const fixtures::Batch& batch);

/// The model's outputs for `batch` (row-major, batch.size x output_dim).
template <class T>
std::vector<T> forward(const Scenario& scenario, const std::vector<T>& params,
                       const fixtures::Batch& batch);

}  // namespace gacc::reference
