// Catch2 main for the NCCL backend's device tests: without the NCCL plugin, or with fewer than
// GACC_MIN_CUDA_DEVICES CUDA devices (1 unless the target says more), exit 77 so CTest shows the
// test as skipped.
#define CATCH_CONFIG_RUNNER
#include "core/errors.h"
#include "implementations/distributed/nccl_plugin.h"
#include "tests/support/device_main.h"

int main(int argc, char** argv) {
  return gacc::testing::run_where_devices_are(argc, argv, []() -> std::optional<std::string> {
    try {
      return gacc::testing::fewer_cuda_devices(gacc::distributed::nccl_device_count());
    } catch (const gacc::EnvironmentError& e) {
      return std::string(e.what());
    }
  });
}
