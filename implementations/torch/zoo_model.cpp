#include "implementations/torch/zoo_model.h"

#include <cmath>
#include <stdexcept>

namespace gacc::torch_recipes {
namespace {

torch::Tensor find(const torch::OrderedDict<std::string, torch::Tensor>& named, const std::string& name) {
  const auto* found = named.find(name);
  if (!found) throw std::logic_error("ZooModel: no tensor named " + name);
  return *found;
}

}  // namespace

ZooModelImpl::ZooModelImpl(const ModelSpec& spec, torch::Dtype dtype, const std::vector<double>& weights)
    : spec_(spec) {
  const auto layout = fixtures::model_layout(spec);
  if (static_cast<int64_t>(weights.size()) != layout.size) {
    throw std::invalid_argument("ZooModel: " + std::to_string(weights.size()) + " weights for a model of " +
                                std::to_string(layout.size));
  }
  using torch::nn::Linear;
  using torch::nn::LinearOptions;
  switch (spec.arch) {
    case Architecture::linear:
      fc1_ = register_module("linear", Linear(spec.input_dim, spec.output_dim));
      break;
    case Architecture::causal_lm: {
      const int64_t d = spec.d_model;
      embedding_ = register_module("embedding", torch::nn::Embedding(spec.vocab_size, d));
      auto attention = register_module("attention", std::make_shared<torch::nn::Module>());
      query_ = attention->register_module("query", Linear(LinearOptions(d, d).bias(false)));
      key_ = attention->register_module("key", Linear(LinearOptions(d, d).bias(false)));
      value_ = attention->register_module("value", Linear(LinearOptions(d, d).bias(false)));
      output_ = attention->register_module("output", Linear(LinearOptions(d, d).bias(false)));
      layer_norm_ =
          register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(spec.norm_eps)));
      head_ = register_module("head", Linear(d, spec.vocab_size));
      break;
    }
    case Architecture::mlp_routed:
      fc1_ = register_module("fc1", Linear(spec.input_dim, spec.hidden_dim));
      for (int e = 0; e < fixtures::kRoutedExperts; ++e) {
        experts_.push_back(register_module("expert" + std::to_string(e), Linear(spec.hidden_dim, spec.output_dim)));
      }
      break;
    default: {
      const int64_t h = spec.hidden_dim;
      fc1_ = register_module("fc1", Linear(spec.input_dim, h));
      if (spec.arch == Architecture::mlp_layer_norm) {
        layer_norm_ = register_module(
            "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(spec.norm_eps)));
      } else if (spec.arch == Architecture::mlp_group_norm) {
        group_norm_ = register_module(
            "norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(spec.groups, h).eps(spec.norm_eps)));
      } else if (spec.arch == Architecture::mlp_batch_norm) {
        batch_norm_ = register_module(
            "norm",
            torch::nn::BatchNorm1d(
                torch::nn::BatchNormOptions(h).eps(spec.norm_eps).momentum(spec.batch_norm_momentum)));
      } else if (spec.arch == Architecture::mlp_rms_norm) {
        auto norm = register_module("norm", std::make_shared<torch::nn::Module>());
        rms_weight_ = norm->register_parameter("weight", torch::ones({h}));
      }
      fc2_ = register_module("fc2", Linear(h, spec.output_dim));
      break;
    }
  }
  to(dtype);
  const auto named = named_parameters();
  const auto named_buffer = named_buffers();
  const auto buffer_values = fixtures::initial_buffers(spec);
  torch::NoGradGuard no_grad;
  for (const auto& p : layout.parameters) {
    auto tensor = find(named, p.name);
    tensor.copy_(tensor_from(weights.data() + p.offset, p.shape, dtype));
    parameters_.push_back(tensor);
  }
  for (const auto& b : layout.buffers) {
    auto tensor = find(named_buffer, b.name);
    tensor.copy_(tensor_from(buffer_values.data() + b.offset, b.shape, tensor.scalar_type()));
    buffers_.push_back(tensor);
  }
}

torch::Tensor ZooModelImpl::forward(const torch::Tensor& input) {
  return spec_.arch == Architecture::causal_lm ? language_model_forward(input) : regressor_forward(input);
}

torch::Tensor ZooModelImpl::regressor_forward(const torch::Tensor& x) {
  if (spec_.arch == Architecture::linear) return fc1_->forward(x);
  if (spec_.arch == Architecture::mlp_routed) return routed_forward(x);
  torch::Tensor z = fc1_->forward(x);
  switch (spec_.arch) {
    case Architecture::mlp_layer_norm:
      z = layer_norm_->forward(z);
      break;
    case Architecture::mlp_group_norm:
      z = group_norm_->forward(z);
      break;
    case Architecture::mlp_batch_norm:
      z = batch_norm_->forward(z);
      break;
    case Architecture::mlp_rms_norm:
      z = z * torch::rsqrt(z.pow(2).mean(-1, /*keepdim=*/true) + spec_.norm_eps) * rms_weight_;
      break;
    default:
      break;
  }
  const torch::Tensor a = spec_.arch == Architecture::mlp_gelu ? torch::gelu(z) : torch::tanh(z);
  return fc2_->forward(a);
}

torch::Tensor ZooModelImpl::routed_forward(const torch::Tensor& x) {
  const torch::Tensor h = torch::tanh(fc1_->forward(x));
  // The route depends on the data only: read on the host, by the fixtures' rule.
  const torch::Tensor feature =
      x.detach().select(1, fixtures::kRoutingFeature).to(torch::kFloat64).contiguous();
  const double* features = feature.data_ptr<double>();
  std::vector<std::vector<int64_t>> rows(experts_.size());
  for (int64_t i = 0; i < feature.numel(); ++i) {
    rows[static_cast<size_t>(fixtures::routed_expert(features[i]))].push_back(i);
  }
  // Each expert sees only its rows; one that gets none is never called, so its parameters stay out
  // of the autograd graph (no gradient, no hook fires), as with a mixture of experts in PyTorch.
  torch::Tensor y;
  for (size_t e = 0; e < experts_.size(); ++e) {
    if (rows[e].empty()) continue;
    const torch::Tensor index = torch::tensor(rows[e], torch::kInt64);
    const torch::Tensor part = experts_[e]->forward(h.index_select(0, index));
    if (!y.defined()) y = torch::zeros({x.size(0), part.size(1)}, part.options());
    y = y.index_copy(0, index, part);
  }
  return y;
}

torch::Tensor ZooModelImpl::language_model_forward(const torch::Tensor& tokens) {
  const int64_t length = tokens.size(1);
  const torch::Tensor x = embedding_->forward(tokens);
  const torch::Tensor q = query_->forward(x), k = key_->forward(x), v = value_->forward(x);
  torch::Tensor scores =
      torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(spec_.d_model));
  const auto future = torch::ones({length, length}, torch::kBool).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  const torch::Tensor attended = torch::matmul(torch::softmax(scores, -1), v);
  const torch::Tensor h = x + output_->forward(attended);
  return head_->forward(layer_norm_->forward(h));
}

