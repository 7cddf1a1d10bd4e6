// The property loop, judged with recipes that need no LibTorch (tests/support/fp32_recipes.h).

#include <sstream>

#include <catch2/catch.hpp>

#include "core/errors.h"
#include "properties/generators.h"
#include "properties/report.h"
#include "properties/runner.h"
#include "tests/support/fp32_recipes.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::properties;
using Catch::Matchers::Contains;

namespace {

/// The two equivalence properties: the runner's behaviour, not the catalog's, is under test here.
struct Harness {
  std::vector<std::unique_ptr<Property>> owned = all_properties();
  std::vector<const Property*> properties() const {
    std::vector<const Property*> out;
    for (const auto& p : owned) {
      if (p->name() == "gradient-equivalence" || p->name() == "step-equivalence") out.push_back(p.get());
    }
    return out;
  }
};

RunOptions options(int cases, uint64_t seed, std::string filter = "") {
  RunOptions o;
  o.cases = cases;
  o.seed = seed;
  o.filter = std::move(filter);
  return o;
}

const ResultRow& row(const RunReport& report, const std::string& property, const std::string& recipe) {
  for (const auto& r : report.rows) {
    if (r.property == property && r.recipe == recipe) return r;
  }
  FAIL("no row " << property << " / " << recipe);
  return report.rows.front();
}

}  // namespace

TEST_CASE("a correct fp32 loop passes every property with ratio at most 0.5", "[runner]") {
  const Harness h;
  const testing::Fp32Recipe correct;
  const auto report = run_properties(h.properties(), {&correct}, scenarios(), options(60, 3));
  for (const auto& r : report.rows) {
    INFO(r.property << ": " << r.worst_detail);
    CHECK(r.verdict == Verdict::pass);
    CHECK(r.cases >= 40);  // BatchNorm cases belong to the batch-norm property
    CHECK(r.worst_ratio <= 0.5);
    CHECK_FALSE(r.counterexample.has_value());
  }
  CHECK(report.exit_code() == ExitCode::ok);
}

TEST_CASE("broken loops are caught by a wide margin and shrunk to small counterexamples", "[runner]") {
  const Harness h;
  const testing::Fp32ForgottenScaling forgotten;
  const testing::Fp32ZeroEachMicroBatch zeroed;
  auto shrink_every_row = options(40, 5);
  shrink_every_row.shrink_every_pitfall_row = true;
  const auto report = run_properties(h.properties(), {&forgotten, &zeroed}, scenarios(), shrink_every_row);
  for (const auto& r : report.rows) {
    INFO(r.property << " / " << r.recipe << ": " << r.worst_detail);
    CHECK(r.verdict == Verdict::fail);
    CHECK(r.worst_ratio >= 10);
    REQUIRE(r.counterexample.has_value());
    const auto& c = *r.counterexample;
    CHECK(c.ratio >= 1);
    CHECK(c.scenario.accumulation_steps == 2);  // the smallest K that shows either bug
    CHECK(c.scenario.steps == 1);
    CHECK(c.scenario.model.input_dim == 1);
    // The reproduce line reruns exactly the counterexample.
    const std::string line = reproduce_line(c, report.seed);
    const auto open = line.find('\''), close = line.find('\'', open + 1);
    CHECK(to_json_text(parse_scenario(line.substr(open + 1, close - open - 1))) == to_json_text(c.scenario));
  }
  CHECK(report.pitfalls_escaping().empty());
  CHECK(report.exit_code() == ExitCode::ok);
}

TEST_CASE("a run that records case verdicts lists every check of every judged case", "[runner]") {
  const Harness h;
  const testing::Fp32ZeroEachMicroBatch zeroed;
  auto recorded = options(6, 5);
  recorded.record_case_verdicts = true;
  const auto report = run_properties(h.properties(), {&zeroed}, scenarios(), recorded);
  REQUIRE(report.records_case_verdicts);
  REQUIRE_FALSE(report.case_verdicts.empty());
  int failing = 0, row_cases = 0;
  for (const auto& r : report.rows) row_cases += r.cases;
  int checks = 0;
  for (const auto& c : report.case_verdicts) {
    CHECK(c.index >= 0);
    CHECK(c.index < 6);
    CHECK_FALSE(c.cell.empty());
    for (const auto& check : c.checks) {
      CHECK(check.recipe == zeroed.name());
      CHECK((check.verdict == "pass" || check.verdict == "fail" || check.verdict == "not judged"));
      failing += check.verdict == "fail";
      ++checks;
    }
  }
  CHECK(checks == row_cases);  // one entry per case a row counted
  CHECK(failing > 0);          // the pitfall shows case by case
  CHECK(run_properties(h.properties(), {&zeroed}, scenarios(), options(2, 5)).case_verdicts.empty());
}

