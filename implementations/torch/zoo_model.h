#pragma once
/// LibTorch twins of the zoo's models, loaded from the fixtures' arrays, and the conversions between
/// LibTorch tensors and the plain arrays of traces and fixtures. Written as a LibTorch user would
/// write them: torch::nn modules and ordinary tensor operations.

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/scenario.h"
#include "core/trace.h"
#include "fixtures/fixtures.h"
#include "implementations/torch/tensor_conversions.h"

namespace gacc::torch_recipes {

/// A zoo model as torch::nn modules, parameters and buffers named as in fixtures::model_layout.
class ZooModelImpl : public torch::nn::Module {
 public:
  /// Builds the model of `spec` in `dtype`, loaded with `weights` (flat, canonical order) and the
  /// initial buffers.
  ZooModelImpl(const ModelSpec& spec, torch::Dtype dtype, const std::vector<double>& weights);

  /// Regressors: inputs [batch, input_dim] -> outputs [batch, output_dim]. causal_lm: tokens
  /// [batch, length] (int64) -> logits [batch, length, vocab].
  torch::Tensor forward(const torch::Tensor& input);

  /// Parameters and buffers in canonical order (the order of traces and of the oracle).
  const std::vector<torch::Tensor>& ordered_parameters() const { return parameters_; }
  const std::vector<torch::Tensor>& ordered_buffers() const { return buffers_; }

 private:
  torch::Tensor regressor_forward(const torch::Tensor& x);
  /// mlp_routed: fc1, tanh, then each row through the expert fixtures::routed_expert names.
  torch::Tensor routed_forward(const torch::Tensor& x);
  torch::Tensor language_model_forward(const torch::Tensor& tokens);

  ModelSpec spec_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr}, head_{nullptr};
  torch::nn::LayerNorm layer_norm_{nullptr};
  torch::nn::GroupNorm group_norm_{nullptr};
  torch::nn::BatchNorm1d batch_norm_{nullptr};
  torch::Tensor rms_weight_;
  std::vector<torch::nn::Linear> experts_;  ///< mlp_routed
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, output_{nullptr};
  std::vector<torch::Tensor> parameters_, buffers_;
};
TORCH_MODULE(ZooModel);

/// The gradients of `params` (zeros where a gradient is undefined), flattened.
std::vector<double> flatten_gradients(const std::vector<torch::Tensor>& params);

/// The scenario's loss of one batch, SUMMED over its loss elements (MSE elements or counted
/// tokens): a loop divides it by what its reduction calls for.
torch::Tensor summed_loss(const Scenario& scenario, const torch::Tensor& outputs,
                          const torch::Tensor& targets);

/// The scenario's loss of one batch with the scenario's reduction over that batch alone (mean over
/// its own elements, token mean over its own tokens, or sum): what the large batch computes.
torch::Tensor batch_loss(const Scenario& scenario, const torch::Tensor& outputs,
                         const torch::Tensor& targets);

/// A torch::optim optimizer for the scenario's optimizer spec.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Scenario& scenario,
                                                        const std::vector<torch::Tensor>& params);

/// The optimizer's per-parameter state, flattened in canonical order (as in core/trace.h).
OptimizerState read_optimizer_state(const Scenario& scenario, torch::optim::Optimizer& optimizer,
                                    const std::vector<torch::Tensor>& params);

/// Global L2 norm of the gradients, as the norm of per-tensor norms.
double gradient_norm(const std::vector<torch::Tensor>& params);

}  // namespace gacc::torch_recipes
