// gacc-rank: one rank of gacc's data-parallel pool. Started by the driver (RankPool), never by hand:
//   gacc-rank --master HOST:PORT --rank R --ranks N --timeout-ms T [--backend gloo|nccl]
// It serves the driver's jobs until told to stop; exit status 0, or 4 with a message on stderr.
// (torchrun's ranks 1..N-1 do the same from `gacc run`: serve_rank.)

#include <cstdlib>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include "core/errors.h"
#include "implementations/distributed/rank_pool.h"
#include "implementations/registry.h"

namespace {

int integer(const std::string& flag, const std::string& value) {
  const auto n = gacc::distributed::whole_integer(value);
  if (!n) throw std::invalid_argument(flag + " " + value);
  return *n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string master_text;
  int rank = -1, ranks = 0, timeout_ms = 0;
  auto backend = gacc::distributed::ProcessGroupBackend::gloo;
  try {
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--master") {
        master_text = value;
      } else if (flag == "--rank") {
        rank = integer(flag, value);
      } else if (flag == "--ranks") {
        ranks = integer(flag, value);
      } else if (flag == "--timeout-ms") {
        timeout_ms = integer(flag, value);
      } else if (flag == "--backend") {
        backend = gacc::distributed::parse_process_group_backend(value);
      } else {
        throw std::invalid_argument("unknown flag " + flag);
      }
    }
    const auto colon = master_text.rfind(':');
    if (colon == std::string::npos || rank < 0 || ranks < 1 || rank >= ranks || timeout_ms < 1) {
      throw std::invalid_argument("expected --master HOST:PORT --rank R --ranks N --timeout-ms T");
    }
    torch::set_num_threads(1);
    const auto master = gacc::distributed::parse_master(master_text.substr(0, colon), master_text.substr(colon + 1));
    gacc::distributed::serve_rank(master, rank, ranks, std::chrono::milliseconds(timeout_ms),
                                  gacc::find_data_parallel_loop, /*torchrun=*/false, backend);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gacc-rank " << rank << ": " << e.what() << "\n";
    return static_cast<int>(gacc::ExitCode::environment);
  }
}
