#include "properties/report.h"

#include "properties/shrinking.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/version.h"
#include "properties/compare.h"

namespace gacc::properties {
namespace {

/// JSON has no infinity: a structural failure's ratio is written as null.
nlohmann::json ratio_json(double ratio) {
  return std::isfinite(ratio) ? nlohmann::json(ratio) : nlohmann::json(nullptr);
}

/// A correct recipe that fails, or a row where an escaping pitfall was judged and missed.
bool unexpected(const ResultRow& row, const RunReport& report) {
  if (row.kind == RecipeKind::correct) return row.verdict == Verdict::fail;
  if (row.verdict != Verdict::pass) return false;
  const auto escaping = report.pitfalls_escaping();
  return std::find(escaping.begin(), escaping.end(), row.recipe) != escaping.end();
}

/// A row that judged nothing: no case applied, or none could look.
bool not_judging(const ResultRow& row) { return row.verdict == Verdict::skip || row.verdict == Verdict::not_judged; }

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

/// What the verdict means for this recipe, in words.
std::string verdict_text(const ResultRow& row) {
  if (row.kind == RecipeKind::pitfall) {
    switch (row.verdict) {
      case Verdict::fail:
      case Verdict::expected_fail:
        return "caught";
      case Verdict::pass:
        return "missed";
      case Verdict::skip:
        return "n/a";
      case Verdict::not_judged:
        return "not judged";
    }
  }
  if (row.verdict == Verdict::not_judged) return "not judged";
  if (row.verdict == Verdict::skip) return "n/a";
  return row.verdict == Verdict::expected_fail ? "expected" : to_string(row.verdict);
}

/// What the recipes showed of their legitimate choices, once per recipe and note.
void print_notes(std::ostream& out, const RunReport& report) {
  std::map<std::string, std::map<std::string, int>> by_recipe;
  for (const auto& row : report.rows) {
    for (const auto& [note, cases] : row.notes) by_recipe[row.recipe][note] = std::max(by_recipe[row.recipe][note], cases);
  }
  for (const auto& [recipe, notes] : by_recipe) {
    for (const auto& [note, cases] : notes) {
      out << "observed: " << recipe << ": " << note << " (" << cases << " case" << (cases == 1 ? "" : "s") << ")\n";
    }
  }
  if (!by_recipe.empty()) out << "\n";
}

/// Per property, the cells and triggers it judged (Note [coverage]), then the warnings.
void print_coverage(std::ostream& out, const RunReport& report) {
  if (report.coverage.empty()) return;
  out << "coverage: per property, cells (architecture x reduction x precision) and triggers judged / applied to\n";
  for (const auto& [property, covered] : report.coverage) {
    int judged = 0;
    for (const auto& entry : covered.cells) judged += entry.second.judged > 0;
    out << "  " << property << ": " << judged << "/" << covered.cells.size() << " cells";
    if (!report.cells.empty()) out << " (of " << report.cells.size() << ")";
    for (const auto& name : trigger_names()) {
      const auto it = covered.triggers.find(name);
      if (it != covered.triggers.end()) out << "; " << name << " " << it->second.judged << "/" << it->second.cases;
    }
    out << "\n";
  }
  for (const auto& warning : report.coverage_warnings()) out << "warning: " << warning << "\n";
  out << "\n";
}

}  // namespace

nlohmann::json to_json(const RunReport& report) {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& row : report.rows) {
    nlohmann::json counterexample = nullptr;
    if (row.counterexample) {
      const auto& c = *row.counterexample;
      counterexample = {{"scenario", gacc::to_json(c.scenario)},
                        {"ratio", ratio_json(c.ratio)},
                        {"detail", c.detail},
                        {"diagnosis", c.diagnosis},
                        {"shrinks", c.shrinks},
                        {"shrink_budget_ended", c.budget_ended},
                        {"case_index", c.case_index},
                        {"reproduce", report.reproduce(c)}};
    }
    results.push_back({{"property", row.property},
                       {"recipe", row.recipe},
                       {"recipe_kind", to_string(row.kind)},
                       {"verdict", to_string(row.verdict)},
                       {"cases", row.cases},
                       {"cases_judged", row.cases_judged},
                       {"checks", row.checks},
                       {"checks_not_judged", row.checks_not_judged},
                       {"worst_ratio", ratio_json(row.worst_ratio)},
                       {"notes", row.notes},
                       {"diagnosis", row.diagnosis},
                       {"worst_detail", row.worst_detail},
                       {"worst_case", row.worst_case < 0 ? nlohmann::json(nullptr) : nlohmann::json(row.worst_case)},
                       {"counterexample", counterexample}});
  }
  nlohmann::json coverage = nlohmann::json::object();
  for (const auto& [property, covered] : report.coverage) {
    nlohmann::json cells = nlohmann::json::object(), triggers = nlohmann::json::object();
    for (const auto& [name, c] : covered.cells) cells[name] = {{"cases", c.cases}, {"judged", c.judged}};
    for (const auto& [name, c] : covered.triggers) triggers[name] = {{"cases", c.cases}, {"judged", c.judged}};
    coverage[property] = {{"cells", cells}, {"triggers", triggers}};
  }
  nlohmann::json out = {{"version", kVersion},
          {"seed", report.seed},
          {"cases", report.cases},
          {"results", results},
          {"cells", report.cells},
          {"coverage", coverage},
          {"coverage_warnings", report.coverage_warnings()},
          {"summary",
           {{"pass", report.count(Verdict::pass)},
            {"fail", report.count(Verdict::fail)},
            {"expected_fail", report.count(Verdict::expected_fail)},
            {"skip", report.count(Verdict::skip)},
            {"not_judged", report.count(Verdict::not_judged)},
            {"checks", report.checks()},
            {"checks_not_judged", report.checks_not_judged()},
            {"correct_failing", report.correct_failing()},
            {"pitfalls_escaping", report.pitfalls_escaping()},
            {"pitfalls_not_judged", report.pitfalls_not_judged()},
            {"invalid_cases", report.invalid_cases}}}};
  if (report.records_case_verdicts) {
    nlohmann::json cases = nlohmann::json::array();
    for (const auto& c : report.case_verdicts) {
      nlohmann::json checks = nlohmann::json::array();
      for (const auto& check : c.checks) {
        checks.push_back({{"property", check.property},
                          {"recipe", check.recipe},
                          {"verdict", check.verdict},
                          {"ratio", ratio_json(check.ratio)}});
      }
      cases.push_back({{"case", c.index}, {"cell", c.cell}, {"triggers", c.triggers}, {"checks", checks}});
    }
    out["case_verdicts"] = cases;
  }
  return out;
}

