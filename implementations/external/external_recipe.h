#pragma once
/// `ExternalRecipe`: another program as a recipe. Each run writes the scenario's case file, runs
/// the user's command line with `{case}` and `{result}` replaced by the files' paths, and reads the
/// result back as a Trace — so the whole property loop (generate, judge, shrink) runs against any
/// training stack that reads and writes case files (docs/external-stacks.md).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/recipe.h"
#include "implementations/external/differential.h"
#include "implementations/external/worker.h"

namespace gacc::external {

struct ExternalOptions {
  /// The command line, with `{case}` and `{result}` where the files' paths go (shell-quoted).
  std::string command;
  /// How long one run of the command may take before its process group is ended (exit 4).
  std::chrono::milliseconds timeout{120000};
  /// Keep every case, result and log here (created if missing); empty: a temporary directory,
  /// removed with the recipe.
  std::string keep_directory;
  /// The largest world size the command trains (W ranks of its own; scenarios beyond are skipped).
  int max_world = 1;
  /// The command is started once and serves every case over the worker protocol (Note [worker
  /// protocol]); it takes no `{case}` or `{result}`.
  bool worker = false;
  /// The program that started gacc is the worker, over these inherited descriptors (gacc reads
  /// the first, writes the second); `command` is then only a name for reports. -1: none.
  int worker_in_fd = -1;
  int worker_out_fd = -1;
};

class ExternalRecipe : public Recipe {
 public:
  /// Checks the command line (UsageError without `{case}` and `{result}`, or with them for a worker)
  /// and makes the directory.
  explicit ExternalRecipe(ExternalOptions options);
  ~ExternalRecipe() override;
  ExternalRecipe(const ExternalRecipe&) = delete;
  ExternalRecipe& operator=(const ExternalRecipe&) = delete;

  std::string name() const override { return "external"; }
  RecipeKind kind() const override { return RecipeKind::correct; }
  std::string summary() const override;
  bool supports(const Scenario& scenario) const override;
  /// Writes the case, runs the command, reads the result. A command that exits non-zero, outlives
  /// the timeout or writes no result throws EnvironmentError with its output's tail; a result that
  /// does not read throws InputError naming the key.
  Trace run(const Scenario& scenario) const override;

  /// Differential mode: writes the splits' differential case, runs the command, reads its
  /// differential result (the same errors as run).
  DifferentialResult run_differential(const Splits& splits) const;

  /// The command line that runs the stack on a case and result path (each shell-quoted); for a
  /// worker, one request piped into it.
  std::string command_for(const std::string& case_path, const std::string& result_path) const;
  /// The command line (or, with --worker-fds, what names the stack).
  const std::string& command() const { return options_.command; }
  /// Workers started so far (0 without --worker).
  int worker_starts() const { return worker_ ? worker_->starts() : 0; }
  /// The directory holding the cases, results and logs.
  const std::string& directory() const { return directory_; }
  /// Runs so far.
  int runs() const { return runs_.load(); }

 private:
  /// Writes a case with `write_case_file(path)`, runs the command on it and returns the result's
  /// path; `what` (the scenario or splits as JSON) goes into error messages.
  std::string run_command(const std::function<void(const std::string&)>& write_case_file,
                          const std::string& what) const;

  ExternalOptions options_;
  std::unique_ptr<Worker> worker_;  ///< with --worker or --worker-fds
  mutable std::mutex worker_mutex_;  ///< one case at a time through the worker
  std::string directory_;
  bool temporary_ = false;
  mutable std::atomic<int> runs_{0};
};

}  // namespace gacc::external
