#include <limits>
#include <sstream>

#include <catch2/catch.hpp>

#include "properties/report.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::properties;
using Catch::Matchers::Contains;

namespace {

/// A report with one passing correct row, one caught pitfall, one failing correct row, one skip, and
/// one row that applied but could not look (not judged).
RunReport sample_report() {
  RunReport report;
  report.seed = 9;
  report.cases = 4;
  ResultRow pass{"gradient-equivalence", "good", RecipeKind::correct, Verdict::pass, 4, 3, 40, 2, 0.01, "fine", {}};
  ResultRow caught{"gradient-equivalence", "bug", RecipeKind::pitfall, Verdict::fail, 4, 4, 40, 0, 1e5, "way off", {}};
  caught.counterexample = Counterexample{testing::linear_scenario(), 2e4, "step 0 grad", 3, 1, 77};
  ResultRow broken{"step-equivalence", "good", RecipeKind::correct, Verdict::fail, 4, 4, 4,
                   0, std::numeric_limits<double>::infinity(), "took 3 steps <&>", {}};
  broken.counterexample = Counterexample{testing::linear_scenario(), std::numeric_limits<double>::infinity(),
                                         "took 3 steps", 0, 2, 78};
  ResultRow skipped{"step-equivalence", "bug", RecipeKind::pitfall, Verdict::skip, 0, 0, 0, 0, 0.0, "", {}};
  ResultRow vacuous{"mixed-precision", "good", RecipeKind::correct, Verdict::not_judged, 2, 0, 10, 3, 0.0,
                    "step 0 grad: ... [not judged: 3 of 10 checks could not see an error the size of the value]", {}};
  pass.worst_case = 2;
  report.rows = {pass, caught, broken, skipped, vacuous};
  report.cells = {"linear x mean x fp32", "causal_lm x token_mean x bf16"};
  report.coverage["mixed-precision"].cells["causal_lm x token_mean x bf16"] = {2, 0};
  report.coverage["gradient-equivalence"].cells["linear x mean x fp32"] = {4, 4};
  report.coverage["gradient-equivalence"].triggers["partial last window"] = {2, 2};
  return report;
}

}  // namespace

TEST_CASE("the JSON report has the documented shape", "[report]") {
  const auto json = to_json(sample_report());
  CHECK(json.at("seed") == 9);
  CHECK(json.contains("version"));
  const auto& results = json.at("results");
  REQUIRE(results.size() == 5);
  for (const char* key : {"property", "recipe", "recipe_kind", "verdict", "cases", "cases_judged", "checks",
                          "checks_not_judged", "worst_ratio", "counterexample"}) {
    CHECK(results[0].contains(key));
  }
  CHECK(results[1].at("recipe_kind") == "pitfall");
  CHECK(results[1].at("verdict") == "fail");
  CHECK(results[1].at("counterexample").at("reproduce").get<std::string>().rfind("gacc repro '", 0) == 0);
  CHECK(results[2].at("worst_ratio").is_null());  // a structural failure: no finite ratio
  CHECK(results[0].at("counterexample").is_null());
  CHECK(results[0].at("worst_case") == 2);
  CHECK(results[1].at("worst_case").is_null());
  const auto& summary = json.at("summary");
  CHECK(summary.at("pass") == 1);
  CHECK(summary.at("fail") == 2);
  CHECK(summary.at("skip") == 1);
  CHECK(summary.at("expected_fail") == 0);
  CHECK(summary.at("not_judged") == 1);
  CHECK(summary.at("checks") == 94);
  CHECK(summary.at("checks_not_judged") == 5);
  CHECK(results[4].at("verdict") == "not_judged");
  CHECK(results[0].at("cases_judged") == 3);
  CHECK(json.at("coverage").at("mixed-precision").at("cells").at("causal_lm x token_mean x bf16").at("judged") == 0);
  const auto warnings = json.at("coverage_warnings");
  REQUIRE(warnings.size() == 1);  // every cell drawn; one applied but never judged
  CHECK_THAT(warnings[0].get<std::string>(), Contains("mixed-precision applied to causal_lm x token_mean x bf16 in 2 cases and judged none"));
  CHECK(summary.at("correct_failing") == nlohmann::json::array({"good"}));
  CHECK(summary.at("pitfalls_escaping").empty());
}

