#include "implementations/torch/schedules.h"

#include <cmath>

namespace gacc::torch_recipes {
namespace {

double current_lr(torch::optim::Optimizer& optimizer) {
  return optimizer.param_groups().at(0).options().get_lr();
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

/// StepLR(step_size, gamma): lr *= gamma when the epoch reaches a multiple of step_size.
/// (LibTorch's torch::optim::StepLR decays one step later than PyTorch's: it does not take the
/// scheduler step Python takes at construction. gacc follows PyTorch's documented semantics.)
class StepSchedule final : public Schedule {
 public:
  StepSchedule(torch::optim::Optimizer& optimizer, const ScheduleSpec& spec)
      : optimizer_(optimizer), spec_(spec) {}
  void step() override {
    ++epoch_;
    if (epoch_ % spec_.step_size == 0) set_lr(optimizer_, current_lr(optimizer_) * spec_.gamma);
  }

 private:
  torch::optim::Optimizer& optimizer_;
  ScheduleSpec spec_;
  int64_t epoch_ = 0;
};

/// LinearLR(start_factor, end_factor = 1, total_iters): lr *= 1 + (end - start) /
/// (total * start + (epoch - 1) (end - start)) for 0 < epoch <= total.
class LinearWarmup final : public Schedule {
 public:
  LinearWarmup(torch::optim::Optimizer& optimizer, const ScheduleSpec& spec)
      : optimizer_(optimizer), spec_(spec) {
    set_lr(optimizer_, current_lr(optimizer_) * spec_.start_factor);
  }
  void step() override {
    ++epoch_;
    if (epoch_ > spec_.warmup_steps) return;
    const double start = spec_.start_factor, end = 1.0;
    const double factor = 1.0 + (end - start) / (spec_.warmup_steps * start + (epoch_ - 1) * (end - start));
    set_lr(optimizer_, current_lr(optimizer_) * factor);
  }

 private:
  torch::optim::Optimizer& optimizer_;
  ScheduleSpec spec_;
  int64_t epoch_ = 0;
};

/// CosineAnnealingLR(T_max, eta_min) in PyTorch's recursive form.
class CosineAnnealing final : public Schedule {
 public:
  CosineAnnealing(torch::optim::Optimizer& optimizer, const ScheduleSpec& spec, double base_lr)
      : optimizer_(optimizer), spec_(spec), base_lr_(base_lr) {}
  void step() override {
    ++epoch_;
    const double lr = current_lr(optimizer_), eta = spec_.eta_min, t = static_cast<double>(spec_.t_max);
    const double e = static_cast<double>(epoch_);
    double next;
    if ((epoch_ - 1 - spec_.t_max) % (2 * spec_.t_max) == 0) {
      next = lr + (base_lr_ - eta) * (1.0 - std::cos(M_PI / t)) / 2.0;
    } else {
      next = (1.0 + std::cos(M_PI * e / t)) / (1.0 + std::cos(M_PI * (e - 1.0) / t)) * (lr - eta) + eta;
    }
    set_lr(optimizer_, next);
  }

 private:
  torch::optim::Optimizer& optimizer_;
  ScheduleSpec spec_;
  double base_lr_;
  int64_t epoch_ = 0;
};

}  // namespace

std::unique_ptr<Schedule> make_schedule(const Scenario& scenario, torch::optim::Optimizer& optimizer) {
  switch (scenario.schedule.kind) {
    case ScheduleKind::constant:
      return nullptr;
    case ScheduleKind::step:
      return std::make_unique<StepSchedule>(optimizer, scenario.schedule);
    case ScheduleKind::linear_warmup:
      return std::make_unique<LinearWarmup>(optimizer, scenario.schedule);
    case ScheduleKind::cosine:
      return std::make_unique<CosineAnnealing>(optimizer, scenario.schedule, scenario.optimizer.lr);
  }
  return nullptr;
}

}  // namespace gacc::torch_recipes
