#include "properties/runner.h"

#include "properties/shrinking.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "core/errors.h"
#include "core/interrupt.h"
#include "properties/diagnosis.h"
#include "fixtures/fixtures.h"
#include "fixtures/random.h"

namespace gacc::properties {
namespace {

struct RecipeOutcome {
  std::optional<Trace> trace;
  std::string error;
};

RecipeOutcome run_recipe(const Recipe& recipe, const Scenario& scenario) {
  check_interrupted();
  try {
    return {recipe.run(scenario), {}};
  } catch (const Error&) {
    // Not the recipe's numbers but the run: a dead or hung rank, a failing external command (exit
    // 4), an external result that does not read (exit 3), an interrupt. The run cannot go on.
    throw;
  } catch (const std::exception& e) {
    // LibTorch appends a C++ backtrace (addresses that change run to run) to its messages: the
    // report keeps the message, so that the same seed gives the same report.
    std::string message = e.what();
    if (const auto at = message.find("\nException raised from "); at != std::string::npos) message.resize(at);
    return {std::nullopt, message};
  }
}

CaseVerdict judge(const Property& property, const Recipe& recipe, const reference::Oracle& oracle,
                  const RecipeOutcome& outcome) {
  if (!outcome.trace) {
    return {std::numeric_limits<double>::infinity(), "the recipe failed: " + outcome.error, false};
  }
  const CaseContext context{oracle, *outcome.trace, [&recipe](const Scenario& s) { return recipe.run(s); }};
  try {
    CaseVerdict verdict = property.check(context);
    if (!(verdict.ratio < 1.0)) verdict.diagnosis = diagnose(oracle, *outcome.trace);
    return verdict;
  } catch (const Error&) {
    throw;  // as in run_recipe
  } catch (const std::exception& e) {
    // A trace the property cannot even compare (a shape the structure checks did not foresee) is
    // a failure of the recipe's output, reported, not a crash of the whole run.
    return {std::numeric_limits<double>::infinity(), "the trace could not be judged: " + std::string(e.what()), false};
  }
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
  std::optional<rc::Shrinkable<Scenario>> failure;  ///< the first case that shows
  CaseVerdict failure_verdict;
  int failure_index = 0;
  uint64_t failure_seed = 0;
};

bool judgeable(const Cell& cell, const Scenario& scenario) {
  return cell.property->applies_to(scenario) && cell.recipe->supports(scenario);
}

/// The cell's verdict on `scenario`, or nothing where the cell cannot judge it (the property does
/// not apply, the recipe does not support it, or the large batch diverges there).
std::optional<CaseVerdict> judge_scenario(const Cell& cell, const Scenario& scenario) {
  if (!judgeable(cell, scenario)) return std::nullopt;
  std::optional<reference::Oracle> oracle;
  try {
    oracle.emplace(scenario);
  } catch (const InvalidCase&) {
    return std::nullopt;  // a diverging scenario shows nothing about accumulation
  }
  return judge(*cell.property, *cell.recipe, *oracle, run_recipe(*cell.recipe, scenario));
}

/// A counterexample and the shrink tree it sits at.
struct Shrunk {
  Counterexample counterexample;
  rc::Shrinkable<Scenario> at;
};

/// The cell's failure, shrunk (Note [shrinking]).
Shrunk shrink(const Cell& cell, int max_evaluations) {
  const Counterexample found{cell.failure->value(), cell.failure_verdict.ratio, cell.failure_verdict.detail, 0,
                             cell.failure_index, cell.failure_seed, cell.failure_verdict.diagnosis};
  if (max_evaluations == 0) return {found, *cell.failure};  // kept as generated, on purpose: no budget ended
  auto shrunk = shrink_greedily(
      *cell.failure, found, max_evaluations, ShrinkTreeCandidates{},
      [&](const rc::Shrinkable<Scenario>& candidate) -> ShrinkAttempt<Counterexample> {
        const Scenario scenario = candidate.value();
        if (!judgeable(cell, scenario)) return {};
        const auto verdict = judge_scenario(cell, scenario);
        if (!verdict || !shows(*verdict, cell.recipe->kind())) return {true, std::nullopt};
        Counterexample smaller = found;
        smaller.scenario = scenario;
        smaller.ratio = verdict->ratio;
        smaller.detail = verdict->detail;
        smaller.diagnosis = verdict->diagnosis;
        return {true, smaller};
      });
  shrunk.finding.shrinks = shrunk.accepted;
  shrunk.finding.budget_ended = shrunk.budget_ended;
  return {std::move(shrunk.finding), std::move(shrunk.point)};
}

/// Another row's shrunk counterexample of the same recipe, where it shows this cell's failure too
/// (one evaluation instead of a shrink: the rows of a recipe mostly fail for one cause).
std::optional<Counterexample> reuse(const Cell& cell, const std::vector<std::pair<const Recipe*, Shrunk>>& shrunk) {
  for (const auto& [recipe, earlier] : shrunk) {
    if (recipe != cell.recipe) continue;
    const auto verdict = judge_scenario(cell, earlier.counterexample.scenario);
    if (!verdict || !shows(*verdict, cell.recipe->kind())) continue;
    Counterexample counterexample = earlier.counterexample;
    counterexample.ratio = verdict->ratio;
    counterexample.detail = verdict->detail;
    counterexample.diagnosis = verdict->diagnosis;
    return counterexample;
  }
  return std::nullopt;
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

/// Judges every applicable cell on one scenario: one oracle, one run per recipe. Returns, per
/// recipe judged, the largest ratio any property found. A generated scenario on which equivalence
/// cannot be judged (InvalidCase) is counted in `report` and skipped; a given one throws.
std::vector<std::pair<std::string, double>> judge_case(std::vector<Cell>& cells,
                                                       const rc::Shrinkable<Scenario>& shrinkable, int index,
                                                       uint64_t seed, RunReport& report, bool generated,
                                                       ScenarioOutcomes* kept = nullptr) {
  const Scenario scenario = shrinkable.value();
  std::vector<Cell*> applicable;
  for (auto& cell : cells) {
    if (judgeable(cell, scenario)) applicable.push_back(&cell);
  }
  std::vector<std::pair<std::string, double>> best;
  if (applicable.empty()) return best;
  std::unique_ptr<reference::Oracle> valid_oracle;
  try {
    valid_oracle = std::make_unique<reference::Oracle>(scenario);
  } catch (const InvalidCase& e) {
    if (!generated) throw;
    if (report.invalid_cases++ == 0) report.first_invalid = "case " + std::to_string(index) + ": " + e.what();
    return best;
  }
  const reference::Oracle& oracle = *valid_oracle;
  const std::string stratum_cell = cell_of(scenario);
  const auto triggers = triggers_of(scenario, oracle);
  std::map<std::string, bool> property_judged;  // per property: judged on some recipe
  std::vector<std::pair<const Recipe*, RecipeOutcome>> outcomes;
  CaseVerdicts* recorded = nullptr;
  if (report.records_case_verdicts) {
    recorded = &report.case_verdicts.emplace_back();
    recorded->index = index;
    recorded->cell = stratum_cell;
    recorded->triggers = triggers;
  }
  for (auto* cell : applicable) {
    const RecipeOutcome* outcome = nullptr;
    for (const auto& done : outcomes) {
      if (done.first == cell->recipe) outcome = &done.second;
    }
    if (!outcome) {
      outcomes.emplace_back(cell->recipe, run_recipe(*cell->recipe, scenario));
      outcome = &outcomes.back().second;
    }
    const auto verdict = judge(*cell->property, *cell->recipe, oracle, *outcome);
    add_case(cell->row, verdict, generated ? index : -1);
    property_judged[cell->property->name()] |= verdict.judged();
    if (recorded) {
      const char* text = !verdict.judged()                      ? "not judged"
                         : !shows(verdict, cell->recipe->kind()) ? (verdict.ratio < 1.0 ? "pass" : "expected-fail")
                                                                 : "fail";
      recorded->checks.push_back({cell->property->name(), cell->recipe->name(), text, verdict.ratio});
    }
    if (shows(verdict, cell->recipe->kind()) && !cell->failure) {
      cell->failure = shrinkable;
      cell->failure_verdict = verdict;
      cell->failure_index = index;
      cell->failure_seed = seed;
    }
    auto it = std::find_if(best.begin(), best.end(),
                           [&](const auto& b) { return b.first == cell->recipe->name(); });
    if (it == best.end()) {
      best.emplace_back(cell->recipe->name(), verdict.ratio);
    } else if (!(verdict.ratio <= it->second)) {
      it->second = verdict.ratio;
    }
  }
  if (kept) {
    for (auto& [recipe, outcome] : outcomes) {
      kept->recipes.push_back({recipe->name(), std::move(outcome.trace), std::move(outcome.error)});
    }
    kept->oracle = std::move(valid_oracle);
  }
  for (const auto& [property, judged] : property_judged) {
    auto& coverage = report.coverage[property];
    ++coverage.cells[stratum_cell].cases;
    coverage.cells[stratum_cell].judged += judged;
    for (const auto& trigger : triggers) {
      ++coverage.triggers[trigger].cases;
      coverage.triggers[trigger].judged += judged;
    }
  }
  return best;
}

// A caught pitfall is shrunk once, on its first failing row; its other rows show the generated case
// that caught them (the pitfall's counterexample is one, whichever property caught it). A failing
// correct recipe's row takes an earlier row's shrunk counterexample where that one fails this row's
// property too (one evaluation: the rows mostly fail for one cause), and is shrunk itself otherwise.
RunReport finish(std::vector<Cell>& cells, RunReport report, int max_shrink_evaluations, bool every_pitfall_row) {
  std::vector<std::pair<const Recipe*, Shrunk>> shrunk;
  for (auto& cell : cells) {
    if (cell.failure) {
      const bool pitfall = cell.recipe->kind() == RecipeKind::pitfall;
      const bool first = std::none_of(shrunk.begin(), shrunk.end(), [&](const auto& s) { return s.first == cell.recipe; });
      if (pitfall && !every_pitfall_row && !first) {
        cell.row.counterexample = shrink(cell, 0).counterexample;  // the generated case that showed it
      } else if (auto earlier = pitfall || max_shrink_evaluations == 0 ? std::nullopt : reuse(cell, shrunk)) {
        cell.row.counterexample = std::move(earlier);
      } else {
        auto result = shrink(cell, max_shrink_evaluations);
        cell.row.counterexample = result.counterexample;
        shrunk.emplace_back(cell.recipe, std::move(result));
      }
    }
    report.rows.push_back(std::move(cell.row));
  }
  return report;
}

bool caught(Verdict verdict) { return verdict == Verdict::fail || verdict == Verdict::expected_fail; }

}  // namespace

bool shows(const CaseVerdict& verdict, RecipeKind kind) {
  return !(verdict.ratio < 1.0) && (!verdict.expected || kind == RecipeKind::pitfall);
}

void add_case(ResultRow& row, const CaseVerdict& verdict, int case_index) {
  if (row.cases == 0 || !(verdict.ratio <= row.worst_ratio)) {
    row.worst_ratio = verdict.ratio;
    row.worst_detail = verdict.detail;
    row.worst_case = case_index;
  }
  const bool showed_before = row.unexpected_failures > 0 || (row.kind == RecipeKind::pitfall && row.expected_failures > 0);
  if (shows(verdict, row.kind) && !showed_before) row.diagnosis = verdict.diagnosis;
  ++row.cases;
  row.cases_judged += verdict.judged();
  row.checks += verdict.checks;
  row.checks_not_judged += verdict.checks_not_judged;
  for (const auto& note : verdict.notes) ++row.notes[note];
  if (!(verdict.ratio < 1.0)) {
    const bool first = row.unexpected_failures + row.expected_failures == 0;
    if (first || !(verdict.ratio >= row.weakest_failure_ratio)) row.weakest_failure_ratio = verdict.ratio;
    ++(verdict.expected ? row.expected_failures : row.unexpected_failures);
  }
  row.verdict = verdict_of(row);
}

Verdict verdict_of(const ResultRow& row) {
  if (row.cases == 0) return Verdict::skip;
  if (row.unexpected_failures > 0) return Verdict::fail;
  if (row.expected_failures > 0) return Verdict::expected_fail;
  return row.cases_judged > 0 ? Verdict::pass : Verdict::not_judged;
}

std::string to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::pass:
      return "pass";
    case Verdict::fail:
      return "fail";
    case Verdict::expected_fail:
      return "expected_fail";
    case Verdict::skip:
      return "skip";
    case Verdict::not_judged:
      return "not_judged";
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
    if (row.kind == RecipeKind::correct && row.verdict == Verdict::fail &&
        std::find(names.begin(), names.end(), row.recipe) == names.end()) {
      names.push_back(row.recipe);
    }
  }
  return names;
}

