// Broken! The learning-rate scheduler stepped after every micro-batch: the schedule runs K times
// too fast — a warm-up ends after warmup_steps / K optimizer steps, a step decay fires K times too
// early, a cosine cycle is K times too short.
//
// Reported in: Lightning-AI/pytorch-lightning issue 1476 (schedulers stepped on every batch rather
// than every optimizer step with accumulate_grad_batches).
//
// The fix: scheduler.step() once per optimizer step, next to optimizer.step().

#include "implementations/pitfalls/pitfall_loop.h"
#include "implementations/pitfalls/pitfalls.h"

namespace gacc::pitfalls {
namespace {

class SchedulerStepEveryMicroBatch final : public PitfallLoop {
 public:
  SchedulerStepEveryMicroBatch()
      : PitfallLoop("scheduler-step-every-micro-batch",
                    "scheduler.step() after every micro-batch: the schedule runs K times too fast",
                    "Lightning-AI/pytorch-lightning issue 1476") {}

  bool supports(const Scenario& scenario) const override {
    return TorchTrainingLoop::supports(scenario) && scenario.schedule.kind != ScheduleKind::constant;
  }

 protected:
  void after_backward(torch_recipes::LoopState& state, int) const override {
    schedule_step(state);  // Broken! once per micro-batch
  }
  void end_window(torch_recipes::LoopState& state) const override {
    optimizer_step(state, clip_gradients(state));
    zero_grad(state);
  }
};

}  // namespace

std::unique_ptr<Recipe> scheduler_step_every_micro_batch() {
  return std::make_unique<SchedulerStepEveryMicroBatch>();
}

}  // namespace gacc::pitfalls
