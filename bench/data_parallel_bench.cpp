#include "bench/data_parallel_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "bench/timing.h"
#include "core/errors.h"
#include "core/trace.h"
#include "implementations/distributed/nccl_plugin.h"
#include "implementations/distributed/rank_pool.h"
#include "implementations/torch/training_loop.h"

namespace gacc::bench {
namespace {

constexpr int kSteps = 8;
constexpr int kMicroBatches = 4;
constexpr int kMicroBatchSize = 4;

Scenario mlp_scenario(int world) {
  Scenario sc;
  sc.model.arch = Architecture::mlp_tanh;
  sc.model.input_dim = 16;
  sc.model.hidden_dim = 256;
  sc.model.output_dim = 8;
  sc.model.init_seed = 1;
  sc.data.seed = 2;
  sc.data.global_batch = static_cast<int64_t>(world) * kMicroBatches * kMicroBatchSize;
  const std::vector<std::vector<int64_t>> window(static_cast<size_t>(world),
                                                 std::vector<int64_t>(kMicroBatches, kMicroBatchSize));
  sc.data.windows.assign(kSteps, window);
  sc.optimizer.kind = OptimizerKind::adam;
  sc.optimizer.lr = 1e-3;
  sc.world_size = world;
  sc.accumulation_steps = kMicroBatches;
  sc.steps = kSteps;
  validate(sc);
  return sc;
}

}  // namespace

nlohmann::json run_data_parallel_bench(std::ostream& out, distributed::ProcessGroupBackend backend) {
  nlohmann::json figures = nlohmann::json::array();
  distributed::RankPoolOptions options;
  options.ranks = 8;
  options.backend = backend;
  const bool nccl = backend == distributed::ProcessGroupBackend::nccl;
  if (nccl) options.ranks = distributed::local_nccl_ranks(0, "gacc bench data-parallel --backend nccl");
  distributed::RankPool pool(options);
  const torch_recipes::TorchTrainingLoop single;

  char line[256];
  std::snprintf(line, sizeof line, "%-3s %-28s %11s %9s %13s %15s %9s %10s\n", "W", "loop", "collectives",
                "bytes", "ms per step", "in collectives", "vs once", "job ms");
  out << (nccl ? "data parallelism on c10d/NCCL (one CUDA device per rank), "
               : "data parallelism on c10d/Gloo (loopback), ")
      << kSteps << " optimizer steps of K = " << kMicroBatches << " micro-batches of " << kMicroBatchSize
      << " examples per rank, mlp_tanh 16-256-8 (Adam); per optimizer "
      << "step on rank 0 (fastest of 5 jobs)\n"
      << line;
  for (int world : {2, 4, 8}) {
    if (world > options.ranks) continue;  // NCCL: not that many devices
    const Scenario sc = mlp_scenario(world);
    Scenario merged = sc;  // the same global batch on one process, one micro-batch per window
    merged.world_size = 1;
    merged.accumulation_steps = 1;
    merged.data.windows.assign(kSteps, {{sc.data.global_batch}});
    const double single_seconds = fastest_seconds([&] { single.run(merged); }, 5, 0.5) / kSteps;
    double once_seconds = 0.0;
    for (const char* loop : {"ddp-accumulate", "ddp-sync-every-micro-batch"}) {
      Trace trace = pool.run(loop, sc);  // warm: forms the process group of this world
      distributed::RankPool::JobTiming best{1e300, 0.0};
      double job_seconds = 1e300;
      for (int run = 0; run < 5; ++run) {
        distributed::RankPool::JobTiming timing;
        const auto start = std::chrono::steady_clock::now();
        trace = pool.run(loop, sc, &timing);
        job_seconds = std::min(
            job_seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (timing.loop_seconds < best.loop_seconds) best = timing;
      }
      const double seconds = best.loop_seconds / kSteps;
      if (once_seconds == 0.0) once_seconds = seconds;
      const double collectives = static_cast<double>(trace.counters.all_reduces) / kSteps;
      const double bytes = static_cast<double>(trace.counters.all_reduce_bytes) / kSteps;
      std::snprintf(line, sizeof line, "%-3d %-28s %11.0f %9.0f %13.3f %15.3f %9.2f %10.1f\n", world, loop,
                    collectives, bytes, seconds * 1e3, best.collective_seconds / kSteps * 1e3,
                    seconds / once_seconds, job_seconds * 1e3);
      out << line;
      figures.push_back({{"backend", distributed::to_string(backend)},
                         {"world", world},
                         {"loop", loop},
                         {"collectives_per_step", collectives},
                         {"bytes_per_step", bytes},
                         {"seconds_per_step", seconds},
                         {"collective_seconds_per_step", best.collective_seconds / kSteps},
                         {"ratio_to_once_per_window", seconds / once_seconds},
                         {"job_seconds", job_seconds},
                         {"single_process_seconds_per_step", single_seconds}});
    }
    std::snprintf(line, sizeof line, "%-3d %-28s %11s %9s %13.3f\n", world, "(one process, same batch)", "-",
                  "-", single_seconds * 1e3);
    out << line;
  }
  return figures;
}

}  // namespace gacc::bench
