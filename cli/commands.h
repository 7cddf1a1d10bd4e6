#pragma once
/// The `gacc` subcommands. Each returns the process exit code and throws gacc::Error for the
/// documented failures (README, "Exit codes").

#include <cstdint>
#include <string>

namespace gacc::cli {

struct RunArguments {
  std::string filter;
  int cases = 100;
  uint64_t seed = 1;
  std::string json_path;
  std::string junit_path;
  bool verbose = false;
};

int run_command(const RunArguments& args);

int list_command(bool json);

struct PitfallsArguments {
  int cases = 200;
  uint64_t seed = 1;
  std::string json_path;
  std::string plot_directory;
};

/// The demonstrator: every pitfall, what it does wrong, which properties catch it and by how much.
int pitfalls_command(const PitfallsArguments& args);

/// `gacc explain PITFALL`: the bug, a minimal counterexample (shrunk), the fix as code.
int explain_command(const std::string& pitfall, int cases, uint64_t seed);

/// `gacc bench WHAT [--json F]`: WHAT is "oracle" (more benchmarks arrive with the CUDA path).
int bench_command(const std::string& what, const std::string& json_path);

struct ReproArguments {
  std::string scenario;    ///< Scenario JSON text, or the path of a file holding it
  std::string recipe;      ///< only this recipe (empty: every recipe)
  std::string trace_path;  ///< write the oracle's trajectory and each recipe's trace as JSON here
};

/// `gacc repro`: one scenario, every property, verbosely.
int repro_command(const ReproArguments& args);

}  // namespace gacc::cli
