#include "properties/runner.h"

#include <limits>
#include <memory>
#include <optional>

#include "fixtures/random.h"

namespace gacc::properties {
namespace {

struct RecipeOutcome {
  std::optional<Trace> trace;
  std::string error;
};

RecipeOutcome run_recipe(const Recipe& recipe, const Scenario& scenario) {
  try {
    return {recipe.run(scenario), {}};
  } catch (const std::exception& e) {
    return {std::nullopt, e.what()};
  }
}

CaseVerdict judge(const Property& property, const reference::Oracle& oracle, const RecipeOutcome& outcome) {
  if (!outcome.trace) {
    return {std::numeric_limits<double>::infinity(), "the recipe failed: " + outcome.error};
  }
  return property.check(oracle, *outcome.trace);
}

bool matches(const std::string& filter, const Property& p, const Recipe& r) {
  return filter.empty() || p.name().find(filter) != std::string::npos ||
         r.name().find(filter) != std::string::npos;
}

/// One (property, recipe) pair while cases run.
struct Cell {
  const Property* property;
  const Recipe* recipe;
  ResultRow row;
  std::optional<rc::Shrinkable<Scenario>> failure;
  CaseVerdict failure_verdict;
  int failure_index = 0;
  uint64_t failure_seed = 0;
};

void record(Cell& cell, const CaseVerdict& verdict) {
  auto& row = cell.row;
  if (row.cases == 0 || !(verdict.ratio <= row.worst_ratio)) {
    row.worst_ratio = verdict.ratio;
    row.worst_detail = verdict.detail;
  }
  ++row.cases;
}

bool judgeable(const Cell& cell, const Scenario& scenario) {
  return cell.property->applies_to(scenario) && cell.recipe->supports(scenario);
}

Counterexample shrink(const Cell& cell, int max_evaluations) {
  rc::Shrinkable<Scenario> current = *cell.failure;
  Counterexample best{current.value(), cell.failure_verdict.ratio, cell.failure_verdict.detail, 0,
                      cell.failure_index, cell.failure_seed};
  int evaluations = 0;
  bool progressed = true;
  while (progressed && evaluations < max_evaluations) {
    progressed = false;
    auto candidates = current.shrinks();
    while (auto candidate = candidates.next()) {
      if (evaluations >= max_evaluations) break;
      const Scenario scenario = (*candidate).value();
      if (!judgeable(cell, scenario)) continue;
      ++evaluations;
      const reference::Oracle oracle(scenario);
      const auto verdict = judge(*cell.property, oracle, run_recipe(*cell.recipe, scenario));
      if (verdict.ratio >= 1.0) {
        current = *candidate;
        best.scenario = scenario;
        best.ratio = verdict.ratio;
        best.detail = verdict.detail;
        ++best.shrinks;
        progressed = true;
        break;
      }
    }
  }
  return best;
}

Verdict final_verdict(const ResultRow& row, bool failed) {
  if (row.cases == 0) return Verdict::skip;
  return failed ? Verdict::fail : Verdict::pass;
}

std::vector<Cell> make_cells(const std::vector<const Property*>& properties,
                             const std::vector<const Recipe*>& recipes, const std::string& filter) {
  std::vector<Cell> cells;
  for (const auto* p : properties) {
    for (const auto* r : recipes) {
      if (!matches(filter, *p, *r)) continue;
      Cell cell{p, r, {}, std::nullopt, {}, 0, 0};
      cell.row.property = p->name();
      cell.row.recipe = r->name();
      cell.row.kind = r->kind();
      cells.push_back(std::move(cell));
    }
  }
  if (cells.empty()) {
    throw UsageError("--filter \"" + filter + "\" matches no property and no recipe (see `gacc list`)");
  }
  return cells;
}

/// Judges every applicable cell on one scenario: one oracle, one run per recipe.
void judge_case(std::vector<Cell>& cells, const rc::Shrinkable<Scenario>& shrinkable, int index,
                uint64_t seed) {
  const Scenario scenario = shrinkable.value();
  std::vector<Cell*> applicable;
  for (auto& cell : cells) {
    if (judgeable(cell, scenario)) applicable.push_back(&cell);
  }
  if (applicable.empty()) return;
  const reference::Oracle oracle(scenario);
  std::vector<std::pair<const Recipe*, RecipeOutcome>> outcomes;
  for (auto* cell : applicable) {
    const RecipeOutcome* outcome = nullptr;
    for (const auto& done : outcomes) {
      if (done.first == cell->recipe) outcome = &done.second;
    }
    if (!outcome) {
      outcomes.emplace_back(cell->recipe, run_recipe(*cell->recipe, scenario));
      outcome = &outcomes.back().second;
    }
    const auto verdict = judge(*cell->property, oracle, *outcome);
    record(*cell, verdict);
    if (verdict.ratio >= 1.0 && !cell->failure) {
      cell->failure = shrinkable;
      cell->failure_verdict = verdict;
      cell->failure_index = index;
      cell->failure_seed = seed;
    }
  }
}

RunReport finish(std::vector<Cell>& cells, uint64_t seed, int cases, int max_shrink_evaluations) {
  RunReport report;
  report.seed = seed;
  report.cases = cases;
  for (auto& cell : cells) {
    cell.row.verdict = final_verdict(cell.row, cell.failure.has_value());
    if (cell.failure) cell.row.counterexample = shrink(cell, max_shrink_evaluations);
    report.rows.push_back(std::move(cell.row));
  }
  return report;
}

}  // namespace

std::string to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::pass: return "pass";
    case Verdict::fail: return "fail";
    case Verdict::expected_fail: return "expected_fail";
    case Verdict::skip: return "skip";
  }
  return "?";
}

