#pragma once
/// Conversions between the plain arrays of fixtures and traces and LibTorch tensors: what recipes
/// and case files (implementations/external) share, without the models.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "fixtures/fixtures.h"

namespace gacc::torch_recipes {

/// `shape`'s worth of doubles from `values`, as a new tensor of `dtype`.
torch::Tensor tensor_from(const double* values, const std::vector<int64_t>& shape, torch::Dtype dtype);

/// The tensors of a fixtures batch, in `dtype` for real values.
struct BatchTensors {
  torch::Tensor inputs;       ///< regressors: [batch, input_dim]; causal_lm: tokens [batch, length]
  torch::Tensor targets;      ///< regressors: [batch, output_dim]; causal_lm: [batch, length], -100 ignored
  int64_t loss_elements = 0;  ///< MSE elements, or counted target tokens
};
BatchTensors to_tensors(const fixtures::Batch& batch, torch::Dtype dtype);

/// Tensors flattened into one vector of doubles (exactly: every float converts), in order.
std::vector<double> flatten(const std::vector<torch::Tensor>& tensors);

}  // namespace gacc::torch_recipes