TEST_CASE("by default a caught pitfall is shrunk once, in its first catching row", "[runner]") {
  const Harness h;
  const testing::Fp32ZeroEachMicroBatch zeroed;
  const auto report = run_properties(h.properties(), {&zeroed}, scenarios(), options(40, 5));
  const auto& first = row(report, "gradient-equivalence", zeroed.name());
  const auto& second = row(report, "step-equivalence", zeroed.name());
  REQUIRE(first.counterexample.has_value());
  REQUIRE(second.counterexample.has_value());
  CHECK(first.counterexample->shrinks > 0);
  CHECK(second.counterexample->shrinks == 0);  // the generated case that showed it
  CHECK_FALSE(second.counterexample->budget_ended);  // not shrunk on purpose: no budget ran out
  CHECK(second.counterexample->ratio >= 1);
}

TEST_CASE("a check that could not look is not judged, never a pass (Note [looked])", "[runner]") {
  // Every case's one comparison has a tolerance past its value: the row is "not judged", and a
  // pitfall judged only so is neither caught nor escaping.
  const PropertyOf blind("blind", "compares under a tolerance past the value", [](const Scenario&) { return true; },
                         [](const CaseContext&) { return CaseVerdict{0.0, "tolerance inf", false, 1, 1}; });
  const PropertyOf looking("looking", "one check that looked", [](const Scenario&) { return true; },
                           [](const CaseContext&) { return CaseVerdict{0.1, "fine", false, 1, 0}; });
  const testing::Fp32Recipe correct;
  const testing::Fp32DisguisedAsPitfall disguised;
  const auto report = run_properties({&blind, &looking}, {&correct, &disguised}, scenarios(), options(3, 1));
  const auto& vacuous = row(report, "blind", correct.name());
  CHECK(vacuous.verdict == Verdict::not_judged);
  CHECK(vacuous.cases == 3);
  CHECK(vacuous.cases_judged == 0);
  CHECK(vacuous.checks_not_judged == 3);
  CHECK(row(report, "looking", correct.name()).verdict == Verdict::pass);
  CHECK(report.checks() == 12);
  CHECK(report.checks_not_judged() == 6);
  // The disguised pitfall was judged (by "looking") and passed: it escapes. Judged only by "blind",
  // it would be not judged.
  CHECK(report.pitfalls_escaping() == std::vector<std::string>{"fp32-not-really-broken"});
  const auto only_blind = run_properties({&blind}, {&disguised}, scenarios(), options(3, 1));
  CHECK(only_blind.pitfalls_escaping().empty());
  CHECK(only_blind.pitfalls_not_judged() == std::vector<std::string>{"fp32-not-really-broken"});
  CHECK(only_blind.exit_code() == ExitCode::ok);
  std::ostringstream table;
  print_table(table, report);
  CHECK_THAT(table.str(), Contains("not judged"));
}

TEST_CASE("a pitfall that no property catches makes the run fail", "[runner]") {
  const Harness h;
  const testing::Fp32DisguisedAsPitfall disguised;
  const auto report = run_properties(h.properties(), {&disguised}, scenarios(), options(10, 1));
  CHECK(report.pitfalls_escaping() == std::vector<std::string>{"fp32-not-really-broken"});
  CHECK(report.exit_code() == ExitCode::property_failed);
}

TEST_CASE("a pitfall no property judged is reported as not judged, not as escaping", "[runner]") {
  const Harness h;
  const testing::UnjudgedPitfall unjudged;
  const testing::Fp32DisguisedAsPitfall disguised;
  const auto report = run_properties(h.properties(), {&unjudged, &disguised}, scenarios(), options(5, 1));
  CHECK(report.pitfalls_not_judged() == std::vector<std::string>{"never-applies"});
  CHECK(report.pitfalls_escaping() == std::vector<std::string>{"fp32-not-really-broken"});
  CHECK(report.exit_code() == ExitCode::property_failed);
}