int RunReport::count(Verdict verdict) const {
  int n = 0;
  for (const auto& row : rows) n += row.verdict == verdict;
  return n;
}

std::vector<std::string> RunReport::correct_failing() const {
  std::vector<std::string> names;
  for (const auto& row : rows) {
    if (row.kind == RecipeKind::correct && row.verdict == Verdict::fail) {
      bool seen = false;
      for (const auto& n : names) seen = seen || n == row.recipe;
      if (!seen) names.push_back(row.recipe);
    }
  }
  return names;
}

std::vector<std::string> RunReport::pitfalls_escaping() const {
  std::vector<std::string> names;
  for (const auto& row : rows) {
    if (row.kind != RecipeKind::pitfall) continue;
    bool caught = false, seen = false;
    for (const auto& other : rows) {
      caught = caught || (other.recipe == row.recipe && other.verdict == Verdict::fail);
    }
    for (const auto& n : names) seen = seen || n == row.recipe;
    if (!caught && !seen) names.push_back(row.recipe);
  }
  return names;
}

ExitCode RunReport::exit_code() const {
  return correct_failing().empty() && pitfalls_escaping().empty() ? ExitCode::ok
                                                                  : ExitCode::property_failed;
}

uint64_t case_seed(uint64_t seed, int index) {
  return fixtures::mix64(seed ^ fixtures::mix64(static_cast<uint64_t>(index) + 1));
}

RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const rc::Gen<Scenario>& generator,
                         const RunOptions& options) {
  if (options.cases < 1) throw UsageError("--cases must be at least 1, got " + std::to_string(options.cases));
  auto cells = make_cells(properties, recipes, options.filter);
  for (int i = 0; i < options.cases; ++i) {
    const uint64_t seed = case_seed(options.seed, i);
    judge_case(cells, generator(rc::Random(seed), rc::kNominalSize), i, seed);
    if (options.progress) options.progress(i + 1, options.cases);
  }
  return finish(cells, options.seed, options.cases, options.max_shrink_evaluations);
}

RunReport run_scenario(const std::vector<const Property*>& properties,
                       const std::vector<const Recipe*>& recipes, const Scenario& scenario) {
  auto cells = make_cells(properties, recipes, "");
  judge_case(cells, rc::Shrinkable<Scenario>(rc::shrinkable::just(scenario)), 0, 0);
  return finish(cells, 0, 1, 0);
}

std::string reproduce_line(const Counterexample& c, uint64_t run_seed) {
  return "gacc repro '" + to_json_text(c.scenario) + "'   # shrunk from case " +
         std::to_string(c.case_index) + " of --seed " + std::to_string(run_seed);
}

}  // namespace gacc::properties
