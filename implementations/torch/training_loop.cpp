#include "implementations/torch/training_loop.h"

#include <optional>
#include <stdexcept>

#include "fixtures/fixtures.h"
#include "implementations/torch/autocast.h"

namespace gacc::torch_recipes {

std::string TorchTrainingLoop::summary() const {
  return "LibTorch: each micro-batch's summed loss / the window's loss elements, backward per micro-batch; "
         "clip, one optimizer step, one scheduler step, one zero_grad per window";
}

bool TorchTrainingLoop::supports(const Scenario& scenario) const {
  return scenario.world_size == 1 && accepts(scenario);
}

bool TorchTrainingLoop::accepts(const Scenario&) const { return true; }

Trace TorchTrainingLoop::run(const Scenario& scenario) const {
  if (scenario.world_size != 1) {
    throw std::invalid_argument(name() + " runs on one rank; world_size " +
                                std::to_string(scenario.world_size) + " needs a process group (run_rank)");
  }
  return run_rank(scenario, nullptr);
}

Trace TorchTrainingLoop::run_rank(const Scenario& scenario, Collectives* collectives,
                                  const std::function<void(int, int)>& progress) const {
  validate(scenario);
  const int rank = collectives ? collectives->rank() : 0;
  if (collectives && collectives->world() != scenario.world_size) {
    throw std::invalid_argument("a process group of " + std::to_string(collectives->world()) +
                                " ranks for a scenario of world_size " + std::to_string(scenario.world_size));
  }
  const auto dtype = torch::kFloat32;
  ZooModel model(scenario.model, dtype, fixtures::initial_weights(scenario.model, scenario.precision));
  model->train();
  auto optimizer = make_optimizer(scenario, model->ordered_parameters());
  auto schedule = make_schedule(scenario, *optimizer);
  std::optional<GradScaler> scaler;
  if (scenario.precision == Precision::fp16) {
    const auto& spec = scenario.loss_scale;
    scaler.emplace(
        GradScaler::Options{spec.init_scale, spec.growth_factor, spec.backoff_factor, spec.growth_interval});
  }
  Trace trace;
  LoopState state{
      scenario,    model, *optimizer, schedule.get(), trace, 0, 0, 0, {}, {}, scaler ? &*scaler : nullptr,
      collectives, rank};
  for (int s = 0; s < scenario.steps; ++s) {
    state.step = s;
    state.micro_count = micro_batch_count(scenario, s);
    std::vector<BatchTensors> batches;
    int64_t local_elements = 0;
    for (int k = 0; k < state.micro_count; ++k) {
      batches.push_back(to_tensors(fixtures::micro_batch(scenario, s, rank, k), dtype));
      local_elements += batches.back().loss_elements;
    }
    state.window_elements = window_loss_elements(state, local_elements);
    state.window_loss = torch::zeros({}, dtype);
    for (int k = 0; k < state.micro_count; ++k) {
      begin_micro_batch(state, k);
      const auto& batch = batches[static_cast<size_t>(k)];
      torch::Tensor loss;
      {
        const CpuAutocast autocast(scenario.precision);  // forward and loss; backward outside
        loss = micro_batch_loss(state, k, summed_loss(scenario, model->forward(batch.inputs), batch.targets),
                                batch.loss_elements);
      }
      state.window_loss = state.window_loss + backward(state, k, loss);
      ++trace.counters.micro_batches;
      after_backward(state, k);
      if (progress) progress(s, k);
    }
    end_window(state);
  }
  if (collectives) {
    trace.counters.all_reduces = collectives->gradient_collectives();
    trace.counters.all_reduce_bytes = collectives->gradient_bytes();
    trace.counters.metadata_collectives = collectives->metadata_collectives();
  }
  return trace;
}

int64_t TorchTrainingLoop::window_loss_elements(LoopState& state, int64_t local) const {
  if (!state.collectives) return local;
  torch::Tensor count = torch::tensor({local}, torch::kInt64);
  state.collectives->all_reduce_metadata(count);
  return count.item<int64_t>();
}

void TorchTrainingLoop::begin_micro_batch(LoopState&, int) const {}

torch::Tensor TorchTrainingLoop::micro_batch_loss(LoopState& state, int, const torch::Tensor& summed,
                                                  int64_t) const {
  if (state.scenario.loss.reduction == Reduction::sum) return summed;
  return summed / static_cast<double>(state.window_elements);
}

torch::Tensor TorchTrainingLoop::backward(LoopState& state, int, const torch::Tensor& loss) const {
  (state.scaler ? state.scaler->scale(loss) : loss).backward();
  return loss.detach();
}

void TorchTrainingLoop::after_backward(LoopState&, int) const {}

void TorchTrainingLoop::end_window(LoopState& state) const {
  synchronize_gradients(state);
  unscale_gradients(state);  // clip the true gradient, not the scaled one
  optimizer_step(state, clip_gradients(state));
  schedule_step(state);
  zero_grad(state);
}

double TorchTrainingLoop::reported_loss(LoopState& state) const {
  if (!state.collectives) return state.window_loss.item<double>();
  torch::Tensor loss = state.window_loss.clone();
  state.collectives->all_reduce_metadata(loss);
  return loss.item<double>();
}

void TorchTrainingLoop::synchronize_gradients(LoopState& state) const {
  if (state.collectives) all_reduce_as_one(state, parameters(state));
}

std::vector<torch::Tensor> TorchTrainingLoop::sum_over_ranks(LoopState& state,
                                                             const std::vector<torch::Tensor>& parts) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;
  for (const auto& part : parts) flat.push_back(part.reshape(-1));
  torch::Tensor bucket = torch::cat(flat);
  state.collectives->all_reduce_gradients(bucket);
  std::vector<torch::Tensor> sums;
  int64_t offset = 0;
  for (const auto& part : parts) {
    sums.push_back(bucket.slice(0, offset, offset + part.numel()).view_as(part));
    offset += part.numel();
  }
  return sums;
}

