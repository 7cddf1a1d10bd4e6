#pragma once
/// The demonstrator's view of a run: per pitfall, which properties catch it and by how much, and
/// the harness' separation — how far correct recipes stay below 1 and pitfalls above it.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/recipe.h"
#include "properties/runner.h"

namespace gacc::properties {

struct PitfallSummary {
  std::string pitfall;
  std::string summary;
  std::string reference;
  /// Properties that catch it, each with its worst ratio.
  std::vector<std::pair<std::string, double>> caught_by;
  /// The largest of those ratios: by how much it is caught (0 when it escapes).
  double catching_ratio() const;
  int cases = 0;    ///< cases it was judged on
  int showing = 0;  ///< cases where some property shows it (ratio >= 1)
  /// The smallest ratio among the cases where it shows: how clearly it is caught whenever it is.
  double min_ratio = 0.0;
  int min_ratio_case = -1;  ///< the generated case of min_ratio
  /// The largest ratio among the cases where it does not show (near misses would be below 1 but
  /// above a correct recipe's 0.5).
  double largest_hidden_ratio = 0.0;
  /// The smallest shrunk counterexample among the catching properties.
  std::optional<Counterexample> counterexample;
  std::string counterexample_property;
  /// The signatures its failures were diagnosed with (Note [diagnosis]), most frequent first.
  std::vector<std::string> diagnoses;
};

/// The harness's own measure: the worst ratio of any correct recipe (at most 0.5) against the
/// smallest ratio by which any pitfall is caught (at least 10), plus the stricter figure of how
/// weakly a pitfall may show in its least clear case.
struct Separation {
  double correct_worst = 0.0;  ///< the worst ratio of any correct recipe outside documented non-equivalences
  std::string correct_worst_at;
  double pitfall_min = 0.0;  ///< the smallest catching ratio (a pitfall's best property's worst ratio)
  std::string pitfall_min_at;
  double weakest_showing = 0.0;  ///< the smallest min_ratio: a pitfall's least clear showing
  std::string weakest_showing_at;
};

/// Per pitfall of `recipes`, from a run of every property against them.
std::vector<PitfallSummary> summarize_pitfalls(const RunReport& report, const std::vector<const Recipe*>& recipes);

Separation separation(const RunReport& report, const std::vector<PitfallSummary>& pitfalls);

/// `gacc pitfalls --json`: [{"pitfall", "caught_by", "min_ratio", "reference", ...}].
nlohmann::json to_json(const std::vector<PitfallSummary>& pitfalls);

}  // namespace gacc::properties
