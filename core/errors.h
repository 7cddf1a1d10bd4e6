#pragma once
/// Errors that carry the exit code the `gacc` command answers with (docs/command-line.md, "Exit codes").

#include <stdexcept>
#include <string>

namespace gacc {

/// The documented exit codes of `gacc`.
enum class ExitCode : int {
  ok = 0,             ///< every correct recipe passes, every pitfall is caught
  property_failed = 1,  ///< a correct recipe failed a property, or a pitfall escaped every property
  usage = 2,          ///< bad flags or an unknown command
  bad_input = 3,      ///< a scenario, case or result file that is malformed or invalid
  environment = 4,    ///< a timeout, a dead rank, a failing external command, a missing dependency
};

/// Base of every error gacc reports to a person: the message names the problem.
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

/// A command line that cannot be understood (exit 2).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::usage, message) {}
};

/// Input data that is malformed or invalid (exit 3). The message names the field.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(ExitCode::bad_input, message) {}
};

/// A valid scenario on which equivalence cannot be judged: its large-batch trajectory leaves the
/// range the judged format can hold (it diverges), so a correct stack's overflow is no accumulation
/// bug. Bad input when a person gave the scenario (exit 3); a generated one is counted and skipped.
class InvalidCase : public InputError {
 public:
  explicit InvalidCase(const std::string& message) : InputError(message) {}
};

/// The environment failed us: a dependency, a process, a timeout (exit 4).
class EnvironmentError : public Error {
 public:
  explicit EnvironmentError(const std::string& message) : Error(ExitCode::environment, message) {}
};

}  // namespace gacc
