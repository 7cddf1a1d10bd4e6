// Differential mode's judge: the generated splits and their shrink candidates, the checks — a
// correct accumulation loop passes well below ratio 1, broken ones fail far above it — and the loop.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>

#include "core/errors.h"
#include "implementations/external/differential.h"
#include "properties/differential.h"
#include "tests/support/differential_stack.h"
#include "tests/support/splits.h"

namespace {

using gacc::DifferentialResult;
using gacc::Splits;
using gacc::testing::run_stack;
using gacc::testing::StackBugs;
using gacc::testing::uneven_splits;

double ratio_of(const std::vector<gacc::properties::DifferentialCheck>& checks, const std::string& name) {
  for (const auto& c : checks) {
    if (c.name == name) return c.ratio;
  }
  FAIL("no check " << name);
  return 0.0;
}

}  // namespace

TEST_CASE("generated splits reach K 1 to 6, uneven and partial windows, and are valid", "[properties][differential]") {
  std::set<size_t> ks;
  bool uneven = false, partial = false;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const Splits s = gacc::properties::generate_splits(seed);
    REQUIRE_NOTHROW(gacc::validate(s));
    REQUIRE(s.steps() >= 1);
    REQUIRE(s.steps() <= gacc::properties::kMaxDifferentialSteps);
    ks.insert(static_cast<size_t>(s.accumulation_steps));
    // K micro-batches in every window but the last, which holds 1 to K.
    for (int w = 0; w < s.steps(); ++w) {
      const auto micros = static_cast<int64_t>(s.windows[static_cast<size_t>(w)].size());
      REQUIRE((w + 1 < s.steps() ? micros == s.accumulation_steps : micros <= s.accumulation_steps));
    }
    for (const auto& window : s.windows) {
      for (const auto& micro : window) uneven = uneven || micro.size() != window.front().size();
      size_t examples = 0;
      for (const auto& micro : window) examples += micro.size();
      partial = partial || static_cast<int64_t>(examples) < s.global_batch;
    }
    REQUIRE(gacc::properties::generate_splits(seed) == s);  // reproducible
  }
  CHECK(ks == std::set<size_t>{1, 2, 3, 4, 5, 6});
  CHECK(uneven);
  CHECK(partial);
}

TEST_CASE("shrink candidates of splits are smaller and valid, and K itself shrinks", "[properties][differential]") {
  const Splits s = uneven_splits();
  // Shrinking only ever makes splits smaller, every candidate is valid (K kept in every window but
  // the last), and K itself shrinks.
  bool smaller_k = false;
  for (const auto& candidate : gacc::properties::shrink_candidates(s)) {
    REQUIRE_NOTHROW(gacc::validate(candidate));
    CHECK(candidate.micro_batches() <= s.micro_batches());
    CHECK_FALSE(candidate == s);
    smaller_k = smaller_k || candidate.accumulation_steps < s.accumulation_steps;
  }
  CHECK(smaller_k);
}

TEST_CASE("a correct accumulation loop passes every differential check well below 1", "[properties][differential]") {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Splits s = seed == 0 ? uneven_splits() : gacc::properties::generate_splits(seed);
    const auto result = run_stack(s, {});
    // Through the file and back: what gacc reads is what the stack wrote.
    const auto read = gacc::external::decode_differential_result(gacc::external::encode_differential_result(result), s,
                                                                 "result.pt");
    const auto checks = gacc::properties::judge_differential(s, read);
    INFO("splits " << gacc::to_json_text(s));
    for (const auto& c : checks) {
      INFO(c.name << ": " << c.detail);
      CHECK(c.ratio < 0.5);
    }
    CHECK_FALSE(gacc::properties::any_failed(checks));
  }
  // The detail shows the tolerance's derivation.
  const auto checks = gacc::properties::judge_differential(uneven_splits(), run_stack(uneven_splits(), {}));
  CHECK_THAT(checks.front().detail, Catch::Contains("2 x (2 x noise64"));
  CHECK_THAT(checks.front().detail, Catch::Contains("noise64 = 2^-29 x"));
}