std::vector<std::string> RunReport::pitfalls_escaping() const {
  std::vector<std::string> names;
  for (const auto& row : rows) {
    if (row.kind != RecipeKind::pitfall || std::find(names.begin(), names.end(), row.recipe) != names.end())
      continue;
    const bool is_caught = std::any_of(rows.begin(), rows.end(), [&](const ResultRow& other) {
      return other.recipe == row.recipe && caught(other.verdict);
    });
    if (!is_caught && judged(row.recipe)) names.push_back(row.recipe);
  }
  return names;
}

std::vector<std::string> RunReport::pitfalls_not_judged() const {
  std::vector<std::string> names;
  for (const auto& row : rows) {
    if (row.kind == RecipeKind::pitfall && !judged(row.recipe) &&
        std::find(names.begin(), names.end(), row.recipe) == names.end()) {
      names.push_back(row.recipe);
    }
  }
  return names;
}

bool RunReport::judged(const std::string& recipe) const {
  return std::any_of(rows.begin(), rows.end(),
                     [&](const ResultRow& row) { return row.recipe == recipe && row.cases_judged > 0; });
}

int RunReport::checks() const {
  int n = 0;
  for (const auto& row : rows) n += row.checks;
  return n;
}

int RunReport::checks_not_judged() const {
  int n = 0;
  for (const auto& row : rows) n += row.checks_not_judged;
  return n;
}

