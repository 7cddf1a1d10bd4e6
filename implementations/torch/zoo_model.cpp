#include "implementations/torch/zoo_model.h"

#include <stdexcept>

namespace gacc::torch_recipes {
namespace {

torch::Tensor tensor_from(const double* values, std::vector<int64_t> shape, torch::Dtype dtype) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  return torch::from_blob(const_cast<double*>(values), {numel}, torch::kFloat64)
      .to(dtype)
      .reshape(shape)
      .clone();
}

}  // namespace

ZooModelImpl::ZooModelImpl(const ModelSpec& spec, torch::Dtype dtype, const std::vector<double>& weights) {
  const auto layout = fixtures::model_layout(spec);
  if (static_cast<int64_t>(weights.size()) != layout.size) {
    throw std::invalid_argument("ZooModel: " + std::to_string(weights.size()) +
                                " weights for a model of " + std::to_string(layout.size));
  }
  torch::NoGradGuard no_grad;
  for (size_t p = 0; p + 1 < layout.parameters.size(); p += 2) {
    const auto& w = layout.parameters[p];
    const auto& b = layout.parameters[p + 1];
    const std::string name = w.name.substr(0, w.name.find('.'));
    auto layer = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(w.shape[1], w.shape[0])));
    layer->to(dtype);
    layer->weight.copy_(tensor_from(weights.data() + w.offset, w.shape, dtype));
    layer->bias.copy_(tensor_from(weights.data() + b.offset, b.shape, dtype));
    layers_.push_back(layer);
    ordered_.push_back(layer->weight);
    ordered_.push_back(layer->bias);
  }
}

torch::Tensor ZooModelImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = input;
  for (size_t l = 0; l < layers_.size(); ++l) {
    x = layers_[l]->forward(x);
    if (l + 1 < layers_.size()) x = torch::tanh(x);
  }
  return x;
}

std::pair<torch::Tensor, torch::Tensor> to_tensors(const fixtures::Batch& batch, torch::Dtype dtype) {
  return {tensor_from(batch.inputs.data(), {batch.size, batch.input_dim}, dtype),
          tensor_from(batch.targets.data(), {batch.size, batch.output_dim}, dtype)};
}

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<double> out;
  for (const auto& t : tensors) {
    const auto flat = t.detach().to(torch::kFloat64).contiguous().reshape({-1});
    const double* data = flat.data_ptr<double>();
    out.insert(out.end(), data, data + flat.numel());
  }
  return out;
}

std::vector<double> flatten_gradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  return flatten(grads);
}

torch::Tensor batch_loss(const Scenario& scenario, const torch::Tensor& outputs,
                         const torch::Tensor& targets, Reduction reduction) {
  switch (scenario.loss.kind) {
    case LossKind::mse:
      return torch::mse_loss(outputs, targets,
                             reduction == Reduction::mean ? at::Reduction::Mean : at::Reduction::Sum);
  }
  throw std::logic_error("batch_loss: unknown loss");
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Scenario& scenario,
                                                        const std::vector<torch::Tensor>& params) {
  const auto& o = scenario.optimizer;
  switch (o.kind) {
    case OptimizerKind::sgd:
      return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.lr)
                                                             .momentum(o.momentum)
                                                             .dampening(o.dampening)
                                                             .weight_decay(o.weight_decay)
                                                             .nesterov(o.nesterov));
  }
  throw std::logic_error("make_optimizer: unknown optimizer");
}

OptimizerState read_optimizer_state(const Scenario& scenario, torch::optim::Optimizer& optimizer,
                                    const std::vector<torch::Tensor>& params) {
  OptimizerState state;
  if (scenario.optimizer.kind != OptimizerKind::sgd) return state;
  std::vector<torch::Tensor> buffers;
  bool any = false;
  for (const auto& p : params) {
    auto it = optimizer.state().find(p.unsafeGetTensorImpl());
    if (it == optimizer.state().end()) {
      buffers.push_back(torch::zeros_like(p));
      continue;
    }
    buffers.push_back(static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer());
    any = true;
  }
  if (any) state["momentum_buffer"] = flatten(buffers);
  return state;
}

double gradient_norm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2));
  }
  if (norms.empty()) return 0.0;
  return torch::stack(norms).norm(2).item<double>();
}

}  // namespace gacc::torch_recipes
