#pragma once
/// The `gacc` subcommands. Each returns the process exit code and throws gacc::Error for the
/// documented failures (docs/command-line.md, "Exit codes").

#include <cstdint>
#include <string>

#include "core/scenario.h"
#include "properties/generators.h"

namespace gacc::cli {

/// How the data-parallel recipes run (every command that runs recipes takes these).
struct DataParallelArguments {
  /// Rank processes started: the largest world judged (larger ones skip). 0: the default, 8 for
  /// Gloo, one per CUDA device (at most 8) for NCCL.
  int ranks = 0;
  std::string backend = "gloo";   ///< the process groups' backend: gloo or nccl
  double timeout_seconds = 20.0;  ///< a collective (and a rank without progress) waits this long
  std::string inject_fault;       ///< testing: "crash|hang|exit|throw:RANK" (hidden flag)
};

/// Configures the shared rank pool (started on first use) from the flags; a bad fault spec is a
/// UsageError. Under torchrun (RANK, WORLD_SIZE > 1, MASTER_ADDR, MASTER_PORT in the environment)
/// the ranks are torchrun's processes: rank 0 drives (hosting the store at MASTER_ADDR:MASTER_PORT)
/// and WORLD_SIZE replaces --ranks. Returns true when this process is torchrun's rank 1..N-1: it
/// only serves (serve_torchrun_rank) and prints nothing of its own.
bool configure_data_parallel(const DataParallelArguments& args);

/// torchrun's rank 1..N-1: serve rank 0's data-parallel jobs until it ends the run; exit code.
int serve_torchrun_rank(const DataParallelArguments& args);

struct RunArguments {
  std::string filter;
  std::string precision;  ///< fp32, bf16 or fp16: draw only that precision (empty: all three)
  int cases = 100;
  uint64_t seed = 1;
  std::string json_path;
  std::string junit_path;
  bool verbose = false;
  bool all_rows = false;  ///< --all: rows that applied to no case too
};

int run_command(const RunArguments& args);

int list_command(bool json);

struct PitfallsArguments {
  int cases = 200;
  std::string precision;  ///< as RunArguments::precision
  uint64_t seed = 1;
  std::string json_path;
  std::string plot_directory;
};

/// The demonstrator: every pitfall, what it does wrong, which properties catch it and by how much.
int pitfalls_command(const PitfallsArguments& args);

/// `gacc explain PITFALL`: the bug, a minimal counterexample (shrunk), the fix as code.
int explain_command(const std::string& pitfall, int cases, uint64_t seed, const std::string& precision = "");

struct BenchArguments {
  std::string what;              ///< oracle, data-parallel, accumulate or coverage
  std::string json_path;
  std::string backend = "gloo";  ///< data-parallel: the process groups' backend (gloo or nccl)
  int cases = 0;                 ///< coverage: the most cases per seed (0: the default, 300)
  std::string precision;         ///< coverage: as RunArguments::precision
};

/// `gacc bench WHAT`: WHAT is "oracle", "data-parallel", "accumulate" or "coverage"; a flag that
/// belongs to another benchmark (--backend but for data-parallel, --cases and --precision but for
/// coverage) is a UsageError.
int bench_command(const BenchArguments& args);

struct ReproArguments {
  std::string scenario;    ///< Scenario JSON text, or the path of a file holding it
  int case_index = -1;     ///< instead of `scenario`: this generated case of a run (`seed`, `precision`)
  uint64_t seed = 1;
  std::string precision;   ///< the run's --precision (empty: all three)
  std::string recipe;      ///< only this recipe (empty: every recipe)
  std::string trace_path;  ///< write the oracle's trajectory and each recipe's trace as JSON here
};

/// `gacc repro`: one scenario, every property, verbosely.
int repro_command(const ReproArguments& args);

}  // namespace gacc::cli

namespace gacc::cli {

/// Scenario JSON given on the command line: the text itself (starting with `{`) or a file's path.
Scenario scenario_argument(const std::string& text_or_path);

/// What a command draws from: the whole zoo, in one precision when `precision` names one (fp32,
/// bf16, fp16; empty: all), on up to `max_world` ranks.
properties::GeneratorRange command_range(const std::string& precision, int max_world);

struct CaseExportArguments {
  std::string scenario;  ///< Scenario JSON text or file; empty: the first scenario of `seed`
  uint64_t seed = 1;
  std::string out;
  std::string mode = "oracle";  ///< or "differential"
  std::string splits;           ///< differential: splits JSON text or file; empty: the first splits of `seed`
};

/// `gacc case export`: writes one scenario's case file.
int case_export_command(const CaseExportArguments& args);

struct CaseVerifyArguments {
  std::string case_path;
  std::string result_path;
  std::string json_path;
  bool verbose = false;
  bool all_rows = false;  ///< --all: rows that applied to no case too
};

/// `gacc case verify CASE RESULT`: judges a result against its case with every property that needs
/// only the one trace; a differential case (told by its format tag) with the differential checks.
int case_verify_command(const CaseVerifyArguments& args);

struct CheckExternalArguments {
  std::string command;  ///< with {case} and {result}
  int cases = 20;
  uint64_t seed = 1;
  double timeout_seconds = 120.0;
  int ranks = 1;     ///< the largest world size generated
  int shrinks = 40;  ///< command runs allowed to shrink one failure
  std::string keep_directory;
  std::string json_path;
  std::string junit_path;
  bool verbose = false;
  bool all_rows = false;  ///< --all: rows that applied to no case too
  std::string mode = "oracle";  ///< or "differential": the stack's own model, splits only
  std::string precision;        ///< as RunArguments::precision (oracle mode)
  bool worker = false;          ///< the command is started once and serves every case (Note [worker protocol])
  std::string worker_fds;       ///< "IN,OUT": the program that started gacc is the worker
};

/// `gacc check-external --cmd ...`: the property loop against another program.
int check_external_command(const CheckExternalArguments& args);

}  // namespace gacc::cli
