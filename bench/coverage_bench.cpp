#include "bench/coverage_bench.h"

#include <algorithm>
#include <map>
#include <string>

#include "core/errors.h"
#include "properties/runner.h"

namespace gacc::bench {
namespace {

struct Outcome {
  int cases = 0;  ///< cases until the last pitfall was first caught (max_cases + 1: not all were)
  std::map<std::string, int> first_caught;  ///< per pitfall, the first catching case + 1
};

Outcome cases_until_all_caught(const std::vector<const properties::Property*>& properties,
                               const std::vector<const Recipe*>& pitfalls, const properties::CaseGenerator& generator,
                               uint64_t seed, int max_cases) {
  Outcome out;
  for (int i = 0; i < max_cases && out.first_caught.size() < pitfalls.size(); ++i) {
    const Scenario scenario = properties::generated_case(generator, seed, i).value();
    properties::RunReport report;
    try {
      report = properties::run_scenario(properties, pitfalls, scenario);
    } catch (const InvalidCase&) {
      continue;  // a diverging scenario judges nothing
    }
    for (const auto& [recipe, ratios] : report.case_ratios) {
      if (!out.first_caught.count(recipe) && !ratios.empty() && !(ratios.front().second < 1.0)) {
        out.first_caught[recipe] = i + 1;
      }
    }
  }
  out.cases = out.first_caught.size() < pitfalls.size() ? max_cases + 1 : 0;
  for (const auto& entry : out.first_caught) out.cases = std::max(out.cases, entry.second);
  return out;
}

int median(std::vector<int> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n == 0 ? 0 : (n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2);
}

std::string cases_text(int cases, int max_cases) {
  return cases > max_cases ? ">" + std::to_string(max_cases) : std::to_string(cases);
}

}  // namespace

nlohmann::json run_coverage_bench(std::ostream& out, const std::vector<const properties::Property*>& properties,
                                  const std::vector<const Recipe*>& pitfalls, const properties::GeneratorRange& range,
                                  int max_cases, int seeds) {
  out << "cases until every one of " << pitfalls.size() << " pitfalls is caught at least once (at most " << max_cases
      << " cases; seeds 1.." << seeds << ")\n";
  out << "seed  independent  stratified\n";
  nlohmann::json figures = {{"max_cases", max_cases}, {"pitfalls", pitfalls.size()}, {"seeds", nlohmann::json::array()}};
  std::vector<int> independent, stratified;
  std::map<std::string, std::vector<int>> slowest_independent, slowest_stratified;
  for (int seed = 1; seed <= seeds; ++seed) {
    const auto u = cases_until_all_caught(
        properties, pitfalls, [&](int) { return properties::scenarios(range); }, static_cast<uint64_t>(seed),
        max_cases);
    const auto s = cases_until_all_caught(properties, pitfalls, properties::stratified(range, static_cast<uint64_t>(seed)),
                                          static_cast<uint64_t>(seed), max_cases);
    independent.push_back(u.cases);
    stratified.push_back(s.cases);
    for (const auto* p : pitfalls) {
      const auto first = [&](const Outcome& o) {
        const auto it = o.first_caught.find(p->name());
        return it == o.first_caught.end() ? max_cases + 1 : it->second;
      };
      slowest_independent[p->name()].push_back(first(u));
      slowest_stratified[p->name()].push_back(first(s));
    }
    out << std::to_string(seed) << std::string(6 - std::to_string(seed).size(), ' ') << cases_text(u.cases, max_cases)
        << std::string(13 - cases_text(u.cases, max_cases).size(), ' ') << cases_text(s.cases, max_cases) << "\n";
    figures["seeds"].push_back({{"seed", seed}, {"independent", u.cases}, {"stratified", s.cases}});
  }
  out << "median: independent " << cases_text(median(independent), max_cases) << ", stratified "
      << cases_text(median(stratified), max_cases) << "\n";
  out << "max:    independent " << cases_text(*std::max_element(independent.begin(), independent.end()), max_cases)
      << ", stratified " << cases_text(*std::max_element(stratified.begin(), stratified.end()), max_cases) << "\n";
  out << "per pitfall, median cases until first caught (independent / stratified):\n";
  nlohmann::json per_pitfall = nlohmann::json::object();
  for (const auto* p : pitfalls) {
    const int a = median(slowest_independent[p->name()]), b = median(slowest_stratified[p->name()]);
    out << "  " << p->name() << ": " << cases_text(a, max_cases) << " / " << cases_text(b, max_cases) << "\n";
    per_pitfall[p->name()] = {{"independent", a}, {"stratified", b}};
  }
  figures["median"] = {{"independent", median(independent)}, {"stratified", median(stratified)}};
  figures["max"] = {{"independent", *std::max_element(independent.begin(), independent.end())},
                    {"stratified", *std::max_element(stratified.begin(), stratified.end())}};
  figures["per_pitfall_median"] = per_pitfall;
  return figures;
}

}  // namespace gacc::bench
