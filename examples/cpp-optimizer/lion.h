#pragma once
// A user's own optimizer, as a LibTorch user writes one: Lion (Chen et al. 2023, "Symbolic
// Discovery of Optimization Algorithms"), and a broken variant of it that gacc catches.
//
// Lion, per parameter p with gradient g and momentum m (zero at first):
//   c = beta1 * m + (1 - beta1) * g
//   p = p - lr * (sign(c) + weight_decay * p)        (decoupled weight decay)
//   m = beta2 * m + (1 - beta2) * g

#include <torch/torch.h>

#include <memory>
#include <vector>

struct LionOptions : torch::optim::OptimizerCloneableOptions<LionOptions> {
  explicit LionOptions(double lr = 1e-4) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.99;
  TORCH_ARG(double, weight_decay) = 0.0;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct LionParamState : torch::optim::OptimizerCloneableParamState<LionParamState> {
  TORCH_ARG(torch::Tensor, exp_avg);  // the momentum m
};

/// Lion: the whole update in step(), once per optimizer step, from the accumulated gradient.
class Lion : public torch::optim::Optimizer {
 public:
  Lion(const std::vector<torch::Tensor>& params, const LionOptions& options);
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// Broken! Lion with its per-parameter work moved into a gradient hook, done as each gradient
// arrives — the momentum interpolation, its sign and the momentum update — so that step() only
// applies the stored direction (and the gradient need not be kept: the memory saving that
// motivates optimizer-in-backward). With one backward pass per step it is exactly Lion. Under
// gradient accumulation the hook runs on every backward pass: the direction comes from the last
// micro-batch's share of the gradient alone, and the momentum decays K times per step. The same
// family as optimizer-in-backward (PyTorch's _apply_optimizer_in_backward, or a step run from a
// post-accumulate-grad hook), which is why torchtune's recipes refuse to combine optimizer_in_bwd
// with gradient accumulation (pytorch/torchtune, recipes/full_finetune_single_device.py:
// "Gradient accumulation is not supported with optimizer in bwd").
class LionInBackward : public torch::optim::Optimizer {
 public:
  LionInBackward(const std::vector<torch::Tensor>& params, const LionOptions& options);
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  /// Per parameter: the momentum and the direction the last hook computed; shared with the hooks.
  struct HookState {
    std::vector<torch::Tensor> momenta, directions;
  };
  std::shared_ptr<HookState> hooked_;
};
