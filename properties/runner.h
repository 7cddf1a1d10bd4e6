#pragma once
/// The property loop: generate scenarios, compute the oracle once per scenario, run every recipe,
/// judge every property, and shrink each failure to a small counterexample.
///
/// RapidCheck provides the generators and their shrink trees; the loop is gacc's own because it
/// must share one oracle run among all recipes, keep the worst ratio of passing cases (the harness'
/// separation), and be reproducible from gacc's --seed alone.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>

#include "core/errors.h"
#include "core/recipe.h"
#include "properties/generators.h"
#include "properties/property.h"

namespace gacc::properties {

enum class Verdict {
  pass,           ///< held on every case
  fail,           ///< failed on some case where no failure is documented (for a pitfall: caught)
  expected_fail,  ///< failed only where the property documents a non-equivalence (for a pitfall: caught)
  skip,           ///< applied to no case
  not_judged,     ///< applied, but no case was judged: every one had a check that could not look (Note [looked])
};

std::string to_string(Verdict verdict);

struct Counterexample {
  Scenario scenario;   ///< shrunk
  double ratio = 0.0;  ///< of the shrunk scenario
  std::string detail;
  int shrinks = 0;        ///< accepted shrink steps
  int case_index = 0;     ///< the generated case it was shrunk from
  uint64_t case_seed = 0;
  std::string diagnosis = {};  ///< of the shrunk scenario (Note [diagnosis])
  bool budget_ended = false;   ///< shrinking stopped at its budget (Note [shrinking])
};

/// One property on one recipe over all cases.
struct ResultRow {
  std::string property;
  std::string recipe;
  RecipeKind kind = RecipeKind::correct;
  Verdict verdict = Verdict::skip;
  int cases = 0;             ///< cases the property applied to and the recipe supported
  int cases_judged = 0;      ///< of those, cases whose every check looked, or that failed (Note [looked])
  int checks = 0;            ///< comparisons made over all cases
  int checks_not_judged = 0; ///< of those, comparisons that could not look
  double worst_ratio = 0.0;  ///< over every case
  std::string worst_detail;  ///< where the worst ratio was
  std::optional<Counterexample> counterexample;
  std::map<std::string, int> notes = {};  ///< CaseVerdict::notes, with the cases that showed each
  std::string diagnosis = {};             ///< of the first case that showed a failure (Note [diagnosis])
  int worst_case = -1;  ///< the generated case that showed the worst ratio (`gacc repro --case`); -1: none
  int unexpected_failures = 0;        ///< cases that failed where no failure is documented
  int expected_failures = 0;          ///< cases that failed as the property documents (a non-equivalence)
  double weakest_failure_ratio = 0.0; ///< the smallest ratio among the failing cases (0: none failed)
};

/// Adds one case's verdict to its row — the one verdict-row accumulator: the property loop, the
/// differential loop and the C++ optimizer API all record through it. The worst ratio (a NaN counts
/// as the worst) keeps its detail and `case_index` (-1: not a generated case); the counts of cases,
/// judged cases, checks and failures, the notes, the diagnosis of the first case that shows a
/// failure (`shows`), and the row's verdict so far (`verdict_of`).
void add_case(ResultRow& row, const CaseVerdict& verdict, int case_index);

/// Whether a case shows what its row is about: an unexpected failure, or for a pitfall any failure
/// (a documented non-equivalence shows the pitfall that demonstrates it).
bool shows(const CaseVerdict& verdict, RecipeKind kind);

/// A row's verdict from its counts: skip (no case), fail, expected_fail, pass or not_judged.
Verdict verdict_of(const ResultRow& row);

/// Cases a property applied to (some recipe supported them), and cases it judged (Note [looked]).
struct Coverage {
  int cases = 0;
  int judged = 0;
};

/// What one property covered, per cell (architecture x reduction x precision) and per trigger
/// (Note [coverage]: "active clipping", "partial last window", ...), as observed in the cases.
struct PropertyCoverage {
  std::map<std::string, Coverage> cells;
  std::map<std::string, Coverage> triggers;
};

/// The triggers a case shows (observed, not intended): norm or value clipping active in the large
/// batch, a partial last window, a micro-batch without a counted token, W > 1, an fp16 window that
/// overflows (skipped or ambiguous).
std::vector<std::string> triggers_of(const Scenario& scenario, const reference::Oracle& oracle);

/// Every trigger's name, in report order.
const std::vector<std::string>& trigger_names();

/// One check of one case, as --json's "case_verdicts" lists it.
struct CaseCheck {
  std::string property;
  std::string recipe;
  std::string verdict;  ///< "pass", "fail", "expected-fail" or "not judged"
  double ratio = 0.0;
};

/// Every check of one generated case (RunOptions::record_case_verdicts).
struct CaseVerdicts {
  int index = 0;
  std::string cell;                   ///< architecture x reduction x precision
  std::vector<std::string> triggers;  ///< observed (triggers_of)
  std::vector<CaseCheck> checks;
};

struct RunOptions {
  int cases = 100;
  uint64_t seed = 0;
  /// Keep only rows whose property or recipe name contains this text (empty: all).
  std::string filter;
  /// Recipe and oracle evaluations allowed for shrinking one failure.
  int max_shrink_evaluations = 150;
  /// Shrink every row where a pitfall shows; by default only its first (in property order): one
  /// minimal counterexample per pitfall, which is what a caught pitfall needs (the other rows keep
  /// the generated case that showed it). A correct recipe's failure is always shrunk.
  bool shrink_every_pitfall_row = false;
  /// Called after each case with (cases done, cases in all); may be empty.
  std::function<void(int, int)> progress;
  /// The cells the generator draws from (cell_names): reports warn about cells never drawn, or drawn
  /// and applied to but never judged. Empty: no cell-level warnings.
  std::vector<std::string> cells;
  /// Cases in which a stratified generator draws every cell (pass_length).
  int pass = 0;
  /// Record each case's verdicts (RunReport::case_verdicts, --json's "case_verdicts"): check-external
  /// sets it; a `gacc run` of thousands of cases times every recipe would write megabytes.
  bool record_case_verdicts = false;
};

struct RunReport {
  uint64_t seed = 0;
  int cases = 0;
  std::vector<ResultRow> rows;
  /// Each case's verdicts, when RunOptions::record_case_verdicts asked for them.
  bool records_case_verdicts = false;
  std::vector<CaseVerdicts> case_verdicts;
  /// Per recipe, per case it was judged on (case index, ratio): the largest ratio any property
  /// found (the separation statistics: how far above 1 a pitfall is whenever it shows).
  std::map<std::string, std::vector<std::pair<int, double>>> case_ratios;
  /// Generated cases not judged because their large-batch trajectory diverges beyond what the
  /// judged format holds (reference::Oracle throws InvalidCase), and the first one's reason.
  int invalid_cases = 0;
  std::string first_invalid;
  /// Per property, what it covered (Note [coverage]); and the cells the run drew from (RunOptions).
  std::map<std::string, PropertyCoverage> coverage;
  std::vector<std::string> cells;
  int pass = 0;
  /// What a person should know about coverage: cells never drawn, and for each property the cells
  /// and triggers it applied to but judged in no case.
  std::vector<std::string> coverage_warnings() const;

