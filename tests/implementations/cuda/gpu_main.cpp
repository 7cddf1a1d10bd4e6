// Catch2 main for GPU tests: without GACC_MIN_CUDA_DEVICES CUDA devices (1 unless the target says
// more), exit 77 so CTest shows the test as skipped.
#define CATCH_CONFIG_RUNNER
#include "implementations/cuda/grad_accumulator.h"
#include "tests/support/device_main.h"

int main(int argc, char** argv) {
  return gacc::testing::run_where_devices_are(
      argc, argv, [] { return gacc::testing::fewer_cuda_devices(gacc::cuda::device_count()); });
}
