#pragma once
/// LibTorch twins of the zoo's models, loaded from the fixtures' arrays, and the conversions between
/// LibTorch tensors and the plain arrays of traces and fixtures.

#include <vector>

#include <torch/torch.h>

#include "core/scenario.h"
#include "core/trace.h"
#include "fixtures/fixtures.h"

namespace gacc::torch_recipes {

/// A zoo model as torch::nn modules, parameters named as in fixtures::model_layout.
class ZooModelImpl : public torch::nn::Module {
 public:
  /// Builds the model of `spec` in `dtype`, loaded with `weights` (flat, canonical order).
  ZooModelImpl(const ModelSpec& spec, torch::Dtype dtype, const std::vector<double>& weights);

  torch::Tensor forward(const torch::Tensor& input);

  /// Parameters in canonical order (the order of traces and of the oracle).
  const std::vector<torch::Tensor>& ordered_parameters() const { return ordered_; }

 private:
  std::vector<torch::nn::Linear> layers_;
  std::vector<torch::Tensor> ordered_;
};
TORCH_MODULE(ZooModel);

/// A fixtures batch as (inputs, targets) tensors of `dtype`.
std::pair<torch::Tensor, torch::Tensor> to_tensors(const fixtures::Batch& batch, torch::Dtype dtype);

/// Tensors flattened into one vector of doubles (exactly: every float converts), in order.
std::vector<double> flatten(const std::vector<torch::Tensor>& tensors);

/// The gradients of `params` (zeros where a gradient is undefined), flattened.
std::vector<double> flatten_gradients(const std::vector<torch::Tensor>& params);

/// The loss of the scenario on one batch, with reduction `reduction` over that batch only.
torch::Tensor batch_loss(const Scenario& scenario, const torch::Tensor& outputs,
                         const torch::Tensor& targets, Reduction reduction);

/// A torch::optim optimizer for the scenario's optimizer spec.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Scenario& scenario,
                                                        const std::vector<torch::Tensor>& params);

/// The optimizer's per-parameter state, flattened in canonical order (as in core/trace.h).
OptimizerState read_optimizer_state(const Scenario& scenario, torch::optim::Optimizer& optimizer,
                                    const std::vector<torch::Tensor>& params);

/// Global L2 norm of the gradients, as the norm of per-tensor norms.
double gradient_norm(const std::vector<torch::Tensor>& params);

}  // namespace gacc::torch_recipes
