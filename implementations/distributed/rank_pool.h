#pragma once
/// Data parallelism on the real engine: W ranks, each its own process, in one c10d process group
/// over Gloo (or NCCL: RankPoolOptions::backend). The `RankPool` (the driver) starts the rank processes
/// (`gacc-rank`) once and hands them jobs — run this data-parallel loop on this scenario — through a c10d
/// TCPStore; `serve` is the rank side. A job on W ranks runs on ranks 0..W-1 of the pool, in a process group
/// of W (formed on first use and kept). Every rank returns its trace; the driver checks that the replicas
/// agree.
///
/// Faults end the pool and surface as EnvironmentError (exit 4) naming the rank: a rank that dies
/// (signal or early exit), or one that neither answers nor makes progress for the collective timeout
/// and a grace second (hung).
/// A loop that throws on a rank is the recipe's failure (std::runtime_error with that rank's
/// message); a rank whose environment fails it (its process group cannot form, its CUDA device is
/// missing: EnvironmentError on the rank) is an EnvironmentError here too. Rank processes die with the driver
/// (PR_SET_PDEATHSIG) and are reaped; none is left.
///
/// The store protocol: the driver sets "job/<n>" (JSON: loop, scenario, optional fault); every rank
/// sets "ready/<r>" once, "progress/<n>/<r>" as it goes, "result/<n>/<r>" (JSON: trace or error, and
/// rank 0's timings), and "done/<r>" when it reads the shutdown job.

#include <c10/util/intrusive_ptr.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/scenario.h"
#include "core/trace.h"
#include "implementations/distributed/process_group_backend.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace gacc::torch_recipes {
class TorchTrainingLoop;
}  // namespace gacc::torch_recipes

namespace gacc::distributed {

/// A fault to inject, for testing fault handling: in the first job rank `rank` takes part in, it
/// crashes (SIGSEGV), hangs, exits early (exit status 0), or throws, after its first micro-batch.
struct Fault {
  enum class Kind { crash, hang, exit, raise };
  Kind kind = Kind::crash;
  int rank = 0;
};
/// Parses "crash:1", "hang:0", "exit:2", "throw:1"; throws UsageError otherwise.
Fault parse_fault(const std::string& text);

/// Finds a data-parallel loop by name (null if none): how a rank learns what a job runs.
using LoopFinder = std::function<const torch_recipes::TorchTrainingLoop*(const std::string&)>;

/// `text` as a whole integer (std::stoi's syntax, nothing left over); nullopt otherwise. How the
/// ranks, ports, devices and flags of the data-parallel world are read.
std::optional<int> whole_integer(const std::string& text);

/// Where the ranks meet: the TCPStore's host and port (torchrun's MASTER_ADDR and MASTER_PORT).
struct Master {
  std::string host;
  int port = 0;
};
/// From MASTER_ADDR and MASTER_PORT's values; throws UsageError on a port outside 1..65535.
Master parse_master(const std::string& host, const std::string& port);

struct RankPoolOptions {
  int ranks = 8;                             ///< ranks: the largest world a job may use
  std::chrono::milliseconds timeout{20000};  ///< a collective that waits longer fails
  std::string executable;                    ///< gacc-rank; empty: found (see find_rank_executable)
  std::optional<Fault> fault;                ///< injected once (see Fault)
  /// torchrun: the ranks are processes someone else started (ranks 1..N-1 run serve_rank); this
  /// process hosts the store at `master` and serves rank 0 in a thread of its own. Empty: the pool
  /// starts `ranks` local gacc-rank processes and meets them on a free loopback port.
  std::optional<Master> torchrun_master;
  /// torchrun: how this process' rank 0 finds a job's loop.
  LoopFinder find;
  /// The process groups' backend. NCCL: one CUDA device per rank (a local pool's rank r on device
  /// r; under torchrun, device LOCAL_RANK); a local pool with more ranks than devices does not start.
  ProcessGroupBackend backend = ProcessGroupBackend::gloo;
};

/// The `gacc-rank` executable: GACC_RANK_EXECUTABLE, else next to the running executable, else the
/// one this build produced. Throws EnvironmentError when none exists.
std::string find_rank_executable();

class RankPool {
 public:
  explicit RankPool(RankPoolOptions options);
  /// Shuts the ranks down (or kills them) and reaps them.
  ~RankPool();
  RankPool(const RankPool&) = delete;
  RankPool& operator=(const RankPool&) = delete;