ExitCode RunReport::exit_code() const {
  return correct_failing().empty() && pitfalls_escaping().empty() ? ExitCode::ok : ExitCode::property_failed;
}

const std::vector<std::string>& trigger_names() {
  static const std::vector<std::string> names = {"active clipping", "partial last window",
                                                 "micro-batch without a counted token", "W > 1", "fp16 overflow"};
  return names;
}

std::vector<std::string> triggers_of(const Scenario& sc, const reference::Oracle& oracle) {
  const auto& names = trigger_names();
  std::vector<std::string> out;
  bool clipping = false, overflow = false;
  for (const auto& window : oracle.trajectory()) {
    if (sc.clipping.kind == ClippingKind::norm) clipping = clipping || window.norm > sc.clipping.max_norm;
    if (sc.clipping.kind == ClippingKind::value) {
      for (double g : window.grad) clipping = clipping || std::fabs(g) >= sc.clipping.clip_value;
    }
    overflow = overflow || window.overflow != reference::Overflow::none;
  }
  if (clipping) out.push_back(names[0]);
  if (window_examples(sc, sc.steps - 1) < sc.data.global_batch) out.push_back(names[1]);
  bool token_free = false;
  if (is_token_model(sc.model)) {
    for (int s = 0; s < sc.steps && !token_free; ++s) {
      for (int r = 0; r < sc.world_size && !token_free; ++r) {
        for (int k = 0; k < micro_batch_count(sc, s) && !token_free; ++k) {
          token_free = fixtures::micro_batch(sc, s, r, k).counted_targets() == 0;
        }
      }
    }
  }
  if (token_free) out.push_back(names[2]);
  if (sc.world_size >= 2) out.push_back(names[3]);
  if (overflow) out.push_back(names[4]);
  return out;
}