TEST_CASE("a correct recipe that fails makes the run fail", "[runner]") {
  const Harness h;
  const testing::ThrowingRecipe throwing;
  const auto report = run_properties(h.properties(), {&throwing}, scenarios(), options(3, 1));
  const auto& r = row(report, "gradient-equivalence", "throws");
  CHECK(r.verdict == Verdict::fail);
  CHECK_THAT(r.worst_detail, Contains("the recipe failed: device on fire"));
  CHECK(report.correct_failing() == std::vector<std::string>{"throws"});
  CHECK(report.exit_code() == ExitCode::property_failed);
}

TEST_CASE("a trace a property cannot judge fails its case instead of crashing the run", "[runner]") {
  const PropertyOf refusing("refusing", "throws on every trace", [](const Scenario&) { return true; },
                            [](const CaseContext&) -> CaseVerdict { throw std::invalid_argument("17 values, 3 expected"); });
  const testing::Fp32Recipe correct;
  const auto report = run_properties({&refusing}, {&correct}, scenarios(), options(2, 1));
  const auto& r = row(report, "refusing", correct.name());
  CHECK(r.verdict == Verdict::fail);
  CHECK_THAT(r.worst_detail, Contains("the trace could not be judged: 17 values, 3 expected"));
  CHECK(report.exit_code() == ExitCode::property_failed);
}

TEST_CASE("rows no case applies to are skipped", "[runner]") {
  const Harness h;
  const testing::UnsupportedRecipe unsupported;
  const auto report = run_properties(h.properties(), {&unsupported}, scenarios(), options(3, 1));
  for (const auto& r : report.rows) CHECK(r.verdict == Verdict::skip);
  CHECK(report.exit_code() == ExitCode::ok);
}

TEST_CASE("the filter keeps matching properties or recipes, and refuses to match nothing", "[runner]") {
  const Harness h;
  const testing::Fp32Recipe correct;
  const auto report = run_properties(h.properties(), {&correct}, scenarios(), options(2, 1, "gradient"));
  REQUIRE(report.rows.size() == 1);
  CHECK(report.rows[0].property == "gradient-equivalence");
  CHECK_THROWS_AS(run_properties(h.properties(), {&correct}, scenarios(), options(2, 1, "no-such")),
                  UsageError);
  CHECK_THROWS_AS(run_properties(h.properties(), {&correct}, scenarios(), options(0, 1)), UsageError);
}

TEST_CASE("the same seed gives the same report", "[runner]") {
  const Harness h;
  const testing::Fp32Recipe correct;
  const testing::Fp32ForgottenScaling forgotten;
  const auto a = run_properties(h.properties(), {&correct, &forgotten}, scenarios(), options(8, 42));
  const auto b = run_properties(h.properties(), {&correct, &forgotten}, scenarios(), options(8, 42));
  CHECK(to_json(a).dump() == to_json(b).dump());
  const auto c = run_properties(h.properties(), {&correct, &forgotten}, scenarios(), options(8, 43));
  CHECK(to_json(a).dump() != to_json(c).dump());
}

TEST_CASE("one scenario is judged as it is, without shrinking", "[runner]") {
  const Harness h;
  const testing::Fp32Recipe correct;
  const testing::Fp32ForgottenScaling forgotten;
  const auto report = run_scenario(h.properties(), {&correct, &forgotten}, testing::mlp_scenario());
  CHECK(row(report, "step-equivalence", "fp32-accumulate").verdict == Verdict::pass);
  const auto& caught = row(report, "gradient-equivalence", "fp32-forgotten-scaling");
  CHECK(caught.verdict == Verdict::fail);
  REQUIRE(caught.counterexample.has_value());
  CHECK(caught.counterexample->shrinks == 0);
  CHECK(to_json_text(caught.counterexample->scenario) == to_json_text(testing::mlp_scenario()));
}

namespace {

/// A property that documents a non-equivalence on every case: it always fails, as expected.
class AlwaysDocumentedDeviation final : public Property {
 public:
  std::string name() const override { return "documented-deviation"; }
  std::string claim() const override { return "always deviates, as documented"; }
  bool applies_to(const Scenario&) const override { return true; }
  CaseVerdict check(const CaseContext&) const override { return {42.0, "deviates as documented", true}; }
};

}  // namespace

