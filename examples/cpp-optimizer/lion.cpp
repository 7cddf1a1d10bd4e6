#include "lion.h"

Lion::Lion(const std::vector<torch::Tensor>& params, const LionOptions& options)
    : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<LionOptions>(options)) {}

torch::Tensor Lion::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& options = static_cast<const LionOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& g = p.grad();
      auto& slot = state()[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<LionParamState>();
        fresh->exp_avg(torch::zeros_like(p));
        slot = std::move(fresh);
      }
      auto& m = static_cast<LionParamState&>(*slot).exp_avg();
      const auto direction = (m * options.beta1() + g * (1 - options.beta1())).sign_();
      p.mul_(1 - options.lr() * options.weight_decay());
      p.add_(direction, -options.lr());
      m.mul_(options.beta2()).add_(g, 1 - options.beta2());
    }
  }
  return loss;
}

LionInBackward::LionInBackward(const std::vector<torch::Tensor>& params, const LionOptions& options)
    : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<LionOptions>(options)),
      hooked_(std::make_shared<HookState>()) {
  for (size_t i = 0; i < params.size(); ++i) {
    hooked_->momenta.push_back(torch::zeros_like(params[i]));
    hooked_->directions.push_back(torch::zeros_like(params[i]));
    const double beta1 = options.beta1(), beta2 = options.beta2();
    auto hooked = hooked_;
    // The bug: this runs once per backward pass, with that pass's share of the gradient.
    params[i].register_hook([hooked, i, beta1, beta2](const torch::Tensor& arriving) {
      torch::NoGradGuard no_grad;
      auto& m = hooked->momenta[i];
      hooked->directions[i] = (m * beta1 + arriving * (1 - beta1)).sign_();
      m.mul_(beta2).add_(arriving, 1 - beta2);
    });
  }
}

torch::Tensor LionInBackward::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  auto& group = param_groups()[0];
  const auto& options = static_cast<const LionOptions&>(group.options());
  for (size_t i = 0; i < group.params().size(); ++i) {
    auto& p = group.params()[i];
    if (!p.grad().defined()) continue;
    p.mul_(1 - options.lr() * options.weight_decay());
    p.add_(hooked_->directions[i], -options.lr());
  }
  return loss;
}
