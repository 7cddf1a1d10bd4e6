#pragma once
/// The sentences of Note [diagnosis] (properties/diagnosis.h) that both judges use — the oracle's
/// properties and differential mode (properties/differential.h) — written once.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace gacc {

inline std::string count_text(int64_t n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

/// A run that took `steps` optimizer steps over `windows` windows: the signature, or empty when
/// they agree.
inline std::string step_count_signature(int64_t steps, int64_t windows) {
  if (std::llabs(steps - windows) == 1) {
    return "a step count off by one: " + count_text(steps, "optimizer step") + " reported over " +
           count_text(windows, "window") + " (a window never run — a partial last one dropped — or a window boundary "
           "shifted by a micro-batch)";
  }
  if (steps > windows) {
    return count_text(steps, "optimizer step") + " over " + count_text(windows, "window") +
           ": some window stepped before its last micro-batch (a window boundary taken at micro-batches, e.g. the "
           "end of the data marked while a window was still being read)";
  }
  if (steps < windows) {
    return count_text(steps, "optimizer step") + " over " + count_text(windows, "window") +
           ": windows never stepped (micro-batches merged across windows, or the last windows dropped)";
  }
  return {};
}

/// The factors a window's gradient is off by in the known bugs, with their sentences (the
/// gradient is ...): K, 1/K, W and 1/W times the large batch's; a factor of 1 (K or W = 1) is left out.
inline std::vector<std::pair<double, std::string>> gradient_factor_signatures(int k, int w) {
  std::vector<std::pair<double, std::string>> out;
  if (k != 1) {
    out.emplace_back(static_cast<double>(k), "K = " + std::to_string(k) + " times the large batch's: summed over "
                                             "the micro-batches and never divided by K");
    out.emplace_back(1.0 / k, "1/K = 1/" + std::to_string(k) + " of the large batch's: divided by K once too often");
  }
  if (w != 1) {
    out.emplace_back(static_cast<double>(w), "W = " + std::to_string(w) + " times the large batch's: summed over the "
                                             "ranks, not averaged");
    out.emplace_back(1.0 / w, "1/W = 1/" + std::to_string(w) + " of the large batch's: averaged over the ranks twice");
  }
  return out;
}

}  // namespace gacc
