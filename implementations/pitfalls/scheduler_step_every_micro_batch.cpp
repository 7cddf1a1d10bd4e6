// Broken! Scheduler.step() after every micro-batch: the schedule runs K times too fast.
//
// Reported in: Lightning-AI/pytorch-lightning issue 1476.
//
// The bug and its fix, as `gacc explain scheduler-step-every-micro-batch` prints them, are the description
// below.

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class SchedulerStepEveryMicroBatch final : public PitfallLoop {
 public:
  SchedulerStepEveryMicroBatch()
      : PitfallLoop({"scheduler-step-every-micro-batch",
                     "scheduler.step() after every micro-batch: the schedule runs K times too fast",
                     "Lightning-AI/pytorch-lightning issue 1476",
                     "The learning-rate scheduler is stepped after every micro-batch, so the schedule runs K "
                     "times too fast: a warm-up ends after warmup_steps / K optimizer steps, a step decay "
                     "fires K times too early, a cosine cycle is K times too short.",
                     "optimizer.step()\n"
                     "scheduler.step()        # next to optimizer.step(), once per window\n"
                     "optimizer.zero_grad()"}) {}

  bool accepts(const Scenario& scenario) const override {
    return scenario.schedule.kind != ScheduleKind::constant;
  }

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    schedule_step(state);  // Broken! once per micro-batch
  }
  void end_window(torch_recipes::LoopState& state) const override {
    unscale_gradients(state);
    optimizer_step(state, clip_gradients(state));
    zero_grad(state);
  }
};

}  // namespace

std::unique_ptr<Recipe> scheduler_step_every_micro_batch() {
  return std::make_unique<SchedulerStepEveryMicroBatch>();
}

}  // namespace gacc::pitfalls
