#include "implementations/external/external_recipe.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "implementations/external/case_file.h"
#include "implementations/external/shell_command.h"

namespace gacc::external {
namespace {

constexpr const char* kCasePlaceholder = "{case}";
constexpr const char* kResultPlaceholder = "{result}";

std::string replaced(std::string text, const std::string& placeholder, const std::string& value) {
  for (size_t at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + value.size())) {
    text.replace(at, placeholder.size(), value);
  }
  return text;
}

std::string seconds_text(std::chrono::milliseconds timeout) {
  const double seconds = static_cast<double>(timeout.count()) / 1000.0;
  std::string text = std::to_string(seconds);
  text.erase(text.find_last_not_of('0') + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text + " s";
}

}  // namespace

ExternalRecipe::ExternalRecipe(ExternalOptions options) : options_(std::move(options)) {
  const bool inherited = options_.worker_in_fd >= 0 || options_.worker_out_fd >= 0;
  const bool placeholders = options_.command.find(kCasePlaceholder) != std::string::npos ||
                            options_.command.find(kResultPlaceholder) != std::string::npos;
  if (options_.worker && placeholders) {
    throw UsageError("--cmd \"" + options_.command + "\" holds {case} or {result}, but with --worker the command is "
                     "started once and receives each case's paths over the worker protocol (docs/python.md, 'Worker')");
  }
  if (!options_.worker && !inherited &&
      (options_.command.find(kCasePlaceholder) == std::string::npos ||
       options_.command.find(kResultPlaceholder) == std::string::npos)) {
    throw UsageError("--cmd \"" + options_.command + "\" must contain {case} and {result}, where the case file's "
                     "and the result file's paths go");
  }
  std::error_code error;
  if (options_.keep_directory.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path(error) / "gacc-external.XXXXXX").string();
    if (!mkdtemp(pattern.data())) {
      throw EnvironmentError("cannot make a temporary directory " + pattern + ": " + std::strerror(errno));
    }
    directory_ = pattern;
    temporary_ = true;
  } else {
    directory_ = options_.keep_directory;
    std::filesystem::create_directories(directory_, error);
    if (error || !std::filesystem::is_directory(directory_)) {
      throw EnvironmentError("cannot make the directory " + directory_ + ": " +
                             (error ? error.message() : std::string("not a directory")));
    }
  }
  if (inherited) {
    if (options_.worker_in_fd < 0 || options_.worker_out_fd < 0 || fcntl(options_.worker_in_fd, F_GETFD) < 0 ||
        fcntl(options_.worker_out_fd, F_GETFD) < 0) {
      throw UsageError("--worker-fds " + std::to_string(options_.worker_in_fd) + "," +
                       std::to_string(options_.worker_out_fd) + ": not two open file descriptors");
    }
    worker_ = std::make_unique<Worker>(options_.worker_in_fd, options_.worker_out_fd);
  } else if (options_.worker) {
    worker_ = std::make_unique<Worker>(options_.command, directory_ + "/worker-log.txt");
  }
}

ExternalRecipe::~ExternalRecipe() {
  if (!temporary_) return;
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

std::string ExternalRecipe::summary() const { return "the external command: " + options_.command; }

bool ExternalRecipe::supports(const Scenario& scenario) const { return scenario.world_size <= options_.max_world; }

std::string ExternalRecipe::command_for(const std::string& case_path, const std::string& result_path) const {
  if (worker_) {
    const nlohmann::json request = {{"case", case_path}, {"result", result_path}};
    return "printf '%s\\n' " + shell_quoted(request.dump()) + " | " + options_.command + " >/dev/null";
  }
  return replaced(replaced(options_.command, kCasePlaceholder, shell_quoted(case_path)), kResultPlaceholder,
                  shell_quoted(result_path));
}

std::string ExternalRecipe::run_command(const std::function<void(const std::string&)>& write_case_file,
                                        const std::string& what) const {
  const int run = runs_.fetch_add(1);
  const std::string stem = directory_ + "/" + std::to_string(run);
  const std::string case_path = stem + "-case.pt", result_path = stem + "-result.pt", log_path = stem + "-log.txt";
  write_case_file(case_path);
  std::error_code ignored;
  std::filesystem::remove(result_path, ignored);
  const std::string command = command_for(case_path, result_path);
  if (worker_) {
    std::optional<WorkerFailure> failure;
    {
      const std::lock_guard<std::mutex> lock(worker_mutex_);
      failure = worker_->serve(case_path, result_path, options_.timeout);
    }
    if (!failure && !std::filesystem::exists(result_path)) failure = WorkerFailure{"answered done but wrote no result", {}};
    if (failure) {
      std::string message = "the worker " + failure->problem + " (" + options_.command + ", case " + case_path + ")";
      if (!failure->output_tail.empty()) message += "\n--- the end of its output ---\n" + failure->output_tail;
      throw EnvironmentError(message + "\n" + what);
    }
    return result_path;
  }
  const auto outcome = run_shell_command(command, options_.timeout, log_path);

  const auto failure = [&](const std::string& problem) {
    std::string message = "the external command " + problem + ": " + command;
    if (!outcome.log_tail.empty()) message += "\n--- the end of its output ---\n" + outcome.log_tail;
    message += "\n" + what;
    return EnvironmentError(message);
  };
  if (outcome.timed_out) throw failure("ran past --timeout " + seconds_text(options_.timeout) + " (its process group was ended)");
  if (outcome.signal != 0) throw failure(std::string("was killed by signal ") + strsignal(outcome.signal));
  if (outcome.exit_status != 0) throw failure("exited with status " + std::to_string(outcome.exit_status));
  if (!std::filesystem::exists(result_path)) throw failure("exited with status 0 but wrote no result");
  return result_path;
}

Trace ExternalRecipe::run(const Scenario& scenario) const {
  const std::string result_path =
      run_command([&scenario](const std::string& path) { write_case(path, scenario); },
                  "--- the scenario ---\n" + to_json_text(scenario));
  return read_result(result_path, scenario);
}

DifferentialResult ExternalRecipe::run_differential(const Splits& splits) const {
  const std::string result_path =
      run_command([&splits](const std::string& path) { write_differential_case(path, splits); },
                  "--- the splits ---\n" + to_json_text(splits));
  return read_differential_result(result_path, splits);
}

}  // namespace gacc::external
