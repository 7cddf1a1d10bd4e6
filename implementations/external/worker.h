#pragma once
/// `Worker`: a training stack started once that serves many cases over the worker protocol (Note
/// [worker protocol]), instead of one process (and one Python + torch start-up) per case. No
/// LibTorch.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/interrupt.h"

namespace gacc::external {

// Note [worker protocol]
// ~~~~~~~~~~~~~~~~~~~~~~
// Version 1. One JSON object per line, UTF-8, each way.
//
//   worker -> gacc   {"gacc_worker": 1}                      once, first: ready, protocol version 1
//   gacc -> worker   {"case": CASE_PATH, "result": RESULT_PATH}
//                                                            train on the case file, write the result
//   worker -> gacc   {"done": true}                          the result file is written
//                    {"error": TEXT}                         the stack failed on this case
//   gacc closes the worker's input: the worker exits.
//
// The case file says its mode (its format tag: `gacc-case` or `gacc-differential-case`). With
// `--worker`, gacc starts the command once (`/bin/sh -c`, a process group of its own, standard
// error into a log file) and talks over its standard input and output; with `--worker-fds IN,OUT`
// the program that started gacc is the worker and talks over two inherited descriptors (gacc reads
// IN, writes OUT): that is how the Python package's gacc.check serves its stack in-process.
//
// Every wait is bounded by --timeout, the handshake included. A worker that exits, answers with
// anything but the lines above (a stack printing to standard output: the Python side moves
// prints to standard error), or does not answer in time fails that case as a failing command does
// (exit 4, with the line it wrote and the tail of its output); its process group is ended, and a
// next case starts a fresh worker. A worker gacc did not start (--worker-fds) is not restarted.
// The same protocol reruns one case by hand:
//   printf '{"case": "case.pt", "result": "result.pt"}\n' | WORKER >/dev/null

/// Why a worker could not serve a case: what happened, and the tail of its output.
struct WorkerFailure {
  std::string problem;
  std::string output_tail;
};

class Worker {
 public:
  /// A worker gacc starts on first use: `command` through /bin/sh, its standard error into
  /// `log_path`.
  Worker(std::string command, std::string log_path);
  /// The program that started gacc, over inherited descriptors: gacc reads `in_fd`, writes `out_fd`.
  Worker(int in_fd, int out_fd);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Sends one case and waits up to `timeout` for the worker's answer (and its handshake, if it is
  /// new). nullopt when the result file is written; else why not (the worker is then ended, and
  /// restarted by the next call where gacc started it).
  std::optional<WorkerFailure> serve(const std::string& case_path, const std::string& result_path,
                                     std::chrono::milliseconds timeout);

  /// Workers started so far (1 + restarts); 0 for inherited descriptors.
  int starts() const { return starts_; }

 private:
  std::optional<WorkerFailure> start(std::chrono::milliseconds timeout);
  /// One line from the worker, or a failure (EOF, timeout, interrupt checked meanwhile).
  std::optional<WorkerFailure> read_line(std::string& line, std::chrono::steady_clock::time_point deadline);
  WorkerFailure failed(const std::string& problem, const std::string& line = "");
  void stop();

  std::string command_;
  std::string log_path_;
  bool inherited_ = false;
  int pid_ = -1;
  int to_worker_ = -1;
  int from_worker_ = -1;
  std::string buffered_;
  int starts_ = 0;
  bool ready_ = false;   ///< the worker said it is ready (the handshake was read)
  bool broken_ = false;  ///< an inherited worker that failed: not restartable
  std::unique_ptr<InterruptibleGroup> interruptible_;
};

}  // namespace gacc::external
