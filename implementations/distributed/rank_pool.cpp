#include "implementations/distributed/rank_pool.h"

#include <c10/util/Logging.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/errors.h"
#include "core/interrupt.h"
#include "implementations/distributed/communicator.h"
#include "implementations/distributed/companion_files.h"
#include "implementations/distributed/data_parallel.h"
#include "implementations/distributed/nccl_plugin.h"
#include "implementations/torch/training_loop.h"

#ifndef GACC_RANK_BUILD_PATH
#define GACC_RANK_BUILD_PATH ""
#endif

namespace gacc::distributed {
namespace {

using Clock = std::chrono::steady_clock;

/// How often a waiting driver looks for dead or stalled ranks.
constexpr std::chrono::milliseconds kPollInterval{50};

/// c10d logs a warning for every store wait that times out; gacc's waits time out by design (the
/// driver's poll, a rank's wait for the next job), and it reports real failures itself.
void quiet_store_timeouts() {
  if (FLAGS_caffe2_log_level < 2) FLAGS_caffe2_log_level = 2;  // errors only
}

std::vector<uint8_t> bytes(const std::string& text) { return {text.begin(), text.end()}; }
std::string text(const std::vector<uint8_t>& value) { return {value.begin(), value.end()}; }

std::string job_key(int64_t job) { return "job/" + std::to_string(job); }
std::string result_key(int64_t job, int rank) {
  return "result/" + std::to_string(job) + "/" + std::to_string(rank);
}
std::string progress_key(int64_t job, int rank) {
  return "progress/" + std::to_string(job) + "/" + std::to_string(rank);
}
std::string ready_key(int rank) { return "ready/" + std::to_string(rank); }
std::string done_key(int rank) { return "done/" + std::to_string(rank); }

const char* fault_name(Fault::Kind kind) {
  switch (kind) {
    case Fault::Kind::crash:
      return "crash";
    case Fault::Kind::hang:
      return "hang";
    case Fault::Kind::exit:
      return "exit";
    case Fault::Kind::raise:
      return "throw";
  }
  return "crash";
}

/// A NCCL rank's CUDA device: a local pool's rank r has device r; torchrun's, its LOCAL_RANK.
int cuda_device(int rank, bool local_pool) {
  if (local_pool) return rank;
  const char* local_rank = std::getenv("LOCAL_RANK");
  if (local_rank == nullptr) return rank;
  const auto device = whole_integer(local_rank);
  if (device && *device >= 0) return *device;
  throw EnvironmentError(std::string("LOCAL_RANK=\"") + local_rank + "\" (torchrun's convention) is not a device index");
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    return std::string("was killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "stopped";
}

/// The first lines of a message, for a report that names many ranks.
std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

/// Everything another rank's trace must share with rank 0's, bit for bit: after the same summed
/// gradients every replica takes the same step.
std::string replica_divergence(const std::vector<Trace>& traces) {
  const Trace& reference = traces[0];
  for (size_t r = 1; r < traces.size(); ++r) {
    const Trace& other = traces[r];
    const std::string who = "rank " + std::to_string(r);
    if (other.steps.size() != reference.steps.size()) {
      return who + " took " + std::to_string(other.steps.size()) + " steps, rank 0 " +
             std::to_string(reference.steps.size());
    }
    for (size_t s = 0; s < reference.steps.size(); ++s) {
      const auto& a = reference.steps[s];
      const auto& b = other.steps[s];
      const std::string at = who + " differs from rank 0 after step " + std::to_string(s) + ": ";
      if (a.params_after != b.params_after) {
        for (size_t i = 0; i < a.params_after.size() && i < b.params_after.size(); ++i) {
          if (a.params_after[i] != b.params_after[i]) {
            std::ostringstream out;
            out.precision(9);
            out << at << "parameter " << i << " is " << b.params_after[i] << ", rank 0's "
                << a.params_after[i];
            return out.str();
          }
        }
        return at + "its parameters";
      }
      if (a.optimizer_state != b.optimizer_state) return at + "its optimizer state";
      if (a.buffers_after != b.buffers_after) return at + "its buffers";
      if (a.skipped != b.skipped) return at + (b.skipped ? "it skipped the step" : "it took the step");
    }
  }
  return "";
}

}  // namespace

Fault parse_fault(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  Fault fault;
  if (kind == "crash") {
    fault.kind = Fault::Kind::crash;
  } else if (kind == "hang") {
    fault.kind = Fault::Kind::hang;
  } else if (kind == "exit") {
    fault.kind = Fault::Kind::exit;
  } else if (kind == "throw") {
    fault.kind = Fault::Kind::raise;
  } else {
    throw UsageError("fault \"" + spec + "\": expected crash:RANK, hang:RANK, exit:RANK or throw:RANK");
  }
  const auto rank = whole_integer(colon == std::string::npos ? "" : spec.substr(colon + 1));
  if (!rank || *rank < 0) throw UsageError("fault \"" + spec + "\": the rank must be a non-negative integer");
  fault.rank = *rank;
  return fault;
}

std::string find_rank_executable() {
  const std::string found = find_companion_file("gacc-rank", "GACC_RANK_EXECUTABLE", GACC_RANK_BUILD_PATH, true);
  if (!found.empty()) return found;
  throw EnvironmentError("cannot find gacc-rank (the data-parallel rank process) beside " + self_directory() +
                         "; set GACC_RANK_EXECUTABLE");
}

std::optional<int> whole_integer(const std::string& text) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

Master parse_master(const std::string& host, const std::string& port) {
  Master master{host, whole_integer(port).value_or(-1)};
  if (host.empty()) throw UsageError("MASTER_ADDR is empty");
  if (master.port < 1 || master.port > 65535) {
    throw UsageError("MASTER_PORT \"" + port + "\" is not a port number (1 to 65535)");
  }
  return master;
}

c10::intrusive_ptr<c10d::Store> connect_store(const Master& master, bool server,
                                              std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(master.port);
  options.isServer = server;
  options.waitWorkers = false;
  options.timeout = timeout;
  const std::string where = master.host + ":" + std::to_string(master.port);
  try {
    return c10::make_intrusive<c10d::TCPStore>(master.host, options);
  } catch (const std::exception& e) {
    throw EnvironmentError(server ? "cannot host the TCPStore on " +
                                        (master.port == 0 ? master.host + " (on any free port)"
                                                          : where + " (is the port in use?)") +
                                        ": " + first_line(e.what())
                                  : "cannot reach the master's TCPStore at " + where + " within " +
                                        std::to_string(timeout.count()) + " ms: " + first_line(e.what()));
  }
}

RankPool::RankPool(RankPoolOptions options) : options_(std::move(options)) {
  if (options_.ranks < 1) throw UsageError("a rank pool needs at least one rank");
  fault_pending_ = options_.fault.has_value();
}

RankPool::~RankPool() {
  try {
    stop(true);
  } catch (...) {
    // a destructor reports nothing; stop() has killed and reaped what it could
  }
}

void RankPool::start() {
  if (store_) return;
  quiet_store_timeouts();
  if (options_.torchrun_master) {
    start_torchrun();
    return;
  }
  const std::string executable = options_.executable.empty() ? find_rank_executable() : options_.executable;
  if (options_.backend == ProcessGroupBackend::nccl) {
    const int devices = nccl_device_count();
    if (devices < options_.ranks) {
      throw EnvironmentError("the NCCL backend needs one CUDA device per rank: " + std::to_string(options_.ranks) +
                             " ranks, " + std::to_string(devices) + " CUDA device" + (devices == 1 ? "" : "s") +
                             " visible (--ranks sets the ranks)");
    }
  }
  store_ = connect_store({"127.0.0.1", 0}, true, options_.timeout);  // any free loopback port
  next_job_ = 0;  // fresh ranks on a fresh store serve from job 0
  const auto port = static_cast<c10d::TCPStore&>(*store_).getPort();
  for (int rank = 0; rank < options_.ranks; ++rank) {
    const std::vector<std::string> args = {executable,
                                           "--master",
                                           "127.0.0.1:" + std::to_string(port),
                                           "--rank",
                                           std::to_string(rank),
                                           "--ranks",
                                           std::to_string(options_.ranks),
                                           "--timeout-ms",
                                           std::to_string(options_.timeout.count()),
                                           "--backend",
                                           to_string(options_.backend)};
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
      stop(false);
      throw EnvironmentError(std::string("cannot start rank ") + std::to_string(rank) + ": " +
                             std::strerror(errno));
    }
    if (pid == 0) {
      // The child: die with the driver, whatever ends it. Only async-signal-safe calls until exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      execv(argv[0], argv.data());
      _exit(127);
    }
    pids_.push_back(pid);
  }
  // Every rank checks in, or the pool cannot work. Starting a process that loads LibTorch is not a
  // collective: it may take longer than a short --timeout on a loaded machine (seen: > 2 s for 8
  // ranks under the sanitizers on 2 cores), so the start gets at least kStartAllowance. A rank
  // that dies while starting is seen at once (dead_ranks), so this costs nothing when one does.
  constexpr std::chrono::milliseconds kStartAllowance{30000};
  const auto start_timeout = std::max(options_.timeout, kStartAllowance);
  const auto deadline = Clock::now() + start_timeout;
  for (int rank = 0; rank < options_.ranks; ++rank) {
    while (!store_->check({ready_key(rank)})) {
      if (interrupt_signal() != 0) {
        stop(false);
        check_interrupted();
      }
      const auto dead = dead_ranks();
      if (!dead.empty()) {
        stop(false);
        throw EnvironmentError("the rank pool did not start: " + dead.front() + " (" + executable + ")");
      }
      if (Clock::now() > deadline) {
        stop(false);
        throw EnvironmentError("the rank pool did not start: rank " + std::to_string(rank) +
                               " did not check in within " + std::to_string(start_timeout.count()) +
                               " ms");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

void RankPool::start_torchrun() {
  const Master& master = *options_.torchrun_master;
  store_ = torchrun_store(master, true, options_.timeout);
  next_job_ = 0;
  auto own = torchrun_store(master, false, options_.timeout);
  rank0_ = std::thread([own, ranks = options_.ranks, timeout = options_.timeout, find = options_.find,
                        backend = options_.backend] {
    try {
      serve(own, 0, ranks, timeout, find, false, backend);
    } catch (const std::exception&) {
      // the driver sees rank 0 stop answering, and says so
    }
  });
  const auto deadline = Clock::now() + options_.timeout;
  for (int rank = 1; rank < options_.ranks; ++rank) {
    while (!store_->check({ready_key(rank)})) {
      if (Clock::now() > deadline) {
        stop(false);
        throw EnvironmentError("rank " + std::to_string(rank) + " of " + std::to_string(options_.ranks) +
                               " did not check in at " + master.host + ":" + std::to_string(master.port) +
                               " within " + std::to_string(options_.timeout.count()) +
                               " ms (is `gacc run` running with RANK=" + std::to_string(rank) +
                               " and the same MASTER_ADDR and MASTER_PORT?)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

std::vector<std::string> RankPool::dead_ranks() {
  std::vector<std::string> dead;
  for (size_t rank = 0; rank < pids_.size(); ++rank) {
    if (pids_[rank] <= 0) continue;
    int status = 0;
    if (waitpid(pids_[rank], &status, WNOHANG) == pids_[rank]) {
      dead.push_back("rank " + std::to_string(rank) + " (pid " + std::to_string(pids_[rank]) + ") " +
                     describe_status(status));
      pids_[rank] = -1;  // reaped
    }
  }
  return dead;
}

void RankPool::stop(bool graceful) {
  if (!store_) return;
  try {
    store_->set(job_key(next_job_++), bytes(R"({"shutdown": true})"));
  } catch (...) {
    graceful = false;
  }
  if (options_.torchrun_master) {
    // Ranks started by someone else cannot be killed: let each read the shutdown job before the
    // store goes away (a rank stuck in a collective reads it after the timeout, or fails).
    // After a failure only this process' own rank 0 is waited for, briefly.
    const auto deadline = Clock::now() + (graceful ? options_.timeout : std::chrono::milliseconds(1000));
    bool own_done = false;
    for (int rank = 0; rank < (graceful ? options_.ranks : 1); ++rank) {
      bool done = false;
      try {
        while (!(done = store_->check({done_key(rank)})) && Clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      } catch (...) {
      }
      if (rank == 0) own_done = done;
    }
    if (rank0_.joinable()) {
      if (own_done) {
        rank0_.join();
      } else {
        rank0_.detach();  // stuck in a collective: the end of the process ends it
      }
    }
    store_.reset();
    return;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(graceful ? 2000 : 0);
  for (auto& pid : pids_) {
    if (pid <= 0) continue;
    int status = 0;
    while (graceful && Clock::now() < deadline && waitpid(pid, &status, WNOHANG) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (waitpid(pid, &status, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    pid = -1;
  }
  pids_.clear();
  store_.reset();
}

std::string RankPool::describe_job(int64_t job, const std::string& loop, const Scenario& scenario) const {
  return "job " + std::to_string(job) + " (" + loop + " on " + std::to_string(scenario.world_size) +
         " ranks: gacc repro '" + to_json_text(scenario) + "')";
}

Trace RankPool::run(const std::string& loop, const Scenario& scenario, JobTiming* timing) {
  const int world = scenario.world_size;
  if (world < 1 || world > options_.ranks) {
    throw std::invalid_argument("a job on " + std::to_string(world) + " ranks in a pool of " +
                                std::to_string(options_.ranks));
  }
  start();
  const int64_t job = next_job_++;
  nlohmann::json spec = {{"loop", loop}, {"scenario", to_json(scenario)}, {"world", world}};
  if (fault_pending_ && options_.fault->rank < world) {  // the first job the faulty rank takes part in
    spec["fault"] = {{"kind", fault_name(options_.fault->kind)}, {"rank", options_.fault->rank}};
    fault_pending_ = false;
  }
  store_->set(job_key(job), bytes(spec.dump()));

  // A rank is hung when it has neither answered nor moved on (its progress key) for the collective
  // timeout and a grace second: by then its peers, waiting for it in a collective, have timed out.
  const auto stall_limit = options_.timeout + std::chrono::seconds(1);
  std::vector<std::optional<nlohmann::json>> results(static_cast<size_t>(world));
  std::vector<std::string> progress(static_cast<size_t>(world));
  std::vector<Clock::time_point> moved(static_cast<size_t>(world), Clock::now());
  int answered = 0;
  while (answered < world) {
    // Block until every pending rank has answered, for a poll interval at most (a busy loop of
    // store queries would take the CPU from the ranks).
    std::vector<std::string> pending;
    for (int rank = 0; rank < world; ++rank) {
      if (!results[static_cast<size_t>(rank)]) pending.push_back(result_key(job, rank));
    }
    bool all_answered = false;
    try {
      store_->wait(pending, kPollInterval);
      all_answered = true;
    } catch (const c10::DistStoreError&) {
      // the poll interval passed: look at who answered, who moved on, who died
    }
    std::vector<int> hung;
    for (int rank = 0; rank < world; ++rank) {
      const auto r = static_cast<size_t>(rank);
      if (results[r]) continue;
      if (all_answered || store_->check({result_key(job, rank)})) {
        results[r] = nlohmann::json::parse(text(store_->get(result_key(job, rank))));
        ++answered;
        continue;
      }
      if (store_->check({progress_key(job, rank)})) {
        std::string now = text(store_->get(progress_key(job, rank)));
        if (now != progress[r]) {
          progress[r] = std::move(now);
          moved[r] = Clock::now();
        }
      }
      if (Clock::now() - moved[r] > stall_limit) hung.push_back(rank);
    }
    if (answered == world) break;
    if (interrupt_signal() != 0) {  // before the dead ranks: Ctrl-C on a terminal reaches them too
      stop(false);
      check_interrupted();
    }
    const auto dead = dead_ranks();
    if (!dead.empty()) {
      stop(false);
      throw EnvironmentError(dead.front() + " during " + describe_job(job, loop, scenario));
    }
    if (!hung.empty()) {
      std::string message;
      for (int rank : hung) {
        const auto& last = progress[static_cast<size_t>(rank)];
        message += (message.empty() ? "" : "; ") + std::string("rank ") + std::to_string(rank) +
                   " hung: no result and no progress for " + std::to_string(stall_limit.count()) + " ms (" +
                   (last.empty() ? "before its first micro-batch" : "after " + last) + ")";
      }
      for (int rank = 0; rank < world; ++rank) {
        const auto& result = results[static_cast<size_t>(rank)];
        if (result && result->contains("error")) {
          message += "; rank " + std::to_string(rank) +
                     " reports: " + first_line(result->at("error").get<std::string>());
        }
      }
      stop(false);
      throw EnvironmentError(message + " during " + describe_job(job, loop, scenario));
    }
  }

  std::vector<Trace> traces;
  std::string errors;
  bool environment = false;  // a rank's error is its environment's (EnvironmentError), not the loop's
  for (int rank = 0; rank < world; ++rank) {
    const auto& result = *results[static_cast<size_t>(rank)];
    if (result.contains("error")) {
      errors += (errors.empty() ? "" : "; ") + std::string("rank ") + std::to_string(rank) + ": " +
                result.at("error").get<std::string>();
      environment = environment || result.value("environment", false);
    } else {
      traces.push_back(trace_from_json(result.at("trace")));
    }
  }
  if (!errors.empty()) {
    stop(false);  // its peers may be stuck in a collective: start afresh
    if (environment) throw EnvironmentError(errors + " during " + describe_job(job, loop, scenario));
    throw std::runtime_error(errors);
  }
  if (timing) {
    const auto& first = *results[0];
    timing->loop_seconds = first.value("loop_seconds", 0.0);
    timing->collective_seconds = first.value("collective_seconds", 0.0);
  }
  const std::string divergence = replica_divergence(traces);
  Trace trace = std::move(traces[0]);
  trace.replica_divergence = divergence;
  return trace;
}

namespace {

std::mutex g_pool_mutex;
std::unique_ptr<RankPool> g_pool;
RankPoolOptions g_pool_options;

}  // namespace

RankPool& shared_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<RankPool>(g_pool_options);
  return *g_pool;
}

void configure_shared_pool(RankPoolOptions options) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_pool.reset();
  g_pool_options = std::move(options);
}

int shared_pool_ranks() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  return g_pool_options.ranks;
}

void shutdown_shared_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_pool.reset();
}

// --- the rank side ----------------------------------------------------------------------------

void serve(const c10::intrusive_ptr<c10d::Store>& store, int rank, int ranks,
           std::chrono::milliseconds timeout, const LoopFinder& find, bool loopback, ProcessGroupBackend backend) {
  if (rank < 0 || rank >= ranks) {
    throw std::invalid_argument("rank " + std::to_string(rank) + " of a pool of " + std::to_string(ranks));
  }
  quiet_store_timeouts();
  store->set(ready_key(rank), bytes("1"));
  std::map<int, std::unique_ptr<Communicator>> groups;  // by world size: ranks 0..world-1
  for (int64_t job = 0;; ++job) {
    while (true) {
      try {
        store->wait({job_key(job)}, std::chrono::milliseconds(60000));
        break;
      } catch (const c10::DistStoreError&) {
        // no job for a minute: keep waiting (the driver's death ends this process)
      }
    }
    const auto spec = nlohmann::json::parse(text(store->get(job_key(job))));
    if (spec.value("shutdown", false)) {
      store->set(done_key(rank), bytes("1"));
      return;
    }
    const int world = spec.at("world").get<int>();
    if (rank >= world) continue;
    nlohmann::json result;
    try {
      const std::string name = spec.at("loop").get<std::string>();
      const auto* loop = find(name);
      if (!loop) throw std::invalid_argument("no data-parallel loop named " + name);
      const Scenario scenario = parse_scenario(spec.at("scenario").dump());
      auto& group = groups[world];
      if (!group) {
        ProcessGroupOptions options{backend, loopback, 0};
        if (backend == ProcessGroupBackend::nccl) options.device = cuda_device(rank, loopback);
        group = std::make_unique<Communicator>(store, "group/" + std::to_string(world), rank, world, timeout,
                                               options);
      }
      group->reset_counts();
      std::optional<Fault> fault;
      if (spec.contains("fault") && spec["fault"].at("rank").get<int>() == rank) {
        fault = parse_fault(spec["fault"].at("kind").get<std::string>() + ":" + std::to_string(rank));
      }
      const auto progress = [&](int step, int micro) {
        store->set(progress_key(job, rank),
                   bytes("step " + std::to_string(step) + ", micro-batch " + std::to_string(micro)));
        if (!fault || step != 0 || micro != 0) return;
        switch (fault->kind) {
          case Fault::Kind::crash:
            std::raise(SIGSEGV);
            break;
          case Fault::Kind::hang:
            while (true) pause();
          case Fault::Kind::exit:
            _exit(0);
          case Fault::Kind::raise:
            throw std::runtime_error("injected fault on rank " + std::to_string(rank));
        }
      };
      const auto start = Clock::now();
      const Trace trace = loop->run_rank(scenario, group.get(), progress);
      result = {{"trace", to_json(trace)},
                {"loop_seconds", std::chrono::duration<double>(Clock::now() - start).count()},
                {"collective_seconds", group->collective_seconds()}};
    } catch (const EnvironmentError& e) {
      // The rank's environment (its process group, its device), not the loop: exit 4, not 1.
      result = {{"error", e.what()}, {"environment", true}};
    } catch (const std::exception& e) {
      result = {{"error", e.what()}};
    }
    store->set(result_key(job, rank), bytes(result.dump()));
  }
}

c10::intrusive_ptr<c10d::Store> torchrun_store(const Master& master, bool rank0_hosts,
                                               std::chrono::milliseconds timeout) {
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool agent_hosts = agent && std::string(agent) == "True";
  return c10::make_intrusive<c10d::PrefixStore>("gacc",
                                                connect_store(master, rank0_hosts && !agent_hosts, timeout));
}

void serve_rank(const Master& master, int rank, int ranks, std::chrono::milliseconds timeout,
                const LoopFinder& find, bool torchrun, ProcessGroupBackend backend) {
  serve(torchrun ? torchrun_store(master, false, timeout) : connect_store(master, false, timeout), rank,
        ranks, timeout, find, /*loopback=*/!torchrun, backend);
}

}  // namespace gacc::distributed
