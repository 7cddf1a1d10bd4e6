#include "properties/pitfall_report.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gacc::properties {
namespace {

nlohmann::json ratio_json(double ratio) {
  return std::isfinite(ratio) ? nlohmann::json(ratio) : nlohmann::json(nullptr);
}

size_t scenario_size(const Scenario& sc) { return to_json_text(sc).size(); }

}  // namespace

double PitfallSummary::catching_ratio() const {
  double best = 0.0;
  for (const auto& entry : caught_by) {
    if (!(entry.second <= best)) best = entry.second;
  }
  return best;
}

std::vector<PitfallSummary> summarize_pitfalls(const RunReport& report,
                                               const std::vector<const Recipe*>& recipes) {
  std::vector<PitfallSummary> out;
  for (const auto* recipe : recipes) {
    if (recipe->kind() != RecipeKind::pitfall) continue;
    PitfallSummary summary;
    summary.pitfall = recipe->name();
    summary.summary = recipe->summary();
    summary.reference = recipe->reference();
    for (const auto& row : report.rows) {
      if (row.recipe != recipe->name()) continue;
      if (row.verdict != Verdict::fail && row.verdict != Verdict::expected_fail) continue;
      summary.caught_by.emplace_back(row.property, row.worst_ratio);
      if (row.counterexample &&
          (!summary.counterexample ||
           scenario_size(row.counterexample->scenario) < scenario_size(summary.counterexample->scenario))) {
        summary.counterexample = row.counterexample;
        summary.counterexample_property = row.property;
      }
    }
    std::vector<std::pair<int, std::string>> diagnoses;  // (rows, signature)
    for (const auto& row : report.rows) {
      if (row.recipe != recipe->name() || row.diagnosis.empty()) continue;
      auto it = std::find_if(diagnoses.begin(), diagnoses.end(), [&](const auto& d) { return d.second == row.diagnosis; });
      if (it == diagnoses.end()) {
        diagnoses.emplace_back(1, row.diagnosis);
      } else {
        ++it->first;
      }
    }
    std::stable_sort(diagnoses.begin(), diagnoses.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& d : diagnoses) summary.diagnoses.push_back(d.second);
    summary.min_ratio = std::numeric_limits<double>::infinity();
    const auto it = report.case_ratios.find(recipe->name());
    if (it != report.case_ratios.end()) {
      for (const auto& [index, ratio] : it->second) {
        ++summary.cases;
        if (!(ratio < 1.0)) {
          ++summary.showing;
          if (ratio < summary.min_ratio || summary.min_ratio_case < 0) {  // inf too: a structural showing
            summary.min_ratio = ratio;
            summary.min_ratio_case = index;
          }
        } else {
          summary.largest_hidden_ratio = std::max(summary.largest_hidden_ratio, ratio);
        }
      }
    }
    if (summary.showing == 0) summary.min_ratio = 0.0;
    out.push_back(std::move(summary));
  }
  return out;
}

Separation separation(const RunReport& report, const std::vector<PitfallSummary>& pitfalls) {
  Separation s;
  s.pitfall_min = std::numeric_limits<double>::infinity();
  for (const auto& row : report.rows) {
    if (row.kind != RecipeKind::correct || row.verdict == Verdict::expected_fail) continue;
    if (row.cases > 0 && !(row.worst_ratio <= s.correct_worst)) {
      s.correct_worst = row.worst_ratio;
      s.correct_worst_at = row.property + " on " + row.recipe;
    }
  }
  s.weakest_showing = std::numeric_limits<double>::infinity();
  for (const auto& p : pitfalls) {
    if (p.catching_ratio() < s.pitfall_min) {
      s.pitfall_min = p.catching_ratio();
      s.pitfall_min_at = p.pitfall;
    }
    if (p.showing > 0 && p.min_ratio < s.weakest_showing) {
      s.weakest_showing = p.min_ratio;
      s.weakest_showing_at = p.pitfall;
    }
  }
  return s;
}

nlohmann::json to_json(const std::vector<PitfallSummary>& pitfalls) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : pitfalls) {
    nlohmann::json caught_by = nlohmann::json::array();
    for (const auto& [property, ratio] : p.caught_by)
      caught_by.push_back({{"property", property}, {"worst_ratio", ratio_json(ratio)}});
    nlohmann::json counterexample = nullptr;
    if (p.counterexample) {
      counterexample = {{"property", p.counterexample_property},
                        {"scenario", gacc::to_json(p.counterexample->scenario)},
                        {"ratio", ratio_json(p.counterexample->ratio)},
                        {"detail", p.counterexample->detail}};
    }
    out.push_back({{"pitfall", p.pitfall},
                   {"summary", p.summary},
                   {"reference", p.reference},
                   {"caught_by", caught_by},
                   {"catching_ratio", ratio_json(p.catching_ratio())},
                   {"cases", p.cases},
                   {"showing", p.showing},
                   {"min_ratio", ratio_json(p.min_ratio)},
                   {"min_ratio_case", p.min_ratio_case},
                   {"largest_hidden_ratio", p.largest_hidden_ratio},
                   {"counterexample", counterexample},
                   {"diagnoses", p.diagnoses}});
  }
  return out;
}

}  // namespace gacc::properties
