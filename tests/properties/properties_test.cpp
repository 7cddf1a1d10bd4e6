// Each property on recipes that need no LibTorch: it holds of a correct fp32 loop and fails on the
// broken variant it exists for.

#include <catch2/catch.hpp>

#include <cmath>

#include "fixtures/fixtures.h"
#include "properties/catalog.h"
#include "properties/generators.h"
#include "properties/runner.h"
#include "tests/support/fp32_recipes.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::properties;
using Catch::Matchers::Contains;

namespace {

CaseVerdict judge(const Property& property, const Recipe& recipe, const Scenario& scenario) {
  const reference::Oracle oracle(scenario);
  const Trace trace = recipe.run(scenario);
  return property.check({oracle, trace, [&recipe](const Scenario& s) { return recipe.run(s); }});
}

}  // namespace

TEST_CASE("unsplit merges each window's micro-batches into one", "[properties]") {
  const Scenario sc = unsplit(testing::mlp_scenario());
  CHECK(sc.accumulation_steps == 1);
  CHECK(sc.data.windows == std::vector<std::vector<std::vector<int64_t>>>{{{6}}, {{6}}, {{5}}});
  validate(sc);
}

TEST_CASE("split invariance holds of a correct loop and catches split-dependent bugs", "[properties]") {
  const auto made = split_invariance();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32ForgottenScaling forgotten;
  const Scenario sc = testing::mlp_scenario();
  REQUIRE(property.applies_to(sc));
  CHECK(judge(property, correct, sc).ratio <= 0.5);
  const auto caught = judge(property, forgotten, sc);
  CHECK(caught.ratio >= 10);
  CHECK_THAT(caught.detail, Contains("split vs K = 1"));
  CHECK_FALSE(property.applies_to(unsplit(sc)));  // nothing to compare with K = 1 already
}

TEST_CASE("the batch-norm property measures the documented deviation and holds recipes to ghost BatchNorm",
          "[properties]") {
  const auto made = batch_norm_semantics();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32ZeroEachMicroBatch zeroed;
  Scenario sc = testing::arch_scenario(Architecture::mlp_batch_norm);
  sc.data.global_batch = 9;
  sc.data.windows = {{{3, 3, 3}}, {{4, 5}}};
  sc.accumulation_steps = 3;
  sc.steps = 2;
  REQUIRE(property.applies_to(sc));
  const auto documented = judge(property, correct, sc);
  INFO(documented.detail);
  CHECK(documented.expected);
  CHECK(documented.ratio >= 1);
  CHECK_THAT(documented.detail, Contains("equals ghost BatchNorm") && Contains("running statistics updated 5 times in 2 steps (the large batch: 2)"));
  const auto broken = judge(property, zeroed, sc);
  CHECK_FALSE(broken.expected);  // not ghost BatchNorm either: a real failure
  CHECK(broken.ratio >= 10);
  CHECK_THAT(broken.detail, Contains("against ghost BatchNorm"));
  // With one micro-batch per window BatchNorm is the large batch, and nothing deviates.
  const auto whole = judge(property, correct, unsplit(sc));
  CHECK_FALSE(whole.expected);
  CHECK(whole.ratio < 1);
}

TEST_CASE("token normalization names the token counts of each micro-batch", "[properties]") {
  const auto made = token_normalization();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32ForgottenScaling forgotten;
  Scenario sc;
  sc.model.arch = Architecture::causal_lm;
  sc.model.vocab_size = 5;
  sc.model.d_model = 3;
  sc.model.max_seq_len = 4;
  sc.loss = {LossKind::cross_entropy, Reduction::token_mean};
  sc.data.global_batch = 5;
  sc.data.windows = {{{2, 1, 2}}};
  sc.data.sequence_lengths = {3, 0, 1, 4, 2};
  sc.data.ignored_fraction = 0.25;
  sc.optimizer.lr = 0.125;
  sc.accumulation_steps = 3;
  sc.steps = 1;
  validate(sc);
  REQUIRE(property.applies_to(sc));
  const auto ok = judge(property, correct, sc);
  CHECK(ok.ratio <= 0.5);
  CHECK_THAT(ok.detail, Contains("counted tokens per micro-batch: window 0:"));
  CHECK(judge(property, forgotten, sc).ratio >= 10);
  Scenario regression = testing::mlp_scenario();
  CHECK_FALSE(property.applies_to(regression));
}

TEST_CASE("schedules and counters catch a scheduler stepped too often", "[properties]") {
  const auto made = schedules_and_counters();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32MiscountedScheduler miscounted;
  Scenario sc = testing::mlp_scenario();
  sc.schedule.kind = ScheduleKind::cosine;
  sc.schedule.t_max = 2;
  CHECK(judge(property, correct, sc).ratio <= 0.5);
  const auto caught = judge(property, miscounted, sc);
  CHECK(std::isinf(caught.ratio));
  CHECK_THAT(caught.detail, Contains("scheduler steps: 6 over 3 windows; one per optimizer step makes 3"));
}

