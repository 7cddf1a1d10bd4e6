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
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>

#include "core/errors.h"
#include "core/recipe.h"
#include "properties/property.h"

namespace gacc::properties {

enum class Verdict {
  pass,           ///< held on every case
  fail,           ///< failed on some case where no failure is documented (for a pitfall: caught)
  expected_fail,  ///< failed only where the property documents a non-equivalence (for a pitfall: caught)
  skip,           ///< applied to no case
};

std::string to_string(Verdict verdict);

struct Counterexample {
  Scenario scenario;   ///< shrunk
  double ratio = 0.0;  ///< of the shrunk scenario
  std::string detail;
  int shrinks = 0;        ///< accepted shrink steps
  int case_index = 0;     ///< the generated case it was shrunk from
  uint64_t case_seed = 0;
};

/// One property on one recipe over all cases.
struct ResultRow {
  std::string property;
  std::string recipe;
  RecipeKind kind = RecipeKind::correct;
  Verdict verdict = Verdict::skip;
  int cases = 0;             ///< cases judged (the property applied and the recipe supported them)
  double worst_ratio = 0.0;  ///< over every judged case
  std::string worst_detail;  ///< where the worst ratio was
  std::optional<Counterexample> counterexample;
};

struct RunOptions {
  int cases = 100;
  uint64_t seed = 0;
  /// Keep only rows whose property or recipe name contains this text (empty: all).
  std::string filter;
  /// Recipe and oracle evaluations allowed for shrinking one failure.
  int max_shrink_evaluations = 150;
  /// Called after each case with (cases done, cases in all); may be empty.
  std::function<void(int, int)> progress;
};

struct RunReport {
  uint64_t seed = 0;
  int cases = 0;
  std::vector<ResultRow> rows;
  /// Per recipe, per case it was judged on (case index, ratio): the largest ratio any property
  /// found (the separation statistics: how far above 1 a pitfall is whenever it shows).
  std::map<std::string, std::vector<std::pair<int, double>>> case_ratios;
  /// Generated cases not judged because their large-batch trajectory diverges beyond what the
  /// judged format holds (reference::Oracle throws InvalidCase), and the first one's reason.
  int invalid_cases = 0;
  std::string first_invalid;

  int count(Verdict verdict) const;
  /// Correct recipes that failed some property.
  std::vector<std::string> correct_failing() const;
  /// Pitfall recipes judged on some case that no property caught (fail or expected_fail).
  std::vector<std::string> pitfalls_escaping() const;
  /// Pitfall recipes no property applied to in these cases (a narrow --filter, few --cases): not
  /// judged, so neither caught nor escaping.
  std::vector<std::string> pitfalls_not_judged() const;
  /// Whether some property judged `recipe` on at least one case.
  bool judged(const std::string& recipe) const;
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
rc::Shrinkable<Scenario> generated_case(const rc::Gen<Scenario>& generator, uint64_t seed, int index);

/// Runs every property against every recipe on `options.cases` scenarios from `generator`.
RunReport run_properties(const std::vector<const Property*>& properties,
                         const std::vector<const Recipe*>& recipes, const rc::Gen<Scenario>& generator,
                         const RunOptions& options);

/// One scenario, every property against every recipe, no shrinking (`gacc repro`).
RunReport run_scenario(const std::vector<const Property*>& properties,
                       const std::vector<const Recipe*>& recipes, const Scenario& scenario);

/// The line that reruns a counterexample.
std::string reproduce_line(const Counterexample& counterexample, uint64_t run_seed);

}  // namespace gacc::properties