std::vector<std::string> RunReport::coverage_warnings() const {
  std::vector<std::string> out;
  std::vector<std::string> undrawn;
  for (const auto& cell : cells) {
    const bool drawn = std::any_of(coverage.begin(), coverage.end(),
                                   [&](const auto& entry) { return entry.second.cells.count(cell) > 0; });
    if (!drawn) undrawn.push_back(cell);
  }
  if (!undrawn.empty()) {
    std::string line = std::to_string(undrawn.size()) + " of " + std::to_string(cells.size()) +
                       " cells not drawn in these cases" +
                       (pass > 0 ? " (every cell is drawn in --cases " + std::to_string(pass) + " or more)" : "") + ":";
    for (const auto& cell : undrawn) line += " " + cell + ";";
    line.pop_back();
    out.push_back(line);
  }
  for (const auto& [property, covered] : coverage) {
    for (const auto* group : {&covered.cells, &covered.triggers}) {
      for (const auto& [name, c] : *group) {
        if (c.cases > 0 && c.judged == 0) {
          out.push_back(property + " applied to " + name + " in " + std::to_string(c.cases) + " case" +
                        (c.cases == 1 ? "" : "s") + " and judged none (Note [looked])");
        }
      }
    }
  }
  return out;
}

uint64_t case_seed(uint64_t seed, int index) {
  return fixtures::mix64(seed ^ fixtures::mix64(static_cast<uint64_t>(index) + 1));
}