  int ranks() const { return options_.ranks; }

  /// Where rank 0's time went in a job (for benchmarks).
  struct JobTiming {
    double loop_seconds = 0.0;        ///< run_rank, collectives included
    double collective_seconds = 0.0;  ///< waiting in collectives
  };

  /// Runs data-parallel loop `loop` on `scenario` over ranks 0..world_size-1 and returns rank 0's
  /// trace, with replica_divergence set where another rank's parameters, optimizer state or buffers
  /// differ from rank 0's. Starts the ranks on first use. `timing`, when given, gets rank 0's times.
  Trace run(const std::string& loop, const Scenario& scenario, JobTiming* timing = nullptr);

 private:
  void start();
  void start_torchrun();
  /// Ends every rank with a shutdown job. Local pool: waits up to 2 s when `graceful` (not at all
  /// otherwise), then SIGKILLs whatever is left and reaps all. torchrun: waits for every rank's
  /// "done" mark (only for its own rank 0, briefly, when not graceful), since it cannot kill them.
  void stop(bool graceful);
  /// The ranks that have died, as messages; empty if all live.
  std::vector<std::string> dead_ranks();
  std::string describe_job(int64_t job, const std::string& loop, const Scenario& scenario) const;

  RankPoolOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::vector<pid_t> pids_;
  std::thread rank0_;  ///< torchrun: this process' own rank 0
  int64_t next_job_ = 0;
  bool fault_pending_ = false;
};

/// The process-wide pool that data-parallel recipes use, started on first use with the options of
/// the last configure_shared_pool (default options if none).
RankPool& shared_pool();
void configure_shared_pool(RankPoolOptions options);
/// Ends the shared pool now (it restarts on next use).
void shutdown_shared_pool();

/// The store at `master`: hosted here (`server`; port 0 takes any free port; EnvironmentError when
/// the port cannot be bound) or
/// reached as a client (EnvironmentError when the master does not answer within `timeout`).
c10::intrusive_ptr<c10d::Store> connect_store(const Master& master, bool server,
                                              std::chrono::milliseconds timeout);

/// The rank side: serves jobs from `store` as `rank` of a pool of `ranks` until a shutdown job,
/// finding each job's loop with `find`. Returns normally on shutdown. `loopback`: a local pool, its
/// Gloo groups over 127.0.0.1 and its NCCL rank r on CUDA device r; otherwise torchrun, across hosts:
/// Gloo over the host's own address (GLOO_SOCKET_IFNAME picks the interface), NCCL on CUDA device
/// LOCAL_RANK (torchrun's local rank; the rank itself where it is not set).
void serve(const c10::intrusive_ptr<c10d::Store>& store, int rank, int ranks,
           std::chrono::milliseconds timeout, const LoopFinder& find, bool loopback = true,
           ProcessGroupBackend backend = ProcessGroupBackend::gloo);

/// torchrun's store: under torchrun's agent (TORCHELASTIC_USE_AGENT_STORE=True) the agent hosts it
/// at `master` and every rank is a client; otherwise rank 0 hosts it (`rank0_hosts`). gacc's keys
/// live under "gacc/", apart from torchrun's own.
c10::intrusive_ptr<c10d::Store> torchrun_store(const Master& master, bool rank0_hosts,
                                               std::chrono::milliseconds timeout);

/// A rank process: reach the store at `master`, then serve (see serve) until the driver ends the
/// pool. A gacc-rank of the local pool (`torchrun` false: loopback), or torchrun's rank 1..N-1
/// (its store, Gloo over the host's address).
void serve_rank(const Master& master, int rank, int ranks, std::chrono::milliseconds timeout,
                const LoopFinder& find, bool torchrun, ProcessGroupBackend backend = ProcessGroupBackend::gloo);

}  // namespace gacc::distributed