std::vector<double> flatten_gradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  return flatten(grads);
}

namespace {

torch::Tensor loss_with(const Scenario& scenario, const torch::Tensor& outputs, const torch::Tensor& targets,
                        at::Reduction::Reduction reduction) {
  switch (scenario.loss.kind) {
    case LossKind::mse:
      return torch::mse_loss(outputs, targets, reduction);
    case LossKind::cross_entropy:
      return torch::cross_entropy_loss(outputs.reshape({-1, outputs.size(-1)}), targets.reshape({-1}), {},
                                       reduction, fixtures::kIgnoreIndex);
  }
  throw std::logic_error("loss: unknown loss kind");
}

}  // namespace

torch::Tensor summed_loss(const Scenario& scenario, const torch::Tensor& outputs,
                          const torch::Tensor& targets) {
  return loss_with(scenario, outputs, targets, at::Reduction::Sum);
}

torch::Tensor batch_loss(const Scenario& scenario, const torch::Tensor& outputs,
                         const torch::Tensor& targets) {
  return loss_with(scenario, outputs, targets,
                   scenario.loss.reduction == Reduction::sum ? at::Reduction::Sum : at::Reduction::Mean);
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
    case OptimizerKind::adam:
      return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr)
                                                              .betas({o.beta1, o.beta2})
                                                              .eps(o.eps)
                                                              .weight_decay(o.weight_decay)
                                                              .amsgrad(o.amsgrad));
    case OptimizerKind::adamw:
      return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(o.lr)
                                                               .betas({o.beta1, o.beta2})
                                                               .eps(o.eps)
                                                               .weight_decay(o.weight_decay)
                                                               .amsgrad(o.amsgrad));
  }
  throw std::logic_error("make_optimizer: unknown optimizer");
}

namespace {

/// Flattens one named state tensor of every parameter (zeros where a parameter has no state).
template <class ParamState, class Get>
std::vector<double> flatten_state(torch::optim::Optimizer& optimizer,
                                  const std::vector<torch::Tensor>& params, Get get, bool& any) {
  std::vector<torch::Tensor> tensors;
  for (const auto& p : params) {
    auto it = optimizer.state().find(p.unsafeGetTensorImpl());
    if (it == optimizer.state().end()) {
      tensors.push_back(torch::zeros_like(p));
      continue;
    }
    any = true;
    tensors.push_back(get(static_cast<ParamState&>(*it->second), p));
  }
  return flatten(tensors);
}

template <class ParamState>
OptimizerState adam_state(const Scenario& scenario, torch::optim::Optimizer& optimizer,
                          const std::vector<torch::Tensor>& params) {
  OptimizerState state;
  bool any = false;
  state["step"] = flatten_state<ParamState>(
      optimizer, params,
      [](ParamState& s, const torch::Tensor& p) {
        return torch::full_like(p, static_cast<double>(s.step()));
      },
      any);
  state["exp_avg"] = flatten_state<ParamState>(
      optimizer, params, [](ParamState& s, const torch::Tensor&) { return s.exp_avg(); }, any);
  state["exp_avg_sq"] = flatten_state<ParamState>(
      optimizer, params, [](ParamState& s, const torch::Tensor&) { return s.exp_avg_sq(); }, any);
  if (scenario.optimizer.amsgrad) {
    state["max_exp_avg_sq"] = flatten_state<ParamState>(
        optimizer, params, [](ParamState& s, const torch::Tensor&) { return s.max_exp_avg_sq(); }, any);
  }
  if (!any) state.clear();
  return state;
}

}  // namespace

OptimizerState read_optimizer_state(const Scenario& scenario, torch::optim::Optimizer& optimizer,
                                    const std::vector<torch::Tensor>& params) {
  switch (scenario.optimizer.kind) {
    case OptimizerKind::sgd: {
      OptimizerState state;
      bool any = false;
      auto buffers = flatten_state<torch::optim::SGDParamState>(
          optimizer, params,
          [](torch::optim::SGDParamState& s, const torch::Tensor&) { return s.momentum_buffer(); }, any);
      if (any) state["momentum_buffer"] = std::move(buffers);
      return state;
    }
    case OptimizerKind::adam:
      return adam_state<torch::optim::AdamParamState>(scenario, optimizer, params);
    case OptimizerKind::adamw:
      return adam_state<torch::optim::AdamWParamState>(scenario, optimizer, params);
  }
  return {};
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