std::string to_junit(const RunReport& report) {
  std::vector<std::string> properties;
  for (const auto& row : report.rows) {
    if (std::find(properties.begin(), properties.end(), row.property) == properties.end()) {
      properties.push_back(row.property);
    }
  }
  std::ostringstream xml;
  int total = 0, failures = 0, skipped = 0;
  for (const auto& row : report.rows) {
    ++total;
    failures += unexpected(row, report);
    skipped += not_judging(row) && !unexpected(row, report);
  }
  xml << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml << "<testsuites name=\"gacc\" tests=\"" << total << "\" failures=\"" << failures << "\" skipped=\""
      << skipped << "\">\n";
  for (const auto& property : properties) {
    int suite_tests = 0, suite_failures = 0, suite_skipped = 0;
    for (const auto& row : report.rows) {
      if (row.property != property) continue;
      ++suite_tests;
      suite_failures += unexpected(row, report);
      suite_skipped += not_judging(row) && !unexpected(row, report);
    }
    xml << "  <testsuite name=\"" << xml_escape(property) << "\" tests=\"" << suite_tests << "\" failures=\""
        << suite_failures << "\" skipped=\"" << suite_skipped << "\">\n";
    for (const auto& row : report.rows) {
      if (row.property != property) continue;
      xml << "    <testcase classname=\"gacc." << xml_escape(property) << "\" name=\""
          << xml_escape(row.recipe) << " (" << to_string(row.kind) << ")\">\n";
      if (unexpected(row, report)) {
        const std::string message = row.kind == RecipeKind::correct
                                        ? "correct recipe failed: " + row.worst_detail
                                        : "pitfall escaped every property";
        xml << "      <failure message=\"" << xml_escape(message) << "\">";
        if (row.counterexample) xml << xml_escape(report.reproduce(*row.counterexample));
        xml << "</failure>\n";
      } else if (row.verdict == Verdict::skip) {
        xml << "      <skipped message=\"applied to no generated case\"/>\n";
      } else if (row.verdict == Verdict::not_judged) {
        xml << "      <skipped message=\"not judged: in every case a check could not see an error the size of the value\"/>\n";
      }
      xml << "      <system-out>"
          << xml_escape("verdict " + verdict_text(row) + ", cases " + std::to_string(row.cases) + " (" +
                        std::to_string(row.cases_judged) + " judged), checks " + std::to_string(row.checks) + " (" +
                        std::to_string(row.checks_not_judged) + " not judged)" +
                        ", worst ratio " + format_ratio(row.worst_ratio) + ": " + row.worst_detail)
          << "</system-out>\n";
      xml << "    </testcase>\n";
    }
    xml << "  </testsuite>\n";
  }
  xml << "</testsuites>\n";
  return xml.str();
}

