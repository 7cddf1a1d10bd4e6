// Broken! DDP with find_unused_parameters and no_sync: at the window's one synchronizing backward,
// parameters that its micro-batch did not use are left out of the all-reduce — their gradients
// from the earlier micro-batches are never synchronized.
//
// Reported in: pytorch/pytorch issue 69031 (fixed by PR 124193, which keeps the used-parameter map
// across no_sync micro-batches); mosaicml/composer issue 9.
//
// The bug and its fix, as `gacc explain unused-parameters-not-synced` prints them, are the description below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

/// DDP's reducer as it was: on the synchronizing micro-batch (the window's last) an autograd hook
/// marks each parameter whose gradient it computes; the ranks all-reduce those marks; the bucket
/// holds each locally used parameter's gradient (zero for an unused one), is summed and divided by
/// W; and only parameters some rank used get the result. A parameter no rank used in that
/// micro-batch keeps its local, unsynchronized gradient — its earlier micro-batches' share — and a
/// rank that did not use a parameter others used drops its own earlier share of it.
class UnusedParametersNotSynced final : public PitfallOf<torch_recipes::DdpAverageLoop> {
 public:
  UnusedParametersNotSynced()
      : PitfallOf(
            {"unused-parameters-not-synced",
             "data parallel, DDP with find_unused_parameters and no_sync: a parameter unused by the "
             "window's last micro-batch is left out of the all-reduce, and its gradient stays local",
             "pytorch/pytorch issue 69031, PR 124193; mosaicml/composer issue 9",
             "With gradient accumulation DDP all-reduces only on the last micro-batch (no_sync before it). "
             "With find_unused_parameters=True it marks the parameters that backward reaches and syncs "
             "only those; before PyTorch's fix it forgot the marks of the no_sync micro-batches. A "
             "parameter used earlier in the window but not by its last micro-batch — a mixture-of-experts "
             "expert no token of that micro-batch was routed to, a layer skipped by stochastic depth — is "
             "never all-reduced: each rank steps it with its own partial gradient and the replicas drift "
             "apart silently.",
             "# PyTorch >= 2.4 (PR 124193) keeps the marks across no_sync; on older versions either\n"
             "for micro in window[:-1]:\n"
             "    with model.no_sync():\n"
             "        loss_of(micro).backward()\n"
             "loss_of(window[-1]).backward()\n"
             "for p in model.parameters():                 # sync everything once, by hand\n"
             "    if p.grad is None: p.grad = torch.zeros_like(p)\n"
             "flat = torch.cat([p.grad.flatten() for p in params]); dist.all_reduce(flat); flat /= world\n"
             "# or synchronize every micro-batch (no no_sync) when parameters may go unused"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.model.arch == Architecture::mlp_routed;
  }

 protected:
  // state.buffers on the last micro-batch: one "used" flag per parameter, then the hooks' handles.
  void begin_micro_batch(torch_recipes::LoopState& state, int micro) const override {
    if (micro != state.micro_count - 1) return;
    const auto& params = parameters(state);
    state.buffers.clear();
    std::vector<int64_t> handles;
    for (const auto& p : params) {
      torch::Tensor used = torch::zeros({}, torch::kInt64);
      state.buffers.push_back(used);
      auto param = p;  // register_hook is not const
      handles.push_back(static_cast<int64_t>(param.register_hook([used](const torch::Tensor& grad) {
        used.fill_(1);
        return grad;
      })));
    }
    state.buffers.push_back(torch::tensor(handles, torch::kInt64));
  }

  void after_backward(torch_recipes::LoopState& state, int micro) const override {
    if (micro != state.micro_count - 1) return;
    auto params = parameters(state);
    const auto handles = state.buffers.back();
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].remove_hook(static_cast<unsigned>(handles[static_cast<int64_t>(i)].item<int64_t>()));
    }
  }

  void synchronize_gradients(torch_recipes::LoopState& state) const override {
    const auto& params = parameters(state);
    const size_t n = params.size();
    torch::Tensor used = torch::stack(std::vector<torch::Tensor>(
        state.buffers.begin(), state.buffers.begin() + static_cast<std::ptrdiff_t>(n)));
    torch::Tensor used_anywhere = used.clone();
    state.collectives->all_reduce_metadata(used_anywhere);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> contributions;  // a locally unused parameter's slot is zero
    for (size_t i = 0; i < n; ++i) {
      const bool local = used[static_cast<int64_t>(i)].item<int64_t>() > 0 && params[i].grad().defined();
      contributions.push_back(local ? params[i].grad() : torch::zeros_like(params[i]));
    }
    const auto sums = sum_over_ranks(state, contributions);
    for (size_t i = 0; i < n; ++i) {
      if (used_anywhere[static_cast<int64_t>(i)].item<int64_t>() > 0) {
        params[i].mutable_grad() = sums[i] / state.collectives->world();
      }  // Broken! otherwise the local gradient stays as it is, never synchronized
    }
  }
};

}  // namespace

std::unique_ptr<torch_recipes::TorchTrainingLoop> unused_parameters_not_synced() {
  return std::make_unique<UnusedParametersNotSynced>();
}

}  // namespace gacc::pitfalls
