#include "implementations/torch/training_loop.h"

#include "fixtures/fixtures.h"

namespace gacc::torch_recipes {

std::string TorchTrainingLoop::summary() const {
  return "LibTorch: loss x (micro-batch share of the window), backward per micro-batch, one step "
         "and one zero_grad per window";
}

bool TorchTrainingLoop::supports(const Scenario& scenario) const { return scenario.world_size == 1; }

Trace TorchTrainingLoop::run(const Scenario& scenario) const {
  validate(scenario);
  const auto dtype = torch::kFloat32;
  ZooModel model(scenario.model, dtype, fixtures::initial_weights(scenario.model, scenario.precision));
  auto optimizer = make_optimizer(scenario, model->ordered_parameters());
  Trace trace;
  for (int s = 0; s < scenario.steps; ++s) {
    LoopState state{scenario,
                    model,
                    *optimizer,
                    trace,
                    s,
                    micro_batch_count(scenario, s),
                    window_examples(scenario, s),
                    torch::zeros({}, dtype)};
    for (int k = 0; k < state.micro_count; ++k) {
      begin_micro_batch(state, k);
      const auto [inputs, targets] = to_tensors(fixtures::micro_batch(scenario, s, 0, k), dtype);
      const auto loss = micro_batch_loss(
          state, k, batch_loss(scenario, model->forward(inputs), targets, scenario.loss.reduction));
      loss.backward();
      state.window_loss = state.window_loss + loss.detach();
      ++trace.counters.micro_batches;
    }
    end_window(state);
  }
  return trace;
}

void TorchTrainingLoop::begin_micro_batch(LoopState&, int) const {}

torch::Tensor TorchTrainingLoop::micro_batch_loss(LoopState& state, int micro,
                                                  const torch::Tensor& loss) const {
  if (state.scenario.loss.reduction == Reduction::sum) return loss;
  const auto size = state.scenario.data.windows[state.step][0][micro];
  return loss * (static_cast<double>(size) / static_cast<double>(state.examples));
}

void TorchTrainingLoop::end_window(LoopState& state) const {
  optimizer_step(state);
  zero_grad(state);
}

void TorchTrainingLoop::optimizer_step(LoopState& state) const {
  const auto& params = state.model->ordered_parameters();
  StepRecord record;
  record.grad = flatten_gradients(params);
  record.pre_clip_norm = gradient_norm(params);
  record.loss = state.window_loss.item<double>();
  record.lr = state.optimizer.param_groups().at(0).options().get_lr();
  state.optimizer.step();
  ++state.trace.counters.optimizer_steps;
  record.params_after = flatten(params);
  record.optimizer_state = read_optimizer_state(state.scenario, state.optimizer, params);
  state.trace.steps.push_back(std::move(record));
}

void TorchTrainingLoop::zero_grad(LoopState& state) const {
  state.optimizer.zero_grad();
  ++state.trace.counters.zero_grads;
}

}  // namespace gacc::torch_recipes