TEST_CASE("a documented deviation is an expected failure for correct recipes and catches pitfalls", "[runner]") {
  const AlwaysDocumentedDeviation documented;
  const testing::Fp32Recipe correct;
  const testing::Fp32DisguisedAsPitfall pitfall;
  const auto report = run_properties({&documented}, {&correct, &pitfall}, scenarios(), options(5, 2));
  CHECK(row(report, "documented-deviation", "fp32-accumulate").verdict == Verdict::expected_fail);
  CHECK(row(report, "documented-deviation", "fp32-not-really-broken").verdict == Verdict::expected_fail);
  CHECK_FALSE(row(report, "documented-deviation", "fp32-accumulate").counterexample.has_value());
  CHECK(row(report, "documented-deviation", "fp32-not-really-broken").counterexample.has_value());
  CHECK(report.correct_failing().empty());
  CHECK(report.pitfalls_escaping().empty());
  CHECK(report.exit_code() == ExitCode::ok);
  const int judged = row(report, "documented-deviation", "fp32-accumulate").cases;
  CHECK(judged >= 3);  // of 5: BatchNorm on several ranks is not supported
  REQUIRE(report.case_ratios.at("fp32-accumulate").size() == static_cast<size_t>(judged));
  for (const auto& [index, ratio] : report.case_ratios.at("fp32-accumulate")) CHECK(ratio == 42.0);
}

TEST_CASE("under fp16 loss scaling a correct loop passes every property, and one that drops overflowing "
          "micro-batches is caught",
          "[runner]") {
  auto range = whole_zoo();
  range.precisions = {Precision::fp16};
  const auto gen = scenarios(range);
  // The generated loss scales overflow often: a good share of windows must be skipped.
  int windows = 0, skipped = 0;
  for (int i = 0; i < 40; ++i) {
    const auto trace = testing::Fp32Recipe().run(gen(rc::Random(900 + i), rc::kNominalSize).value());
    windows += static_cast<int>(trace.steps.size());
    for (const auto& step : trace.steps) skipped += step.skipped;
  }
  INFO(skipped << " of " << windows << " windows skipped");
  CHECK(skipped * 5 >= windows);
  CHECK(skipped * 5 <= 4 * windows);

  const auto properties = all_properties();
  std::vector<const Property*> all;
  for (const auto& p : properties) all.push_back(p.get());
  const testing::Fp32Recipe correct;
  const testing::Fp32DropOverflowingMicroBatch dropping;
  const auto report = run_properties(all, {&correct, &dropping}, gen, options(40, 11));
  for (const auto& r : report.rows) {
    INFO(r.property << " / " << r.recipe << ": " << r.worst_detail);
    if (r.recipe == correct.name()) {
      CHECK(r.verdict != Verdict::fail);  // pass, expected_fail, or skip (no BatchNorm case drawn)
      if (r.verdict == Verdict::pass) CHECK(r.worst_ratio <= 0.5);
    }
  }
  const auto& caught = row(report, "mixed-precision", dropping.name());
  INFO(caught.worst_detail);
  CHECK(caught.verdict == Verdict::fail);
  CHECK(std::isinf(caught.worst_ratio));
}

TEST_CASE("a generated case that diverges is counted and not judged, a given one is refused", "[runner]") {
  Scenario diverging = testing::linear_scenario();
  diverging.optimizer.lr = 1000.0;
  diverging.data.windows.assign(8, diverging.data.windows.front());
  diverging.steps = 8;
  const Harness h;
  const testing::Fp32Recipe correct;
  const auto report = run_properties(h.properties(), {&correct}, rc::gen::just(diverging), options(3, 1));
  CHECK(report.invalid_cases == 3);
  CHECK_THAT(report.first_invalid, Contains("case 0: invalid case: the large-batch trajectory diverges"));
  for (const auto& r : report.rows) CHECK(r.verdict == Verdict::skip);
  CHECK(report.exit_code() == ExitCode::ok);
  std::ostringstream table;
  print_table(table, report);
  CHECK_THAT(table.str(), Contains("3 generated cases not judged, the large-batch trajectory diverging"));
  CHECK(to_json(report)["summary"]["invalid_cases"] == 3);
  CHECK_THROWS_AS(run_scenario(h.properties(), {&correct}, diverging), InvalidCase);
}
