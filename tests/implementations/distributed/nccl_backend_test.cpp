// The process-group backend choice and the NCCL plugin's loading, on any machine: the plugin loads
// (where this build has it) and answers, a device that is not there is a clear environment error
// naming the rank, a local NCCL pool with more ranks than devices does not start, and a group that
// cannot form on the ranks is the environment's error (exit 4), not the recipe's. The
// collectives themselves need devices: nccl_communicator_gpu_test.cpp and tests/cli (nccl cases).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "core/errors.h"
#include "implementations/distributed/communicator.h"
#include "implementations/distributed/companion_files.h"
#include "implementations/distributed/nccl_plugin.h"
#include "implementations/distributed/process_group_backend.h"
#include "implementations/distributed/rank_pool.h"
#include "implementations/registry.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::distributed;
using Catch::Matchers::Contains;

TEST_CASE("process-group backends are named gloo and nccl", "[distributed]") {
  CHECK(parse_process_group_backend("gloo") == ProcessGroupBackend::gloo);
  CHECK(parse_process_group_backend("nccl") == ProcessGroupBackend::nccl);
  CHECK(to_string(ProcessGroupBackend::nccl) == "nccl");
  CHECK(to_string(parse_process_group_backend("gloo")) == "gloo");
  CHECK_THROWS_WITH(parse_process_group_backend("mpi"), Contains("unknown process-group backend \"mpi\" (gloo or nccl)"));
}

TEST_CASE("companion files come from the environment, beside the executable, or the build", "[distributed]") {
  const std::string variable = "GACC_TEST_COMPANION";
  unsetenv(variable.c_str());
  const std::string file = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                           "/gacc_companion_test_" + std::to_string(getpid());
  std::ofstream(file) << "x";
  CHECK(find_companion_file("no-such-companion", variable.c_str(), "", false).empty());
  CHECK(find_companion_file("no-such-companion", variable.c_str(), file, false) == file);
  CHECK(find_companion_file("no-such-companion", variable.c_str(), file, true).empty());  // not executable
  setenv(variable.c_str(), file.c_str(), 1);
  CHECK(find_companion_file("no-such-companion", variable.c_str(), "", false) == file);
  setenv(variable.c_str(), "/nonexistent/companion", 1);
  CHECK_THROWS_WITH(find_companion_file("no-such-companion", variable.c_str(), file, false),
                    Contains("GACC_TEST_COMPANION=/nonexistent/companion is not a readable file"));
  unsetenv(variable.c_str());
  std::remove(file.c_str());
  CHECK_FALSE(self_directory().empty());
}

#ifdef GACC_NCCL_PLUGIN_BUILT
TEST_CASE("the NCCL plugin loads and refuses a device that is not here, naming the rank", "[distributed]") {
  const int devices = nccl_device_count();
  CHECK(devices >= 0);
  const auto store = c10::make_intrusive<c10d::HashStore>();
  CHECK_THROWS_WITH(make_nccl_process_group(store, 0, 1, std::chrono::milliseconds(2000), devices),
                    Contains("rank 0 of 1: cannot form the NCCL process group: CUDA device " +
                             std::to_string(devices) + " is not here (" + std::to_string(devices) + " visible"));
  CHECK_THROWS_AS(Communicator(store, "group/1", 0, 1, std::chrono::milliseconds(2000),
                               ProcessGroupOptions{ProcessGroupBackend::nccl, true, devices}),
                  EnvironmentError);
}

TEST_CASE("a local NCCL pool with more ranks than CUDA devices does not start", "[distributed]") {
  RankPoolOptions options;
  options.backend = ProcessGroupBackend::nccl;
  options.ranks = nccl_device_count() + 1;
  options.timeout = std::chrono::milliseconds(2000);
  RankPool pool(options);
  Scenario sc;  // never run: the pool refuses to start first
  CHECK_THROWS_WITH(pool.run("ddp-accumulate", sc), Contains("the NCCL backend needs one CUDA device per rank: " +
                                                                   std::to_string(options.ranks) + " ranks"));
}
#else
TEST_CASE("without the NCCL plugin, the NCCL backend says gacc was built without it", "[distributed]") {
  unsetenv("GACC_NCCL_PLUGIN");
  CHECK_THROWS_WITH(nccl_device_count(), Contains("built without the NCCL backend"));
}
#endif

namespace {

/// A loopback port that was free a moment ago.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("a process group that cannot form on the ranks is an environment error, not the recipe's failure",
          "[distributed]") {
  // torchrun's convention, both ranks in this process: rank 0 in the pool's thread, rank 1 in the
  // test's. A LOCAL_RANK that names no device fails every NCCL rank as its group forms, before any
  // device is touched, so this runs the same with or without GPUs and with or without the plugin.
  setenv("LOCAL_RANK", "not-a-device", 1);
  const Master master{"127.0.0.1", free_port()};
  const auto timeout = std::chrono::milliseconds(5000);
  std::thread rank1([&] {
    try {
      serve_rank(master, 1, 2, timeout, gacc::find_data_parallel_loop, /*torchrun=*/true,
                 ProcessGroupBackend::nccl);
    } catch (const std::exception&) {
      // the pool's end reaches this rank as a shutdown job or a closed store
    }
  });
  {
    RankPoolOptions options;
    options.ranks = 2;
    options.timeout = timeout;
    options.backend = ProcessGroupBackend::nccl;
    options.torchrun_master = master;
    options.find = gacc::find_data_parallel_loop;
    RankPool pool(options);
    Scenario sc = testing::mlp_scenario();
    sc.world_size = 2;
    sc.data.windows = {{{2, 1}, {1, 2}}, {{3, 1}, {1, 1}}, {{2}, {3}}};
    sc.accumulation_steps = 2;
    validate(sc);
    std::string message = "no EnvironmentError";
    try {
      pool.run("ddp-accumulate", sc);
    } catch (const EnvironmentError& e) {
      message = e.what();
    }
    CHECK_THAT(message,
               Contains("rank 0: LOCAL_RANK=\"not-a-device\" (torchrun's convention) is not a device "
                        "index; rank 1: LOCAL_RANK=") &&
                   Contains("during job 0 (ddp-accumulate on 2 ranks"));
  }
  rank1.join();
  unsetenv("LOCAL_RANK");
}