TEST_CASE("broken accumulation loops fail far above 1", "[properties][differential]") {
  const Splits s = uneven_splits();
  SECTION("mean of per-micro-batch means with uneven micro-batches") {
    StackBugs bugs;
    bugs.mean_of_means = true;
    const auto checks = gacc::properties::judge_differential(s, run_stack(s, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    CHECK(ratio_of(checks, "differential-losses") > 1e6);
    CHECK(ratio_of(checks, "differential-params") > 1e6);
  }
  SECTION("a partial last window divided by the full window's K") {
    Splits even;
    even.seed = 5;
    even.global_batch = 6;
    even.accumulation_steps = 3;
    even.windows = {{{0, 1}, {2, 3}, {4, 5}}, {{6, 7}, {8, 9}}};  // even sizes: only the partial window is wrong
    StackBugs bugs;
    bugs.partial_divided_by_k = true;
    const auto checks = gacc::properties::judge_differential(even, run_stack(even, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    INFO(checks.front().detail);
    CHECK_THAT(checks.front().detail, Catch::StartsWith("step 1 "));
    // The same loop on full windows only is right.
    even.windows.pop_back();
    CHECK_FALSE(gacc::properties::any_failed(gacc::properties::judge_differential(even, run_stack(even, bugs))));
  }
  SECTION("a missing zero_grad in the accumulation loop alone") {
    StackBugs bugs;
    bugs.no_zero_grad = true;
    const auto checks = gacc::properties::judge_differential(s, run_stack(s, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
  }
  SECTION("a missing zero_grad in every run: the gradients agree, the counters do not") {
    StackBugs bugs;
    bugs.no_zero_grad = true;
    const auto checks = gacc::properties::judge_differential(s, run_stack(s, {}, bugs));
    CHECK(ratio_of(checks, "differential-gradients") < 1.0);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
    CHECK_THAT(checks[3].detail, Catch::Contains("zero_grad() calls: 0 over 3 windows"));
  }
}

TEST_CASE("scaled, biased and miscounted traces fail, and a wrong float32 run cannot loosen the tolerance",
          "[properties][differential]") {
  const Splits s = uneven_splits();
  const auto correct = run_stack(s, {});
  SECTION("a gradient scaled by 1 + 1e-9") {
    auto r = correct;
    for (auto& v : r.accumulated[1].grad[0].values) v *= 1.0 + 1e-9;
    CHECK(ratio_of(gacc::properties::judge_differential(s, r), "differential-gradients") > 1.0);
  }
  SECTION("a parameter biased by 1e-10") {
    auto r = correct;
    r.accumulated[2].params_after[1].values[0] += 1e-10;
    CHECK(ratio_of(gacc::properties::judge_differential(s, r), "differential-params") > 1.0);
  }
  SECTION("a loss off by one part in 1e9") {
    auto r = correct;
    r.accumulated[0].loss *= 1.0 + 1e-9;
    CHECK(ratio_of(gacc::properties::judge_differential(s, r), "differential-losses") > 1.0);
  }
  SECTION("an optimizer step too many, a micro-batch too few") {
    auto r = correct;
    r.counters.optimizer_steps += 1;
    r.counters.micro_batches -= 1;
    const auto checks = gacc::properties::judge_differential(s, r);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
    CHECK_THAT(checks[3].detail, Catch::Contains("optimizer.step() calls: 4 over 3 windows"));
    CHECK_THAT(checks[3].detail, Catch::Contains("micro-batches: 7, but the case holds 8"));
  }
  SECTION("a float32 run that is not rounding noise") {
    auto r = correct;
    for (auto& v : r.large_batch_fp32[0].grad[0].values) v *= 1.1;
    const auto checks = gacc::properties::judge_differential(s, r);
    CHECK(ratio_of(checks, "differential-fp32-probe") > 1.0);
  }
}

TEST_CASE("float64 runs that compute in float32 are refused with the cause and the fix, not flagged",
          "[properties][differential]") {
  // Hugging Face Llama casts RMSNorm, rotary embeddings, softmax and logits to float32 even in a
  // float64 model: its "float64" runs are float32 ones, their noise measures as 0, and a correct stack
  // would be flagged at ratios of 1e7. gacc says why instead (exit 3).
  const Splits s = uneven_splits();
  const auto correct = run_stack(s, {});
  const auto to_float32 = [](std::vector<gacc::DifferentialStep>& run) {
    for (auto& step : run) {
      step.loss = static_cast<float>(step.loss);
      for (auto* tensors : {&step.grad, &step.params_after}) {
        for (auto& t : *tensors) {
          for (auto& v : t.values) v = static_cast<float>(v);
        }
      }
    }
  };
  SECTION("every value of the float64 runs a float32 number") {
    auto r = correct;
    to_float32(r.accumulated);
    to_float32(r.large_batch);
    CHECK_THROWS_WITH(gacc::properties::judge_differential(s, r),
                      Catch::Contains("is a float32 number: they were computed in float32, not float64") &&
                          Catch::Contains("model.double()") && Catch::Contains("RMSNorm"));
  }
  SECTION("the float64 large batch equal to the float32 one while the accumulated run differs") {
    auto r = correct;
    r.large_batch = r.large_batch_fp32;
    CHECK_THROWS_AS(gacc::properties::judge_differential(s, r), gacc::InputError);
    CHECK_THROWS_WITH(gacc::properties::judge_differential(s, r), Catch::Contains("a measured noise of 0"));
  }
  SECTION("only the loss computed in float32 (a loss function that casts the logits)") {
    auto r = correct;
    for (size_t i = 0; i < r.large_batch.size(); ++i) {
      r.large_batch[i].loss = static_cast<float>(r.large_batch[i].loss);
      r.large_batch_fp32[i].loss = r.large_batch[i].loss;
      r.accumulated[i].loss = r.large_batch[i].loss * (1 + 1e-12);  // float64 summation: not bit-equal
    }
    CHECK_THROWS_AS(gacc::properties::judge_differential(s, r), gacc::InputError);
    CHECK_THROWS_WITH(gacc::properties::judge_differential(s, r),
                      Catch::Contains("the float64 loss was computed in float32") && Catch::Contains("logits.float()"));
  }
}

TEST_CASE("a wrong step count in differential mode is a verdict with its diagnosis, judged on the steps that exist",
          "[properties][differential]") {
  const Splits s = uneven_splits();  // 3 windows, the last partial
  const auto name_of = [](const gacc::properties::DifferentialCheck& c) { return c.name; };
  SECTION("the partial last window never stepped") {
    auto r = run_stack(s, {});
    r.accumulated.pop_back();
    --r.counters.optimizer_steps;
    const auto checks = gacc::properties::judge_differential(s, r);
    CHECK(ratio_of(checks, "differential-counters") == std::numeric_limits<double>::infinity());
    CHECK_THAT(checks[3].detail, Catch::Contains("steps in the accumulated run: 2 over 3 windows (the first 2 compared)"));
    CHECK_THAT(checks[3].diagnosis, Catch::Contains("a step count off by one: 2 optimizer steps reported over 3 windows"));
    CHECK(ratio_of(checks, "differential-gradients") < 1.0);  // the steps that exist are right
    CHECK(name_of(checks[0]) == "differential-gradients");
  }
  SECTION("the last window stepped on every micro-batch") {
    auto r = run_stack(s, {});
    r.accumulated.push_back(r.accumulated.back());
    r.accumulated.push_back(r.accumulated.back());
    const auto checks = gacc::properties::judge_differential(s, r);
    CHECK(checks[3].failed());
    CHECK_THAT(checks[3].diagnosis, Catch::Contains("5 optimizer steps over 3 windows: some window stepped before its "
                                                    "last micro-batch"));
  }
  SECTION("no step at all") {
    auto r = run_stack(s, {});
    r.accumulated.clear();
    const auto checks = gacc::properties::judge_differential(s, r);
    CHECK(checks[3].failed());
    CHECK_THAT(checks[3].detail, Catch::Contains("steps in the accumulated run: 0 over 3 windows"));
  }
}

TEST_CASE("a differential failure names its signature: the loss divided by K twice", "[properties][differential]") {
  const Splits s = uneven_splits();
  StackBugs bugs;
  bugs.divided_twice = true;
  const auto checks = gacc::properties::judge_differential(s, run_stack(s, bugs));
  CHECK(ratio_of(checks, "differential-gradients") > 1e6);
  CHECK_THAT(checks[0].diagnosis, Catch::Contains("the gradient is 1/K = 1/3 of the large batch's: divided by K once "
                                                  "too often"));
  StackBugs mean_of_means;  // uneven micro-batches: no factor fits, and none is named
  mean_of_means.mean_of_means = true;
  CHECK(gacc::properties::judge_differential(s, run_stack(s, mean_of_means))[0].diagnosis.empty());
  CHECK(gacc::properties::judge_differential(s, run_stack(s, {}))[0].diagnosis.empty());
}


TEST_CASE("one judged result makes a row per check for \"result\"", "[properties][differential]") {
  const Splits s = uneven_splits();
  StackBugs bugs;
  bugs.divided_twice = true;
  const auto report = gacc::properties::judge_differential_case(s, run_stack(s, bugs));
  REQUIRE(report.rows.size() == gacc::properties::differential_check_names().size());
  CHECK(report.rows[0].recipe == "result");
  CHECK(report.rows[0].verdict == gacc::properties::Verdict::fail);
  CHECK(report.rows[0].worst_case == -1);  // not a generated case
  CHECK(report.rows[3].verdict == gacc::properties::Verdict::pass);
  CHECK(report.case_verdicts.empty());
  CHECK(report.exit_code() == gacc::ExitCode::property_failed);
}

TEST_CASE("the differential loop records every case, shrinks the first failure and says how to rerun it",
          "[properties][differential]") {
  gacc::properties::DifferentialRunOptions options;
  options.cases = 6;
  options.seed = 1;
  int progress_calls = 0;
  options.progress = [&progress_calls](int done, int total) {
    ++progress_calls;
    CHECK(done == progress_calls);
    CHECK(total == 6);
  };
  options.reproducer = [](const Splits& splits) { return "rerun " + gacc::to_json_text(splits); };
  SECTION("a correct stack passes every row") {
    const auto report =
        gacc::properties::run_differential("stack", [](const Splits& s) { return run_stack(s, {}); }, options);
    REQUIRE(report.rows.size() == gacc::properties::differential_check_names().size());
    for (const auto& row : report.rows) {
      CHECK(row.recipe == "stack");
      CHECK(row.verdict == gacc::properties::Verdict::pass);
      CHECK(row.cases == 6);
    }
    CHECK(report.case_verdicts.size() == 6);
    CHECK(report.exit_code() == gacc::ExitCode::ok);
    CHECK(progress_calls == 6);
  }
  SECTION("a stack that divides by K twice fails, with a shrunk counterexample and its rerun") {
    StackBugs bugs;
    bugs.divided_twice = true;
    int runs = 0;
    const auto report = gacc::properties::run_differential(
        "stack",
        [&](const Splits& s) {
          ++runs;
          return run_stack(s, bugs);
        },
        options);
    const auto& gradients = report.rows.front();
    CHECK(gradients.property == "differential-gradients");
    CHECK(gradients.verdict == gacc::properties::Verdict::fail);
    INFO(gradients.worst_detail);
    CHECK_THAT(gradients.worst_detail, Catch::Contains("\n  counterexample (case ") &&
                                           Catch::Contains("): splits {") && Catch::Contains("\n  rerun {"));
    CHECK_THAT(gradients.diagnosis, Catch::Contains("divided by K once too often"));
    CHECK(runs > options.cases);  // shrinking reran the stack
    CHECK(report.exit_code() == gacc::ExitCode::property_failed);
  }
}
