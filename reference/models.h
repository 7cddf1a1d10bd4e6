#pragma once
/// The oracle's models: hand-written forward and backward passes of the whole zoo, templated on the
/// number type (reference/number_types.h). No LibTorch here, nor anywhere in reference/.

#include <cstdint>
#include <vector>

#include "core/scenario.h"
#include "fixtures/fixtures.h"

namespace gacc::reference {

/// How a batch is evaluated.
struct EvaluationOptions {
  /// Sizes of the consecutive virtual batches BatchNorm normalizes over ("ghost" BatchNorm, as K
  /// micro-batches of one window see it); empty: the whole batch is one.
  std::vector<int64_t> virtual_batches;
  /// What a mean (or token-mean) loss divides by; 0: the batch's own count of loss elements.
  int64_t loss_elements = 0;
  /// The loss scale the backward pass runs under (dynamic loss scaling: the loss gradient is
  /// multiplied by it, and so is every gradient); the returned gradient is still scaled.
  double loss_scale = 1.0;
};

/// The loss of a batch, its gradient with respect to every parameter (canonical order), and the
/// buffers after the forward pass (BatchNorm's running statistics; empty for other models).
template <class T>
struct ModelEvaluation {
  T loss;
  std::vector<T> grad;
  std::vector<T> buffers_after;
  /// Per gradient element: whether autocast produces it in the low-precision format (the weight
  /// and bias gradients of a low-precision matrix product), so that it may overflow there.
  std::vector<bool> grad_low;
};

/// Evaluates the scenario's model and loss on `batch` in training mode: the loss with the
/// scenario's reduction and its exact gradient at `params`. `buffers` are the buffers before the
/// batch (fixtures::initial_buffers at the start). Throws std::invalid_argument on inputs that do
/// not fit the model (sizes, token ids out of the vocabulary).
template <class T>
ModelEvaluation<T> loss_and_gradient(const Scenario& scenario, const std::vector<T>& params,
                                     const std::vector<T>& buffers, const fixtures::Batch& batch,
                                     const EvaluationOptions& options = {});

}  // namespace gacc::reference