void print_table(std::ostream& out, const RunReport& report, const TableOptions& options) {
  size_t pw = 8, rw = 6;
  for (const auto& row : report.rows) {
    pw = std::max(pw, row.property.size());
    rw = std::max(rw, row.recipe.size());
  }
  out << std::left << std::setw(static_cast<int>(pw) + 2) << "property" << std::setw(static_cast<int>(rw) + 2)
      << "recipe" << std::setw(9) << "kind" << std::setw(12) << "verdict" << std::right << std::setw(6)
      << "cases" << std::setw(8) << "judged" << std::setw(13) << "worst ratio"
      << "\n";
  int hidden = 0;
  for (const auto& row : report.rows) {
    // A row that applied to no case says nothing (a pitfall of data parallelism in a one-rank
    // scenario): listed with --all only.
    if (row.verdict == Verdict::skip && !options.all_rows) {
      ++hidden;
      continue;
    }
    out << std::left << std::setw(static_cast<int>(pw) + 2) << row.property
        << std::setw(static_cast<int>(rw) + 2) << row.recipe << std::setw(9) << to_string(row.kind)
        << std::setw(12) << verdict_text(row) << std::right << std::setw(6) << row.cases << std::setw(8)
        << row.cases_judged << std::setw(13) << format_ratio(row.worst_ratio) << "\n";
  }
  if (hidden > 0) {
    out << "(" << hidden << " row" << (hidden == 1 ? "" : "s") << " not applicable (applied to no case), not shown: --all lists "
        << (hidden == 1 ? "it" : "them") << ")\n";
  }
  out << "\n";
  for (const auto& row : report.rows) {
    const bool bad = unexpected(row, report);
    if (!bad && !(options.details && row.verdict != Verdict::skip)) continue;  // n/a: nothing to detail
    out << (bad ? "UNEXPECTED: " : "") << row.property << " on " << row.recipe << " (" << to_string(row.kind)
        << ", " << verdict_text(row) << ")\n";
    out << "  worst" << (row.worst_case < 0 ? "" : " (case " + std::to_string(row.worst_case) + ")") << ": "
        << row.worst_detail << "\n";
    if (!row.diagnosis.empty()) out << "  diagnosis: " << row.diagnosis << "\n";
    if (row.counterexample) {
      const auto& c = *row.counterexample;
      out << "  counterexample (" << c.shrinks << " shrinks" << shrink_budget_note(c.budget_ended) << ", ratio "
          << format_ratio(c.ratio) << "): " << c.detail << "\n";
      if (!c.diagnosis.empty() && c.diagnosis != row.diagnosis) out << "  its diagnosis: " << c.diagnosis << "\n";
      out << "  " << report.reproduce(c) << "\n";
    }
  }
  print_notes(out, report);
  print_coverage(out, report);
  const auto failing = report.correct_failing();
  const auto escaping = report.pitfalls_escaping();
  // Counted by what a row means: a correct recipe passes or fails; a pitfall is caught or missed by
  // that property (the run fails only where every property misses it: "escaping").
  std::map<std::string, int> correct, pitfall;
  for (const auto& row : report.rows) {
    if (row.verdict != Verdict::skip) ++(row.kind == RecipeKind::correct ? correct : pitfall)[verdict_text(row)];
  }
  const auto counted = [](std::map<std::string, int>& counts, std::initializer_list<const char*> names) {
    std::string text;
    for (const char* name : names) {
      if (counts[name] > 0 || std::string(name) == "pass" || std::string(name) == "fail") {
        text += (text.empty() ? "" : ", ") + std::to_string(counts[name]) + " " + name;
      }
    }
    return text;
  };
  out << "summary: correct recipes' rows " << counted(correct, {"pass", "fail", "expected", "not judged"});
  if (!pitfall.empty()) out << "; pitfalls' rows " << counted(pitfall, {"caught", "missed", "not judged"});
  out << "; " << report.count(Verdict::skip) << " not applicable; seed " << report.seed << ", " << report.cases
      << " cases\n";
  if (report.checks() > 0) {
    const int judged_checks = report.checks() - report.checks_not_judged();
    out << "checks: " << judged_checks << " of " << report.checks() << " judged ("
        << format_ratio(100.0 * judged_checks / report.checks()) << "%); a check that could not see an error the size "
        << "of its value is not judged (Note [looked])\n";
  }
  if (report.invalid_cases > 0) {
    out << report.invalid_cases << " generated case" << (report.invalid_cases == 1 ? "" : "s")
        << " not judged, the large-batch trajectory diverging (first: " << report.first_invalid << ")\n";
  }
  const auto not_judged = report.pitfalls_not_judged();
  const int judged = report.count(Verdict::pass) + report.count(Verdict::fail) + report.count(Verdict::expected_fail);
  if (judged == 0) {
    out << "nothing was judged: no property applied to any recipe in these cases\n";
  } else if (failing.empty() && escaping.empty()) {
    out << "every correct recipe passes and every pitfall " << (not_judged.empty() ? "" : "judged ") << "is caught\n";
  }
  if (!not_judged.empty()) {
    out << "not judged (no property applied in these cases):";
    for (const auto& name : not_judged) out << " " << name;
    out << "\n";
  }
  for (const auto& name : failing) out << "correct recipe failing: " << name << "\n";
  for (const auto& name : escaping) out << "pitfall escaping every property: " << name << "\n";
}

}  // namespace gacc::properties
