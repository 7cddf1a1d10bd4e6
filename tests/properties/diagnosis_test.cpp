// Note [diagnosis]: each signature named on the pitfall that produces it, and on no correct recipe.

#include <catch2/catch.hpp>

#include "implementations/registry.h"
#include "properties/diagnosis.h"
#include "reference/oracle.h"
#include "tests/support/fp32_recipes.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using Catch::Matchers::Contains;

namespace {

const Recipe& recipe(const std::string& name) {
  static const auto recipes = all_recipes();
  for (const auto& r : recipes) {
    if (r->name() == name) return *r;
  }
  FAIL("no recipe " << name);
  return *recipes.front();
}

std::string diagnosis_of(const std::string& name, const Scenario& sc) {
  const reference::Oracle oracle(sc);
  return properties::diagnose(oracle, recipe(name).run(sc));
}

/// tanh MLP, K = 3 micro-batches of uneven sizes, no clipping, plain SGD: every hypothesis is apart.
Scenario uneven() {
  Scenario sc = testing::mlp_scenario();
  sc.optimizer.momentum = 0.0;
  sc.optimizer.weight_decay = 0.0;
  return sc;
}

/// The same with K = 3 micro-batches of two examples each.
Scenario even() {
  Scenario sc = uneven();
  sc.data.windows = {{{2, 2, 2}}, {{2, 2, 2}}, {{2, 2, 2}}};
  return sc;
}

/// Two ranks, each with K = 3 micro-batches (W and K apart).
Scenario two_ranks() {
  Scenario sc = uneven();
  sc.data.global_batch = 11;
  sc.data.windows = {{{2, 1, 2}, {3, 2, 1}}, {{1, 2, 1}, {2, 3, 2}}};
  sc.world_size = 2;
  sc.accumulation_steps = 3;
  sc.steps = 2;
  return sc;
}

}  // namespace

TEST_CASE("the forgotten 1/K is K times the large batch, or the sum of the micro-batches' means",
          "[diagnosis][multiproc]") {
  CHECK_THAT(diagnosis_of("forgotten-loss-scaling", even()), Contains("K = 3 times the large batch's"));
  CHECK_THAT(diagnosis_of("forgotten-loss-scaling", uneven()), Contains("the sum of the micro-batches' own means"));
}

TEST_CASE("a mean of per-micro-batch means is named so", "[diagnosis][multiproc]") {
  Scenario sc = testing::causal_lm_scenario();
  sc.world_size = 1;
  sc.data.windows = {{{1, 2, 3}}, {{2, 1}}};
  sc.data.global_batch = 6;
  sc.data.sequence_lengths = {3, 1, 5, 2, 4, 1, 5, 2, 3};
  sc.data.ignored_fraction = 0.0;
  sc.accumulation_steps = 3;
  CHECK_THAT(diagnosis_of("token-mean-of-means", sc), Contains("the mean of the micro-batches' own means"));
}

TEST_CASE("zero_grad every micro-batch leaves the last micro-batch's gradient alone", "[diagnosis][multiproc]") {
  CHECK_THAT(diagnosis_of("zero-grad-every-micro-batch", uneven()), Contains("the last micro-batch's alone"));
}

TEST_CASE("a scheduler stepped per micro-batch runs K - 1 steps ahead", "[diagnosis][multiproc]") {
  Scenario sc = uneven();
  sc.schedule.kind = ScheduleKind::step;
  sc.schedule.step_size = 1;
  sc.schedule.gamma = 0.5;
  CHECK_THAT(diagnosis_of("scheduler-step-every-micro-batch", sc), Contains("stepped once per micro-batch"));
}

TEST_CASE("gradients summed over ranks are W times, averaged twice 1/W", "[diagnosis][multiproc]") {
  CHECK_THAT(diagnosis_of("gradients-not-averaged", two_ranks()), Contains("W = 2 times the large batch's"));
  CHECK_THAT(diagnosis_of("gradients-averaged-twice", two_ranks()), Contains("1/W = 1/2 of the large batch's"));
}

TEST_CASE("a loss divided by K twice is 1/K of the large batch", "[diagnosis]") {
  // No pitfall of the catalog divides twice yet (modelscope/ms-swift PR #10116): a trace scaled by hand.
  const Scenario sc = even();
  const reference::Oracle oracle(sc);
  Trace trace = testing::Fp32Recipe().run(sc);
  for (auto& g : trace.steps[0].grad) g /= 3.0;
  trace.steps[0].pre_clip_norm /= 3.0;
  CHECK_THAT(properties::diagnose(oracle, trace), Contains("1/K = 1/3 of the large batch's"));
}

TEST_CASE("a step too few or too many is a step count off by one", "[diagnosis]") {
  const Scenario sc = uneven();
  const reference::Oracle oracle(sc);
  Trace trace = testing::Fp32Recipe().run(sc);
  trace.steps.pop_back();
  CHECK_THAT(properties::diagnose(oracle, trace), Contains("a step count off by one: 2 optimizer steps reported over 3 windows"));
  trace = testing::Fp32Recipe().run(sc);
  ++trace.counters.optimizer_steps;
  CHECK_THAT(properties::diagnose(oracle, trace), Contains("optimizer.step() called 4 times for 3 steps taken"));
}

TEST_CASE("a correct recipe fits no signature", "[diagnosis][multiproc]") {
  for (const Scenario& sc : {uneven(), even()}) {
    CHECK(diagnosis_of("torch-accumulate", sc).empty());
    CHECK(properties::diagnose(reference::Oracle(sc), testing::Fp32Recipe().run(sc)).empty());
  }
  CHECK(diagnosis_of("ddp-accumulate", two_ranks()).empty());
}
