// Broken! Adam's step counter advanced on every micro-batch: bias corrections for the wrong t.
//
// Reported in: keras-team/keras issue 19990.
//
// The bug and its fix, as `gacc explain adam-step-count-per-micro-batch` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

template <class ParamState>
void advance_step_counts(torch::optim::Optimizer& optimizer, int64_t extra) {
  for (auto& entry : optimizer.state()) {
    auto& state = static_cast<ParamState&>(*entry.second);
    state.step(state.step() + extra);
  }
}

class AdamStepCountPerMicroBatch final : public PitfallLoop {
 public:
  AdamStepCountPerMicroBatch()
      : PitfallLoop(
            {"adam-step-count-per-micro-batch",
             "Adam's step counter advanced on every micro-batch: bias corrections for the wrong t",
             "keras-team/keras issue 19990",
             "The optimizer's step counter advances on every micro-batch, so Adam counts K steps per window "
             "and its bias corrections (1 - beta1^t, 1 - beta2^t) use a t K times too large: the early "
             "steps, where the corrections matter most, come out too small.",
             "# the step count, like the learning rate and weight decay, advances only in optimizer.step():\n"
             "if last_micro_batch_of_window:\n"
             "    optimizer.step()   # t += 1 here, and nowhere else"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.optimizer.kind != OptimizerKind::sgd;
  }

 protected:
  void end_window(torch_recipes::LoopState& state) const override {
    // Broken! the counter already ran through the window's other micro-batches
    const int64_t extra = state.micro_count - 1;
    if (state.scenario.optimizer.kind == OptimizerKind::adamw) {
      advance_step_counts<torch::optim::AdamWParamState>(state.optimizer, extra);
    } else {
      advance_step_counts<torch::optim::AdamParamState>(state.optimizer, extra);
    }
    TorchTrainingLoop::end_window(state);
  }
};

}  // namespace

std::unique_ptr<Recipe> adam_step_count_per_micro_batch() {
  return std::make_unique<AdamStepCountPerMicroBatch>();
}

}  // namespace gacc::pitfalls
