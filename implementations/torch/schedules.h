#pragma once
/// Learning-rate schedules for LibTorch optimizers, stepped once per optimizer step, written as
/// PyTorch's schedulers compute them: in chained form, each rate derived from the previous one
/// (torch.optim.lr_scheduler's StepLR, LinearLR and CosineAnnealingLR), independently of the
/// oracle's closed forms. LibTorch ships only StepLR, and its StepLR lags PyTorch's by one step.

#include <torch/torch.h>

#include <memory>

#include "core/scenario.h"

namespace gacc::torch_recipes {

class Schedule {
 public:
  virtual ~Schedule() = default;
  /// Advances by one optimizer step (scheduler.step()).
  virtual void step() = 0;
};

/// The scenario's schedule over `optimizer` (nullptr for a constant rate). It sets the optimizer's
/// rate for step 0 at construction, as PyTorch's schedulers do.
std::unique_ptr<Schedule> make_schedule(const Scenario& scenario, torch::optim::Optimizer& optimizer);

}  // namespace gacc::torch_recipes
