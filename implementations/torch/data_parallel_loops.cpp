#include "implementations/torch/data_parallel_loops.h"

namespace gacc::torch_recipes {

std::string DdpAccumulateLoop::summary() const {
  return "c10d/Gloo, W ranks: each micro-batch's summed loss / the window's loss elements summed over the "
         "ranks; "
         "gradients summed over the ranks once per window, then clipping and the step on every replica";
}

std::string DdpAverageLoop::summary() const {
  return "c10d/Gloo, W ranks, DDP's convention: loss / (window loss elements / W), gradients averaged over "
         "the "
         "ranks (summed, / W) once per window";
}

torch::Tensor DdpAverageLoop::micro_batch_loss(LoopState& state, int micro, const torch::Tensor& summed,
                                               int64_t micro_elements) const {
  return TorchTrainingLoop::micro_batch_loss(state, micro, summed, micro_elements) *
         state.collectives->world();
}

void DdpAverageLoop::synchronize_gradients(LoopState& state) const {
  TorchTrainingLoop::synchronize_gradients(state);
  divide_gradients_by_world(state);
}

void divide_gradients_by_world(LoopState& state) {
  torch::NoGradGuard no_grad;
  for (const auto& p : state.model->ordered_parameters()) {
    if (p.grad().defined()) p.grad().div_(state.collectives->world());
  }
}

double DdpAverageLoop::reported_loss(LoopState& state) const {
  return TorchTrainingLoop::reported_loss(state) / state.collectives->world();
}

std::string DdpSyncEveryMicroBatchLoop::summary() const {
  return "c10d/Gloo, W ranks: each micro-batch's gradient summed over the ranks as soon as it is made (K "
         "collectives per window instead of one), accumulated into the synchronized sum";
}

void DdpSyncEveryMicroBatchLoop::begin_micro_batch(LoopState& state, int) const {
  torch::NoGradGuard no_grad;
  state.buffers.clear();
  for (const auto& p : parameters(state)) {
    state.buffers.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
}

void DdpSyncEveryMicroBatchLoop::after_backward(LoopState& state, int) const {
  // Only this micro-batch's share travels: what was there before is already the ranks' sum.
  const auto& params = parameters(state);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) params[i].mutable_grad() = torch::zeros_like(params[i]);
      params[i].mutable_grad().sub_(state.buffers[i]);
    }
  }
  all_reduce_as_one(state, params);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad().add_(state.buffers[i]);
}

void DdpSyncEveryMicroBatchLoop::synchronize_gradients(LoopState&) const {}  // already the ranks' sum

}  // namespace gacc::torch_recipes
