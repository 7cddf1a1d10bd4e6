#pragma once
// A small stack in LibTorch for differential mode's tests: a linear model, mean squared error, SGD
// with weight decay, trained the three ways a differential result holds — with bugs to switch on.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/differential.h"

namespace gacc::testing {

/// What the stack gets wrong (nothing by default).
struct StackBugs {
  bool mean_of_means = false;         ///< each micro-batch's own mean / K
  bool partial_divided_by_k = false;  ///< each micro-batch's mean / the full window's K, even in a partial one
  bool no_zero_grad = false;          ///< gradients never zeroed
  bool divided_twice = false;         ///< the window-normalized loss divided by K once more
};

/// One run over the splits: the accumulation loop, or (`large`) each window as one micro-batch, in
/// `dtype`; counts into `counters` where given.
inline std::vector<DifferentialStep> train_stack(const Splits& splits, bool large, torch::ScalarType dtype,
                                                 const StackBugs& bugs, DifferentialCounters* counters) {
  torch::manual_seed(99);
  const auto inputs = torch::randn({20, 3}).to(dtype);
  const auto targets = torch::randn({20, 2}).to(dtype);
  torch::manual_seed(static_cast<uint64_t>(splits.seed));
  auto weight = torch::randn({2, 3}).to(dtype).requires_grad_();
  auto bias = torch::randn({2}).to(dtype).requires_grad_();
  const int64_t full_k = static_cast<int64_t>(splits.windows.front().size());
  std::vector<DifferentialStep> steps;
  for (const auto& window : splits.windows) {
    std::vector<std::vector<int64_t>> micros = window;
    if (large) {
      std::vector<int64_t> all;
      for (const auto& m : window) all.insert(all.end(), m.begin(), m.end());
      micros = {all};
    }
    int64_t examples = 0;
    for (const auto& m : micros) examples += static_cast<int64_t>(m.size());
    const auto k = static_cast<int64_t>(micros.size());
    double window_loss = 0.0;
    for (const auto& m : micros) {
      const auto rows = torch::tensor(m, torch::kInt64).remainder(20);
      const auto out = inputs.index_select(0, rows).matmul(weight.t()) + bias;
      const auto squared = (out - targets.index_select(0, rows)).pow(2);
      torch::Tensor loss = squared.sum() / static_cast<double>(examples * 2);
      if (bugs.mean_of_means) loss = squared.mean() / static_cast<double>(k);
      if (bugs.partial_divided_by_k) loss = squared.mean() / static_cast<double>(large ? 1 : full_k);
      if (bugs.divided_twice) loss = loss / static_cast<double>(k);
      loss.backward();
      window_loss += loss.item<double>();
      if (counters) ++counters->micro_batches;
    }
    DifferentialStep step;
    step.loss = window_loss;
    const auto record = [](const torch::Tensor& t) {
      const auto flat = t.detach().to(torch::kFloat64).contiguous().reshape(-1);
      return StackTensor{t.sizes().vec(), std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel())};
    };
    step.grad = {record(weight.grad()), record(bias.grad())};
    {
      torch::NoGradGuard no_grad;
      for (auto* p : {&weight, &bias}) p->sub_(0.1 * (p->grad() + 1e-3 * *p));
    }
    if (counters) ++counters->optimizer_steps;
    step.params_after = {record(weight), record(bias)};
    steps.push_back(step);
    if (!bugs.no_zero_grad) {
      weight.mutable_grad().zero_();
      bias.mutable_grad().zero_();
      if (counters) ++counters->zero_grads;
    }
  }
  return steps;
}

/// The result the stack writes: `accumulated_bugs` in its accumulation loop only, `shared_bugs` in
/// every run.
inline DifferentialResult run_stack(const Splits& splits, const StackBugs& accumulated_bugs,
                                    const StackBugs& shared_bugs = {}) {
  StackBugs accumulated = accumulated_bugs;
  accumulated.no_zero_grad = accumulated.no_zero_grad || shared_bugs.no_zero_grad;
  DifferentialResult r;
  r.names = {"fc.weight", "fc.bias"};
  r.accumulated = train_stack(splits, false, torch::kFloat64, accumulated, &r.counters);
  r.large_batch = train_stack(splits, true, torch::kFloat64, shared_bugs, nullptr);
  r.large_batch_fp32 = train_stack(splits, true, torch::kFloat32, shared_bugs, nullptr);
  return r;
}

}  // namespace gacc::testing