TEST_CASE("the JSON report lists each case's verdicts where the run recorded them, and a shrink cut short",
          "[report]") {
  auto report = sample_report();
  CHECK_FALSE(to_json(report).contains("case_verdicts"));  // gacc run: thousands of cases times every recipe
  report.records_case_verdicts = true;
  report.case_verdicts.push_back({2, "linear x mean x fp32", {"partial last window"},
                                  {{"gradient-equivalence", "good", "pass", 0.01}, {"gradient-equivalence", "bug", "fail", 1e5}}});
  report.rows[1].counterexample->budget_ended = true;
  const auto json = to_json(report);
  REQUIRE(json.at("case_verdicts").size() == 1);
  const auto& c = json.at("case_verdicts")[0];
  CHECK(c.at("case") == 2);
  CHECK(c.at("cell") == "linear x mean x fp32");
  CHECK(c.at("triggers") == nlohmann::json::array({"partial last window"}));
  CHECK(c.at("checks")[1].at("verdict") == "fail");
  CHECK(c.at("checks")[1].at("recipe") == "bug");
  CHECK(c.at("checks")[0].at("ratio") == 0.01);
  CHECK(json.at("results")[1].at("counterexample").at("shrink_budget_ended") == true);
  CHECK(json.at("results")[2].at("counterexample").at("shrink_budget_ended") == false);
  std::ostringstream table;
  print_table(table, report, {true, true});
  CHECK_THAT(table.str(), Contains("stopped by the shrink budget (--shrinks): a smaller counterexample may exist"));
}

TEST_CASE("JUnit fails exactly the unexpected rows and escapes XML", "[report]") {
  const std::string xml = to_junit(sample_report());
  CHECK_THAT(xml, Contains("<testsuites name=\"gacc\" tests=\"5\" failures=\"1\" skipped=\"2\">"));
  CHECK_THAT(xml, Contains("not judged: in every case a check could not see an error the size of the value"));
  CHECK_THAT(xml, Contains("<testsuite name=\"step-equivalence\" tests=\"2\" failures=\"1\""));
  CHECK_THAT(xml, Contains("correct recipe failed: took 3 steps &lt;&amp;&gt;"));
  CHECK_THAT(xml, Contains("<skipped"));
  CHECK(xml.find("<&>") == std::string::npos);
}

TEST_CASE("the table names what went wrong and how to reproduce it", "[report]") {
  std::ostringstream out;
  print_table(out, sample_report());
  const std::string text = out.str();
  CHECK_THAT(text, Contains("property") && Contains("worst ratio"));
  CHECK_THAT(text, Contains("caught"));
  CHECK_THAT(text, Contains("UNEXPECTED: step-equivalence on good"));
  CHECK_THAT(text, Contains("gacc repro '"));
  CHECK_THAT(text, Contains("correct recipe failing: good"));
  CHECK(text.find("UNEXPECTED: gradient-equivalence on bug") == std::string::npos);
  CHECK_THAT(text, Contains("not judged"));
  CHECK_THAT(text, Contains("checks: 89 of 94 judged"));
  CHECK_THAT(text, Contains("gradient-equivalence: 1/1 cells (of 2); partial last window 2/2"));
  CHECK_THAT(text, Contains("warning: mixed-precision applied to causal_lm x token_mean x bf16"));
  // A caught pitfall is not a failure: the summary counts correct recipes' and pitfalls' rows apart,
  // and the row that applied to no case is left out of the table (--all lists it).
  CHECK_THAT(text, Contains("summary: correct recipes' rows 1 pass, 1 fail, 1 not judged; pitfalls' rows 1 caught; "
                            "1 not applicable; seed 9, 4 cases"));
  CHECK_THAT(text, Contains("(1 row not applicable (applied to no case), not shown: --all lists it)"));
  CHECK(text.find(" n/a ") == std::string::npos);
  std::ostringstream all_rows;
  print_table(all_rows, sample_report(), {false, true});
  CHECK_THAT(all_rows.str(), Contains(" n/a "));
  CHECK(all_rows.str().find("not shown") == std::string::npos);
  // Details name the case that showed each row's worst ratio (`gacc repro --case N`).
  std::ostringstream details;
  print_table(details, sample_report(), {true, true});
  CHECK_THAT(details.str(), Contains(" n/a "));
  CHECK_THAT(details.str(), Contains("gradient-equivalence on good (correct, pass)\n  worst (case 2): fine"));
}
