#include <limits>
#include <sstream>

#include <catch2/catch.hpp>

#include "properties/report.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::properties;
using Catch::Matchers::Contains;

namespace {

/// A report with one passing correct row, one caught pitfall, one failing correct row, one skip.
RunReport sample_report() {
  RunReport report;
  report.seed = 9;
  report.cases = 4;
  ResultRow pass{"gradient-equivalence", "good", RecipeKind::correct, Verdict::pass, 4, 0.01, "fine", {}};
  ResultRow caught{"gradient-equivalence", "bug", RecipeKind::pitfall, Verdict::fail, 4, 1e5, "way off", {}};
  caught.counterexample = Counterexample{testing::linear_scenario(), 2e4, "step 0 grad", 3, 1, 77};
  ResultRow broken{"step-equivalence", "good", RecipeKind::correct, Verdict::fail, 4,
                   std::numeric_limits<double>::infinity(), "took 3 steps <&>", {}};
  broken.counterexample = Counterexample{testing::linear_scenario(), std::numeric_limits<double>::infinity(),
                                         "took 3 steps", 0, 2, 78};
  ResultRow skipped{"step-equivalence", "bug", RecipeKind::pitfall, Verdict::skip, 0, 0.0, "", {}};
  report.rows = {pass, caught, broken, skipped};
  return report;
}

}  // namespace

TEST_CASE("the JSON report has the documented shape", "[report]") {
  const auto json = to_json(sample_report());
  CHECK(json.at("seed") == 9);
  CHECK(json.contains("version"));
  const auto& results = json.at("results");
  REQUIRE(results.size() == 4);
  for (const char* key : {"property", "recipe", "recipe_kind", "verdict", "cases", "worst_ratio", "counterexample"}) {
    CHECK(results[0].contains(key));
  }
  CHECK(results[1].at("recipe_kind") == "pitfall");
  CHECK(results[1].at("verdict") == "fail");
  CHECK(results[1].at("counterexample").at("reproduce").get<std::string>().rfind("gacc repro '", 0) == 0);
  CHECK(results[2].at("worst_ratio").is_null());  // a structural failure: no finite ratio
  CHECK(results[0].at("counterexample").is_null());
  const auto& summary = json.at("summary");
  CHECK(summary.at("pass") == 1);
  CHECK(summary.at("fail") == 2);
  CHECK(summary.at("skip") == 1);
  CHECK(summary.at("expected_fail") == 0);
  CHECK(summary.at("correct_failing") == nlohmann::json::array({"good"}));
  CHECK(summary.at("pitfalls_escaping").empty());
}

TEST_CASE("JUnit fails exactly the unexpected rows and escapes XML", "[report]") {
  const std::string xml = to_junit(sample_report());
  CHECK_THAT(xml, Contains("<testsuites name=\"gacc\" tests=\"4\" failures=\"1\" skipped=\"1\">"));
  CHECK_THAT(xml, Contains("<testsuite name=\"step-equivalence\" tests=\"2\" failures=\"1\""));
  CHECK_THAT(xml, Contains("correct recipe failed: took 3 steps &lt;&amp;&gt;"));
  CHECK_THAT(xml, Contains("<skipped"));
  CHECK(xml.find("<&>") == std::string::npos);
}

TEST_CASE("the table names what went wrong and how to reproduce it", "[report]") {
  std::ostringstream out;
  print_table(out, sample_report(), false);
  const std::string text = out.str();
  CHECK_THAT(text, Contains("property") && Contains("worst ratio"));
  CHECK_THAT(text, Contains("caught"));
  CHECK_THAT(text, Contains("UNEXPECTED: step-equivalence on good"));
  CHECK_THAT(text, Contains("gacc repro '"));
  CHECK_THAT(text, Contains("correct recipe failing: good"));
  CHECK(text.find("UNEXPECTED: gradient-equivalence on bug") == std::string::npos);
}
