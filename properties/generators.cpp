#include "properties/generators.h"

#include <numeric>

#include "fixtures/random.h"

namespace gacc::properties {
namespace {

/// A permutation of 0..n-1 drawn from `seed` (Fisher-Yates over the fixtures' counter-based bits).
std::vector<size_t> permutation(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[fixtures::random_bits(seed, 0x57a7, i) % i]);
  return order;
}

/// Which cells a trigger means something in.
bool relevant(int trigger, const Stratum& cell, const GeneratorRange& range) {
  switch (trigger) {
    case 0:
      return range.clipping;
    case 1:
      return true;  // a partial last window
    case 2:
      return cell.arch == Architecture::causal_lm;
    case 3:
      return range.max_world >= 2;
    case 4:
      return cell.precision == Precision::fp16;
  }
  return false;
}

void set_trigger(Stratum& s, int trigger, bool on) {
  bool* flags[] = {&s.clipping, &s.partial, &s.token_free, &s.multi_rank, &s.overflow};
  *flags[trigger] = on;
}

constexpr int kTriggers = 5;

/// Each trigger's pattern over the entries it applies to: entry n gets it when the parity of
/// (n & mask) is even (a Walsh function). Distinct masks make any two triggers that apply to the
/// same entries meet in all four combinations within 8 of them (in an fp16-only run, overflow and
/// W > 1 apply to every entry: with one pattern for both, every multi-rank case would overflow).
constexpr unsigned kTriggerPatterns[kTriggers] = {1, 2, 3, 5, 6};

bool parity(unsigned bits) {
  bool odd = false;
  for (; bits != 0; bits &= bits - 1) odd = !odd;
  return odd;
}

}  // namespace

std::string cell_name(Architecture arch, Reduction reduction, Precision precision) {
  return to_string(arch) + " x " + to_string(reduction) + " x " + to_string(precision);
}

std::string cell_of(const Scenario& scenario) {
  return cell_name(scenario.model.arch, scenario.loss.reduction, scenario.precision);
}

std::vector<std::string> cell_names(const GeneratorRange& range) {
  std::vector<std::string> names;
  for (const auto& cell : strata_cells(range)) {
    ModelSpec model;
    model.arch = cell.arch;
    const Reduction mean = is_token_model(model) ? Reduction::token_mean : Reduction::mean;
    names.push_back(cell_name(cell.arch, cell.summed ? Reduction::sum : mean, cell.precision));
  }
  return names;
}

std::vector<Stratum> strata_cells(const GeneratorRange& range) {
  std::vector<Stratum> cells;
  for (const auto arch : range.architectures) {
    for (const bool summed : {false, true}) {
      for (const auto precision : range.precisions) {
        Stratum s;
        s.arch = arch;
        s.summed = summed;
        s.precision = precision;
        cells.push_back(s);
      }
    }
  }
  return cells;
}

int pass_length(const GeneratorRange& range) {
  int length = 0;
  for (const auto& cell : strata_cells(range)) length += draw_shares(cell.arch);
  return length;
}

Stratum stratum_of_case(const GeneratorRange& range, uint64_t seed, int index) {
  std::vector<Stratum> cells;  // a pass: each cell once per draw share of its architecture
  for (const auto& cell : strata_cells(range)) cells.insert(cells.end(), static_cast<size_t>(draw_shares(cell.arch)), cell);
  const size_t pass = static_cast<size_t>(index) / cells.size(), position = static_cast<size_t>(index) % cells.size();
  const auto order = permutation(cells.size(), fixtures::random_bits(seed, 0xce11, pass));
  Stratum stratum = cells[order[position]];
  for (int t = 0; t < kTriggers; ++t) {
    if (!relevant(t, stratum, range)) continue;
    // The cells this trigger applies to, in the order this pass draws them: half of them get it,
    // in the trigger's own pattern, the other half on the next pass.
    size_t earlier = 0;
    for (size_t q = 0; q < position; ++q) earlier += relevant(t, cells[order[q]], range);
    set_trigger(stratum, t, parity(static_cast<unsigned>(earlier) & kTriggerPatterns[t]) == (pass % 2 == 1));
  }
  return stratum;
}

CaseGenerator stratified(const GeneratorRange& range, uint64_t seed) {
  return [range, seed](int index) {
    const Stratum stratum = stratum_of_case(range, seed, index);
    return scenarios_in(range, &stratum);
  };
}

}  // namespace gacc::properties