TEST_CASE("mixed precision under fp16: whole steps skipped, the scale backed off and grown per step", "[properties]") {
  const auto made = mixed_precision();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32DropOverflowingMicroBatch dropping;
  Scenario sc = testing::mlp_scenario();
  sc.precision = Precision::fp16;
  // 2^22 overflows this model's fp16 gradients; 2^16 does not: skip, then take two steps, the
  // second growing the scale back (growth every step).
  sc.loss_scale = {0x1p22, 2.0, 1.0 / 64, 1};
  REQUIRE(property.applies_to(sc));
  const auto ok = judge(property, correct, sc);
  INFO(ok.detail);
  CHECK(ok.ratio <= 0.5);
  CHECK_THAT(ok.detail, Contains("1 of 3 steps skipped; loss scales 4194304 65536 131072"));
  const auto caught = judge(property, dropping, sc);
  INFO(caught.detail);
  CHECK(std::isinf(caught.ratio));
  CHECK_THAT(caught.detail, Contains("step 0 was taken at loss scale 4194304; GradScaler must skip it"));
  // Without overflow the two are the same loop.
  sc.loss_scale.init_scale = 1024;
  CHECK(judge(property, dropping, sc).ratio <= 0.5);
}

TEST_CASE("a loss scale that does not follow GradScaler's state machine is caught", "[properties]") {
  const auto made = mixed_precision();
  const Property& property = *made;
  Scenario sc = testing::mlp_scenario();
  sc.precision = Precision::fp16;
  sc.loss_scale = {1024, 2.0, 0.5, 2};
  const reference::Oracle oracle(sc);
  Trace trace = testing::Fp32Recipe().run(sc);
  REQUIRE(property.check({oracle, trace, nullptr}).ratio <= 0.5);
  trace.steps[1].loss_scale = 2048;  // grown after one taken step, with growth_interval 2
  const auto caught = property.check({oracle, trace, nullptr});
  CHECK(std::isinf(caught.ratio));
  CHECK_THAT(caught.detail, Contains("step 1: loss scale 2048; GradScaler's is 1024"));
}

TEST_CASE("split invariance under fp16 compares two runs only while both are on the oracle's path", "[properties]") {
  // Found by `gacc run --cases 3000 --seed 424242`: both runs skipped the steps whose overflow is
  // ambiguous, the oracle's trajectory took them, and its Adam state had no counterpart in the runs.
  const Scenario sc = parse_scenario(
      R"({"accumulation_steps":4,"clipping":{"clip_value":0.015625,"kind":"value"},"data":{"global_batch":8,)"
      R"("seed":3032375151,"windows":[[[2,2,3,1]],[[2,2,3,1]],[[3,1,2,2]]]},"loss":{"kind":"mse",)"
      R"("reduction":"mean"},"loss_scale":{"backoff_factor":0.25,"growth_factor":4.0,"growth_interval":2,)"
      R"("init_scale":4194304.0},"model":{"arch":"mlp_layer_norm","hidden_dim":3,"init_seed":0,"input_dim":1,)"
      R"("norm_eps":1e-05,"output_dim":3},"optimizer":{"amsgrad":false,"beta1":0.5,"beta2":0.75,"eps":0.001,)"
      R"("kind":"adam","lr":0.0185546875,"weight_decay":0.1},"precision":"fp16","schedule":{"eta_min":0.0,)"
      R"("kind":"cosine","t_max":1},"steps":3,"world_size":1})");
  const auto made = split_invariance();
  const auto verdict = judge(*made, testing::Fp32Recipe(), sc);
  INFO(verdict.detail);
  CHECK(verdict.ratio <= 0.5);
}

TEST_CASE("data parallelism: equal to the large batch, replicas identical, the whole gradient sent once per "
          "window or per micro-batch",
          "[properties]") {
  const auto made = data_parallel();
  const Property& property = *made;
  const testing::Fp32Recipe correct;
  const testing::Fp32ForgottenScaling forgotten;
  const Scenario sc = testing::causal_lm_scenario();  // W = 2, K = 2, uneven, a partial last window
  REQUIRE(property.applies_to(sc));
  CHECK_FALSE(property.applies_to(testing::mlp_scenario()));  // one rank
  const reference::Oracle oracle(sc);
  const Trace trace = correct.run(sc);
  const auto check = [&](const Trace& t) { return property.check({oracle, t, {}}); };
  const auto passing = check(trace);
  INFO(passing.detail);
  CHECK(passing.ratio <= 0.5);
  CHECK(judge(property, forgotten, sc).ratio >= 10);

  SECTION("a replica that diverged") {
    Trace diverged = trace;
    diverged.replica_divergence = "rank 1 differs from rank 0 after step 0: parameter 3";
    const auto v = check(diverged);
    CHECK(std::isinf(v.ratio));
    CHECK_THAT(v.detail, Contains("the replicas diverge: rank 1 differs"));
  }
  SECTION("collectives: once per window or once per micro-batch, whole, in buckets") {
    const int64_t gradient_bytes = fixtures::model_layout(sc.model).size * 4;
    Trace counted = trace;
    counted.counters.all_reduces = 3;  // 2 + 1 micro-batches: synchronized every micro-batch
    counted.counters.all_reduce_bytes = 3 * gradient_bytes;
    CHECK(check(counted).ratio <= 0.5);
    counted.counters.all_reduces = 4;  // once per window in two buckets
    counted.counters.all_reduce_bytes = 2 * gradient_bytes;
    CHECK(check(counted).ratio <= 0.5);
    counted.counters.all_reduce_bytes = 2 * gradient_bytes - 4;  // one parameter left out
    const auto partial = check(counted);
    CHECK(std::isinf(partial.ratio));
    CHECK_THAT(partial.detail, Contains("once per window makes " + std::to_string(2 * gradient_bytes) + " bytes"));
    counted.counters.all_reduces = 0;  // never synchronized
    counted.counters.all_reduce_bytes = 0;
    CHECK(std::isinf(check(counted).ratio));
  }
}
