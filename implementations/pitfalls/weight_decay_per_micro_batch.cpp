// Broken! AdamW's decoupled weight decay applied on every micro-batch, K times per window.
//
// Reported in: keras-team/keras issue 19990.
//
// The bug and its fix, as `gacc explain weight-decay-per-micro-batch` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class WeightDecayPerMicroBatch final : public PitfallLoop {
 public:
  WeightDecayPerMicroBatch()
      : PitfallLoop({"weight-decay-per-micro-batch",
                     "AdamW's decoupled weight decay applied on every micro-batch, K times per window",
                     "keras-team/keras issue 19990",
                     "AdamW's decoupled weight decay runs on every micro-batch: the weights shrink by (1 - "
                     "lr * weight_decay) K times per window instead of once — K times the regularization the "
                     "hyperparameters ask for, and a trajectory that depends on K.",
                     "# decay belongs to the optimizer step alone:\n"
                     "if last_micro_batch_of_window:\n"
                     "    optimizer.step()   # p *= 1 - lr * weight_decay, once"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.optimizer.kind == OptimizerKind::adamw && scenario.optimizer.weight_decay > 0.0;
  }

 protected:
  void after_backward(torch_recipes::LoopState& state, int micro) const override {
    if (micro + 1 == state.micro_count) return;  // the optimizer step decays once more
    const double lr = state.optimizer.param_groups().at(0).options().get_lr();
    torch::NoGradGuard no_grad;
    // Broken! decay belongs to the optimizer step alone
    for (const auto& p : parameters(state)) p.mul_(1.0 - lr * state.scenario.optimizer.weight_decay);
  }
};

}  // namespace

std::unique_ptr<Recipe> weight_decay_per_micro_batch() {
  return std::make_unique<WeightDecayPerMicroBatch>();
}

}  // namespace gacc::pitfalls
