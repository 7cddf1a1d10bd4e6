#pragma once
/// Runs another program's command line under a deadline: `/bin/sh -c COMMAND` in a process group of
/// its own, standard output and error into a log file, the whole group ended when the deadline
/// passes (SIGTERM, then SIGKILL) and whatever it left behind ended when it exits. No LibTorch.

#include <chrono>
#include <string>

namespace gacc::external {

struct CommandOutcome {
  int exit_status = -1;   ///< the shell's exit status; -1 when a signal ended it or it timed out
  int signal = 0;         ///< the signal that ended it, 0 if none
  bool timed_out = false;
  double seconds = 0.0;
  std::string log_tail;   ///< the last lines of its standard output and error
};

/// Runs `command` through /bin/sh, writing its output to `log_path`; returns once it and its
/// process group are gone. Throws EnvironmentError when it cannot even start.
CommandOutcome run_shell_command(const std::string& command, std::chrono::milliseconds timeout,
                                 const std::string& log_path);

/// Starts `/bin/sh -c command` in a process group of its own that dies with gacc, its standard input,
/// output and error on the given descriptors (stdin -1: /dev/null). Throws EnvironmentError when it
/// cannot start. The caller reaps it (end_process_group, or waitpid).
int start_shell_process(const std::string& command, int stdin_fd, int stdout_fd, int stderr_fd);

/// Waits for `pid` until `deadline` (or a signal asking gacc to stop); true once it is reaped, its
/// wait status in `status`.
bool reaped_by(int pid, std::chrono::steady_clock::time_point deadline, int& status);

/// Ends process group `pid` whole: SIGTERM, a grace period for its leader to be reaped, then SIGKILL
/// to whatever is left. `status` receives the leader's wait status.
void end_process_group(int pid, int& status);

/// `text` quoted for /bin/sh: one single-quoted word.
std::string shell_quoted(const std::string& text);

/// The last `max_lines` lines (at most `max_bytes` bytes) of a file; empty if it cannot be read.
std::string file_tail(const std::string& path, int max_lines, size_t max_bytes);

}  // namespace gacc::external
