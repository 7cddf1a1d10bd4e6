#pragma once
/// Wall-clock timing for benchmarks: the fastest of several runs.

#include <algorithm>
#include <chrono>
#include <limits>

namespace gacc::bench {

/// Runs `work` at least `min_runs` times and for at least `min_seconds`, and returns the fastest
/// run in seconds (the run least disturbed by the rest of the machine).
template <class Work>
double fastest_seconds(Work&& work, int min_runs = 5, double min_seconds = 1.0) {
  using Clock = std::chrono::steady_clock;
  double best = std::numeric_limits<double>::infinity(), total = 0.0;
  for (int run = 0; run < min_runs || total < min_seconds; ++run) {
    const auto start = Clock::now();
    work();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::min(best, seconds);
    total += seconds;
  }
  return best;
}

}  // namespace gacc::bench
