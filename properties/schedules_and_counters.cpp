// Property 8: schedules and counters advance per optimizer step.

#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

constexpr const char* kSchedulerHolds =
    "the scheduler holds on steps GradScaler skipped, as accelerate does (stepping on every window, as "
    "PyTorch's AMP example does, is right too)";

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
    if (observed == expected) {
      judgement.exact();
    } else {
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
  int64_t micro_batches = 0;
  for (int s = 0; s < sc.steps; ++s) micro_batches += micro_batch_count(sc, s);
  if (trace.counters.micro_batches == micro_batches) {
    judgement.exact();
  } else {
    judgement.structural("forward/backward passes: " + std::to_string(trace.counters.micro_batches) + "; the " +
                         std::to_string(sc.steps) + " windows hold " + std::to_string(micro_batches) +
                         " micro-batches (a window never run, or a micro-batch run twice)");
  }
  // zero_grad clears the window's gradient once per optimizer step: before each window or after each
  // step, with or without one more at either end (S - 1 to S + 1 calls); more clears a micro-batch's.
  const int64_t zero_grads = trace.counters.zero_grads;
  if (zero_grads >= sc.steps - 1 && zero_grads <= sc.steps + 1) {
    judgement.exact();
  } else {
    judgement.structural("zero_grad() calls: " + std::to_string(zero_grads) + " over " + std::to_string(sc.steps) +
                         " windows; once per optimizer step makes " + std::to_string(sc.steps - 1) + " to " +
                         std::to_string(sc.steps + 1) +
                         (zero_grads > sc.steps + 1 ? " (more clears a micro-batch's gradient before the step)" : ""));
  }
  // The scheduler steps once per window, or (holding on steps GradScaler skipped) once per taken step.
  // Where the rates cannot tell the two apart (no step skipped before the last, or a schedule flat
  // over the run), the count says which the recipe follows; either is right.
  SchedulePolicy policy = schedule_policy(oracle, trace);
  if (policy == SchedulePolicy::steps && sc.schedule.kind != ScheduleKind::constant &&
      trace.counters.scheduler_steps == taken && taken != sc.steps && schedule_fits(oracle, trace, SchedulePolicy::holds)) {
    policy = SchedulePolicy::holds;
  }
  if (sc.schedule.kind != ScheduleKind::constant || trace.counters.scheduler_steps != 0) {
    expect_count("scheduler steps", trace.counters.scheduler_steps, policy == SchedulePolicy::holds ? taken : sc.steps);
  }
  if (judgement.failed_structurally()) return judgement.verdict();
  std::vector<double> observed_rates, rates, rate_tolerances;
  for (int s = 0; s < sc.steps; ++s) {
    const auto [rate, tolerance] = oracle.scheduled_rate(schedule_position(trace, s, policy));
    observed_rates.push_back(trace.steps[s].lr);
    rates.push_back(rate);
    rate_tolerances.push_back(tolerance);
  }
  judgement.per_step("learning rate", observed_rates, rates, rate_tolerances);
  int64_t steps_so_far = 0;
  for (int s = 0; s < sc.steps; ++s) {
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
  CaseVerdict verdict = judgement.verdict();
  if (policy == SchedulePolicy::holds) {
    verdict.notes.push_back(kSchedulerHolds);
    verdict.detail += " [" + std::string(kSchedulerHolds) + "]";
  }
  return verdict;
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