void TorchTrainingLoop::all_reduce_as_one(LoopState& state, const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  const auto sums = sum_over_ranks(state, grads);
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].grad().defined()) {
      params[i].mutable_grad().copy_(sums[i]);
    } else {
      params[i].mutable_grad() = sums[i].clone();
    }
  }
}

void TorchTrainingLoop::unscale_gradients(LoopState& state) const {
  if (state.scaler) state.scaler->unscale_(state.optimizer);
}

double TorchTrainingLoop::clip_gradients(LoopState& state) const {
  const auto& params = state.model->ordered_parameters();
  const auto& clipping = state.scenario.clipping;
  switch (clipping.kind) {
    case ClippingKind::norm:
      return torch::nn::utils::clip_grad_norm_(params, clipping.max_norm);
    case ClippingKind::value: {
      const double norm = gradient_norm(params);
      torch::nn::utils::clip_grad_value_(params, clipping.clip_value);
      return norm;
    }
    case ClippingKind::none:
      break;
  }
  return gradient_norm(params);
}

void TorchTrainingLoop::optimizer_step(LoopState& state, double pre_clip_norm) const {
  const auto& params = state.model->ordered_parameters();
  // A parameter no micro-batch of the window reached (an mlp_routed expert no example was routed
  // to) has no gradient, and torch.optim would leave it alone. Its large-batch gradient is zero, and
  // the oracle steps it with that zero (weight decay, momentum, Adam's moments and step count), as a
  // data-parallel loop does after its all-reduce: hand the optimizer the zero.
  materialize_gradients(params);
  StepRecord record;
  record.grad = flatten_gradients(params);
  record.pre_clip_norm = pre_clip_norm;
  record.loss = reported_loss(state);
  record.lr = state.optimizer.param_groups().at(0).options().get_lr();
  if (state.scaler) {
    record.loss_scale = state.scaler->get_scale();
    record.skipped = !state.scaler->step(state.optimizer);
    state.scaler->update();
  } else {
    state.optimizer.step();
  }
  if (!record.skipped) ++state.trace.counters.optimizer_steps;
  record.params_after = flatten(params);
  record.optimizer_state = read_optimizer_state(state.scenario, state.optimizer, params);
  record.buffers_after = flatten(state.model->ordered_buffers());
  state.trace.steps.push_back(std::move(record));
}

void TorchTrainingLoop::materialize_gradients(const std::vector<torch::Tensor>& params) {
  for (const auto& p : params) {
    if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
  }
}

void TorchTrainingLoop::schedule_step(LoopState& state) const {
  if (!state.schedule) return;
  state.schedule->step();
  ++state.trace.counters.scheduler_steps;
}

void TorchTrainingLoop::zero_grad(LoopState& state) const {
  state.optimizer.zero_grad();
  ++state.trace.counters.zero_grads;
}

}  // namespace gacc::torch_recipes
