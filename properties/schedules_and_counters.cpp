// Property 8: schedules and counters advance per optimizer step.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 8: everything that counts optimizer steps advances once per optimizer step — the
// optimizer itself, the LR scheduler (the rate at each step equals the schedule's), and the
// optimizer's own step count (Adam's bias correction).
bool applies(const Scenario&) { return true; }

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  const auto& trace = context.trace;
  const auto& sc = oracle.scenario();
  Judgement judgement(oracle);
  const auto expect_count = [&](const char* what, int64_t observed, int64_t expected) {
    if (observed != expected) {
      judgement.structural(std::string(what) + ": " + std::to_string(observed) + " over " +
                           std::to_string(sc.steps) + " windows; one per optimizer step makes " +
                           std::to_string(expected));
    }
  };
  // Under fp16 a skipped step is no optimizer step (GradScaler does not call it); whether each
  // skip was right is property 7's question.
  int64_t taken = 0;
  for (const auto& step : trace.steps) taken += !step.skipped;
  expect_count("optimizer.step() calls", trace.counters.optimizer_steps, taken);
  expect_count("windows in the trace", static_cast<int64_t>(trace.steps.size()), sc.steps);
  if (sc.schedule.kind != ScheduleKind::constant) {
    expect_count("scheduler steps", trace.counters.scheduler_steps, sc.steps);
  } else if (trace.counters.scheduler_steps != 0) {
    expect_count("scheduler steps", trace.counters.scheduler_steps, sc.steps);
  }
  if (judgement.failed_structurally()) return judgement.verdict();
  int64_t steps_so_far = 0;
  for (int s = 0; s < sc.steps; ++s) {
    const auto& expected = oracle.trajectory()[s];
    judgement.scalar("step " + std::to_string(s) + " learning rate", trace.steps[s].lr, expected.lr,
                     expected.lr_tolerance);
    const auto count = trace.steps[s].optimizer_state.find("step");
    steps_so_far += !trace.steps[s].skipped;
    if (sc.optimizer.kind != OptimizerKind::sgd && steps_so_far > 0) {
      if (count == trace.steps[s].optimizer_state.end() || count->second.empty()) {
        judgement.structural("step " + std::to_string(s) + ": the optimizer state has no step count");
        break;
      }
      for (double value : count->second) {
        if (value != static_cast<double>(steps_so_far)) {
          judgement.structural("step " + std::to_string(s) + ": the optimizer's step count is " +
                               format_number(value) + "; after " + std::to_string(steps_so_far) +
                               " optimizer steps it must be " + std::to_string(steps_so_far));
          break;
        }
      }
    }
  }
  return judgement.verdict();
}

}  // namespace

std::unique_ptr<Property> schedules_and_counters() {
  return std::make_unique<PropertyOf>(
      "schedules-and-counters",
      "Optimizer steps, scheduler steps, the scheduled learning rate and the optimizer's own step count "
      "advance once per optimizer step, never per micro-batch.",
      applies, check);
}

}  // namespace gacc::properties
