// The mutation matrix: every correct recipe passes every property, every pitfall is caught by at
// least one property with ratio >= 10 (DESIGN.md, property 11).

#include <map>

#include <catch2/catch.hpp>

#include "implementations/registry.h"
#include "properties/generators.h"
#include "properties/runner.h"

using namespace gacc;

TEST_CASE("every correct recipe passes and every pitfall is caught by a wide margin", "[mutation]") {
  const auto owned_properties = properties::all_properties();
  const auto owned_recipes = all_recipes();
  std::vector<const properties::Property*> props;
  for (const auto& p : owned_properties) props.push_back(p.get());
  std::vector<const Recipe*> recipes;
  for (const auto& r : owned_recipes) recipes.push_back(r.get());

  properties::RunOptions options;
  options.cases = 60;
  options.seed = 977;  // not the CLI's default seed
  const auto report = properties::run_properties(props, recipes, properties::scenarios(), options);

  std::map<std::string, double> pitfall_ratio;
  for (const auto& row : report.rows) {
    INFO(row.property << " / " << row.recipe << ": " << row.worst_detail);
    if (row.kind == RecipeKind::correct) {
      CHECK(row.verdict == properties::Verdict::pass);
      CHECK(row.worst_ratio <= 0.5);
    } else if (row.verdict == properties::Verdict::fail) {
      pitfall_ratio[row.recipe] = std::max(pitfall_ratio[row.recipe], row.worst_ratio);
    }
  }
  for (const auto* recipe : recipes) {
    if (recipe->kind() != RecipeKind::pitfall) continue;
    INFO(recipe->name());
    CHECK(!recipe->reference().empty());
    REQUIRE(pitfall_ratio.count(recipe->name()) == 1);
    CHECK(pitfall_ratio[recipe->name()] >= 10);
  }
  CHECK(report.exit_code() == ExitCode::ok);
}

TEST_CASE("the known pitfalls are caught by gradient equivalence", "[mutation]") {
  const auto owned_properties = properties::all_properties();
  const auto owned_recipes = all_recipes();
  for (const auto& recipe : owned_recipes) {
    if (recipe->kind() != RecipeKind::pitfall) continue;
    properties::RunOptions options;
    options.cases = 20;
    options.seed = 4242;
    options.filter = "gradient-equivalence";
    const auto report = properties::run_properties({owned_properties[0].get()}, {recipe.get()},
                                                   properties::scenarios(), options);
    REQUIRE(report.rows.size() == 1);
    INFO(recipe->name());
    CHECK(report.rows[0].verdict == properties::Verdict::fail);
    REQUIRE(report.rows[0].counterexample.has_value());
    CHECK(report.rows[0].counterexample->scenario.accumulation_steps == 2);
  }
}
