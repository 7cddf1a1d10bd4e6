#include "implementations/external/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "implementations/external/shell_command.h"

namespace gacc::external {
namespace {

using Clock = std::chrono::steady_clock;

/// How often a wait looks at the interrupt flag.
constexpr int kPollMilliseconds = 50;
/// A line longer than this is no protocol line.
constexpr size_t kMaxLine = 1 << 16;
/// How long a worker has to exit after its input closes before its group is ended.
constexpr auto kGraceToExit = std::chrono::milliseconds(2000);

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

/// Writes all of `text`; false when the reader is gone.
bool write_all(int fd, const std::string& text) {
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

std::string shown(const std::string& line) {
  constexpr size_t kShown = 200;
  return line.size() > kShown ? line.substr(0, kShown) + "..." : line;
}

}  // namespace

Worker::Worker(std::string command, std::string log_path)
    : command_(std::move(command)), log_path_(std::move(log_path)) {}

Worker::Worker(int in_fd, int out_fd) : inherited_(true), to_worker_(out_fd), from_worker_(in_fd) {
  // A descriptor the parent does not want gacc's children to inherit.
  fcntl(in_fd, F_SETFD, FD_CLOEXEC);
  fcntl(out_fd, F_SETFD, FD_CLOEXEC);
}

Worker::~Worker() { stop(); }

void Worker::stop() {
  ready_ = false;
  close_fd(to_worker_);  // the worker sees the end of its input
  close_fd(from_worker_);
  if (pid_ > 0) {
    int status = 0;
    if (reaped_by(pid_, Clock::now() + kGraceToExit, status)) {
      kill(-pid_, SIGKILL);  // whatever it left behind
    } else {
      end_process_group(pid_, status);
    }
    pid_ = -1;
  }
  interruptible_.reset();
  buffered_.clear();
}

WorkerFailure Worker::failed(const std::string& problem, const std::string& line) {
  WorkerFailure failure{problem, {}};
  if (!line.empty()) failure.problem += ": " + shown(line);
  if (inherited_) {
    broken_ = true;
    stop();
  } else {
    stop();
    failure.output_tail = file_tail(log_path_, 20, 4000);
  }
  return failure;
}

std::optional<WorkerFailure> Worker::read_line(std::string& line, Clock::time_point deadline) {
  while (true) {
    const size_t end = buffered_.find('\n');
    if (end != std::string::npos) {
      line = buffered_.substr(0, end);
      buffered_.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return std::nullopt;
    }
    if (buffered_.size() > kMaxLine) return failed("wrote a line of over 64 KiB, no protocol line", buffered_);
    check_interrupted();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return failed("did not answer within --timeout");
    pollfd p{from_worker_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, kPollMilliseconds)));
    if (ready < 0 && errno != EINTR) return failed(std::string("could not be read: ") + std::strerror(errno));
    if (ready <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(from_worker_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return failed(buffered_.empty() ? "exited (its output ended)" : "exited in the middle of a line", buffered_);
    }
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<WorkerFailure> Worker::start(std::chrono::milliseconds timeout) {
  if (!inherited_) {
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) throw EnvironmentError("cannot write " + log_path_ + ": " + std::strerror(errno));
    int to[2] = {-1, -1}, from[2] = {-1, -1};
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
      const std::string why = std::strerror(errno);
      for (int fd : {to[0], to[1], from[0], from[1], log}) {
        if (fd >= 0) close(fd);
      }
      throw EnvironmentError("cannot make the worker's pipes: " + why);
    }
    try {
      pid_ = start_shell_process(command_, to[0], from[1], log);
    } catch (...) {
      for (int fd : {to[0], to[1], from[0], from[1], log}) close(fd);
      throw;
    }
    close(to[0]);
    close(from[1]);
    close(log);
    to_worker_ = to[1];
    from_worker_ = from[0];
    interruptible_ = std::make_unique<InterruptibleGroup>(pid_);
    ++starts_;
  }
  std::string line;
  if (auto failure = read_line(line, Clock::now() + timeout)) {
    failure->problem = "did not say it is ready ({\"gacc_worker\": 1}): " + failure->problem;
    return failure;
  }
  const auto hello = nlohmann::json::parse(line, nullptr, false);
  if (hello.is_discarded() || !hello.is_object() || !hello.contains("gacc_worker")) {
    return failed("answered where {\"gacc_worker\": 1} was due", line);
  }
  if (hello["gacc_worker"] != 1) return failed("speaks another protocol version than 1", line);
  ready_ = true;
  return std::nullopt;
}

std::optional<WorkerFailure> Worker::serve(const std::string& case_path, const std::string& result_path,
                                           std::chrono::milliseconds timeout) {
  if (broken_) return WorkerFailure{"failed on an earlier case, and gacc did not start it (--worker-fds)", {}};
  if (!ready_) {
    if (auto failure = start(timeout)) return failure;
  }
  // A worker that is gone makes write fail (EPIPE) rather than end gacc: SIGPIPE is ignored here.
  signal(SIGPIPE, SIG_IGN);
  const nlohmann::json request = {{"case", case_path}, {"result", result_path}};
  if (!write_all(to_worker_, request.dump() + "\n")) return failed("exited (its input is closed)");
  std::string line;
  if (auto failure = read_line(line, Clock::now() + timeout)) return failure;
  const auto answer = nlohmann::json::parse(line, nullptr, false);
  if (!answer.is_discarded() && answer.is_object()) {
    if (answer.contains("done") && answer["done"] == true) return std::nullopt;
    if (answer.contains("error") && answer["error"].is_string()) {
      // The stack failed on this case; the worker itself is fine and stays.
      WorkerFailure failure{"failed on this case: " + answer["error"].get<std::string>(), {}};
      if (!inherited_) failure.output_tail = file_tail(log_path_, 20, 4000);
      return failure;
    }
  }
  return failed("answered with no protocol line", line);
}

}  // namespace gacc::external