rc::Shrinkable<Scenario> generated_case(const CaseGenerator& generator, uint64_t seed, int index) {
  return generator(index)(rc::Random(case_seed(seed, index)), rc::kNominalSize);
}

rc::Shrinkable<Scenario> generated_case(const rc::Gen<Scenario>& generator, uint64_t seed, int index) {
  return generator(rc::Random(case_seed(seed, index)), rc::kNominalSize);
}

RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const rc::Gen<Scenario>& generator,
                         const RunOptions& options) {
  return run_properties(properties, recipes, CaseGenerator([generator](int) { return generator; }), options);
}

RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const CaseGenerator& generator,
                         const RunOptions& options) {
  if (options.cases < 1) throw UsageError("--cases must be at least 1, got " + std::to_string(options.cases));
  auto cells = make_cells(properties, recipes, options.filter);
  RunReport report;
  report.seed = options.seed;
  report.cases = options.cases;
  report.cells = options.cells;
  report.pass = options.pass;
  report.records_case_verdicts = options.record_case_verdicts;
  for (int i = 0; i < options.cases; ++i) {
    for (const auto& [recipe, ratio] :
         judge_case(cells, generated_case(generator, options.seed, i), i, case_seed(options.seed, i), report, true)) {
      report.case_ratios[recipe].emplace_back(i, ratio);
    }
    if (options.progress) options.progress(i + 1, options.cases);
  }
  return finish(cells, std::move(report), options.max_shrink_evaluations, options.shrink_every_pitfall_row);
}

RunReport run_scenario(const std::vector<const Property*>& properties,
                       const std::vector<const Recipe*>& recipes, const Scenario& scenario,
                       ScenarioOutcomes* outcomes) {
  auto cells = make_cells(properties, recipes, "");
  RunReport report;
  report.cases = 1;
  for (const auto& [recipe, ratio] :
       judge_case(cells, rc::Shrinkable<Scenario>(rc::shrinkable::just(scenario)), 0, 0, report, false, outcomes)) {
    report.case_ratios[recipe].emplace_back(0, ratio);
  }
  return finish(cells, std::move(report), 0, true);
}

std::string RunReport::reproduce(const Counterexample& counterexample) const {
  return reproducer ? reproducer(counterexample) : reproduce_line(counterexample, seed);
}

std::string reproduce_line(const Counterexample& c, uint64_t run_seed) {
  return "gacc repro '" + to_json_text(c.scenario) + "'   # shrunk from case " +
         std::to_string(c.case_index) + " of --seed " + std::to_string(run_seed);
}

}  // namespace gacc::properties
