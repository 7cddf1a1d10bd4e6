#include "implementations/distributed/data_parallel.h"

#include "implementations/distributed/rank_pool.h"

namespace gacc::distributed {

DataParallelRecipe::DataParallelRecipe(std::unique_ptr<torch_recipes::TorchTrainingLoop> loop)
    : loop_(std::move(loop)) {}

bool DataParallelRecipe::supports(const Scenario& scenario) const {
  // BatchNorm's running statistics are per replica under data parallelism (DDP broadcasts rank 0's
  // before each forward; SyncBatchNorm shares the batch statistics): neither is modelled yet.
  return scenario.world_size >= 2 && scenario.world_size <= shared_pool_ranks() &&
         !is_batch_coupled(scenario.model) && loop_->accepts(scenario);
}

Trace DataParallelRecipe::run(const Scenario& scenario) const { return shared_pool().run(loop_->name(), scenario); }

namespace {

class DdpAccumulate final : public torch_recipes::TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-accumulate"; }
  std::string summary() const override {
    return "c10d/Gloo, W ranks: each micro-batch's summed loss / the window's loss elements summed over the ranks; "
           "gradients summed over the ranks once per window, then clipping and the step on every replica";
  }
};

class DdpAverage final : public torch_recipes::TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-average"; }
  std::string summary() const override {
    return "c10d/Gloo, W ranks, DDP's convention: loss / (window loss elements / W), gradients averaged over the "
           "ranks (summed, / W) once per window";
  }

 protected:
  torch::Tensor micro_batch_loss(torch_recipes::LoopState& state, int micro, const torch::Tensor& summed,
                                 int64_t micro_elements) const override {
    return TorchTrainingLoop::micro_batch_loss(state, micro, summed, micro_elements) * state.collectives->world();
  }
  void synchronize_gradients(torch_recipes::LoopState& state) const override {
    TorchTrainingLoop::synchronize_gradients(state);
    torch::NoGradGuard no_grad;
    for (const auto& p : parameters(state)) p.grad().div_(state.collectives->world());
  }
  double reported_loss(torch_recipes::LoopState& state) const override {
    return TorchTrainingLoop::reported_loss(state) / state.collectives->world();  // the ranks' mean
  }
};

class DdpSyncEveryMicroBatch final : public torch_recipes::TorchTrainingLoop {
 public:
  std::string name() const override { return "ddp-sync-every-micro-batch"; }
  std::string summary() const override {
    return "c10d/Gloo, W ranks: each micro-batch's gradient summed over the ranks as soon as it is made (K "
           "collectives per window instead of one), accumulated into the synchronized sum";
  }

 protected:
  void begin_micro_batch(torch_recipes::LoopState& state, int) const override {
    torch::NoGradGuard no_grad;
    state.buffers.clear();
    for (const auto& p : parameters(state)) {
      state.buffers.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    }
  }
  void after_backward(torch_recipes::LoopState& state, int) const override {
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
  void synchronize_gradients(torch_recipes::LoopState&) const override {}  // already the ranks' sum
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_accumulate() { return std::make_unique<DdpAccumulate>(); }
std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_average() { return std::make_unique<DdpAverage>(); }
std::unique_ptr<torch_recipes::TorchTrainingLoop> ddp_sync_every_micro_batch() {
  return std::make_unique<DdpSyncEveryMicroBatch>();
}

}  // namespace gacc::distributed