  int count(Verdict verdict) const;
  /// Correct recipes that failed some property.
  std::vector<std::string> correct_failing() const;
  /// Pitfall recipes judged on some case that no property caught (fail or expected_fail).
  std::vector<std::string> pitfalls_escaping() const;
  /// Pitfall recipes no property applied to in these cases (a narrow --filter, few --cases): not
  /// judged, so neither caught nor escaping.
  std::vector<std::string> pitfalls_not_judged() const;
  /// Whether some property judged `recipe` on at least one case (Note [looked]).
  bool judged(const std::string& recipe) const;
  /// Checks made, and checks that could not look, over every row.
  int checks() const;
  int checks_not_judged() const;
  /// How a counterexample is rerun, when not by `gacc repro` (check-external sets it).
  std::function<std::string(const Counterexample&)> reproducer;
  /// The lines that rerun a counterexample: `reproducer`'s, or reproduce_line's.
  std::string reproduce(const Counterexample& counterexample) const;
  /// 0 when every correct recipe passes and every pitfall is caught, else 1.
  ExitCode exit_code() const;
};

/// Seed of generated case `index` under run seed `seed`.
uint64_t case_seed(uint64_t seed, int index);

/// Generated case `index` of run seed `seed`, as run_properties draws it (with its shrink tree).
rc::Shrinkable<Scenario> generated_case(const CaseGenerator& generator, uint64_t seed, int index);
rc::Shrinkable<Scenario> generated_case(const rc::Gen<Scenario>& generator, uint64_t seed, int index);

/// Runs every property against every recipe on `options.cases` scenarios from `generator` (case i
/// from generator(i)).
RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const CaseGenerator& generator,
                         const RunOptions& options);
/// The same with every case from one generator (no strata).
RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const rc::Gen<Scenario>& generator,
                         const RunOptions& options);

/// What the run of one scenario computed beyond its verdicts: the oracle, and each recipe it ran
/// (those some property applied to), with its trace or the error it stopped with.
struct ScenarioOutcomes {
  std::unique_ptr<const reference::Oracle> oracle;
  struct Ran {
    std::string recipe;
    std::optional<Trace> trace;
    std::string error;  ///< where there is no trace
  };
  std::vector<Ran> recipes;
};

/// One scenario, every property against every recipe, no shrinking (`gacc repro`); with
/// `outcomes`, what the run computed is kept there (`gacc repro --trace` writes it).
RunReport run_scenario(const std::vector<const Property*>& properties,
                       const std::vector<const Recipe*>& recipes, const Scenario& scenario,
                       ScenarioOutcomes* outcomes = nullptr);

/// The line that reruns a counterexample.
std::string reproduce_line(const Counterexample& counterexample, uint64_t run_seed);

}  // namespace gacc::properties
