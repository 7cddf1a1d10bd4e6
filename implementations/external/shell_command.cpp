#include "implementations/external/shell_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/errors.h"
#include "core/interrupt.h"

namespace gacc::external {
namespace {

using Clock = std::chrono::steady_clock;

/// How long an ended command's group has between SIGTERM and SIGKILL.
constexpr auto kGraceAfterTerm = std::chrono::milliseconds(1000);
/// How often a running command is looked at.
constexpr auto kPoll = std::chrono::milliseconds(5);

}  // namespace

bool reaped_by(int pid, std::chrono::steady_clock::time_point deadline, int& status) {
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return true;
    if (done < 0 && errno != EINTR) return true;  // not ours any more: nothing to wait for
    if (Clock::now() >= deadline || interrupt_signal() != 0) return false;
    std::this_thread::sleep_for(kPoll);
  }
}

void end_process_group(int pid, int& status) {
  kill(-pid, SIGTERM);
  if (!reaped_by(pid, Clock::now() + kGraceAfterTerm, status)) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  kill(-pid, SIGKILL);  // whatever the shell left behind
}

int start_shell_process(const std::string& command, int stdin_fd, int stdout_fd, int stderr_fd) {
  const int null_input = stdin_fd >= 0 ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const std::string why = std::strerror(errno);
    if (null_input >= 0) close(null_input);
    throw EnvironmentError("cannot start the external command: " + why);
  }
  if (pid == 0) {
    // The child: a process group of its own (the run ends it whole), dying with gacc; only
    // async-signal-safe calls until exec.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    const int input = stdin_fd >= 0 ? stdin_fd : null_input;
    if (input >= 0) dup2(input, STDIN_FILENO);
    dup2(stdout_fd, STDOUT_FILENO);
    dup2(stderr_fd, STDERR_FILENO);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so that the group exists before anything signals it
  if (null_input >= 0) close(null_input);
  return pid;
}

CommandOutcome run_shell_command(const std::string& command, std::chrono::milliseconds timeout,
                                 const std::string& log_path) {
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) throw EnvironmentError("cannot write " + log_path + ": " + std::strerror(errno));
  const auto start = Clock::now();
  pid_t pid = -1;
  try {
    pid = start_shell_process(command, -1, log, log);
  } catch (...) {
    close(log);
    throw;
  }
  close(log);
  const InterruptibleGroup interruptible(pid);

  CommandOutcome outcome;
  int status = 0;
  if (!reaped_by(pid, start + timeout, status)) {
    outcome.timed_out = interrupt_signal() == 0;
    end_process_group(pid, status);
  } else {
    kill(-pid, SIGKILL);  // background processes the command left running
  }
  outcome.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  check_interrupted();
  if (!outcome.timed_out) {
    if (WIFEXITED(status)) outcome.exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  }
  outcome.log_tail = file_tail(log_path, 20, 4000);
  return outcome;
}

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string file_tail(const std::string& path, int max_lines, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  size_t cut = text.size();
  for (int lines = 0; lines < max_lines && cut != std::string::npos && cut > 0; ++lines) {
    cut = text.rfind('\n', cut - 1);
  }
  if (cut != std::string::npos && cut < text.size() && text[cut] == '\n') text = text.substr(cut + 1);
  return text;
}

}  // namespace gacc::external
