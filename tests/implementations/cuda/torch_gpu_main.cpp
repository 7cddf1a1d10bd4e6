// Catch2 main for GPU tests that hand LibTorch CUDA tensors: without a LibTorch built with CUDA and
// a device it sees, exit 77 so CTest shows the test as skipped.
#define CATCH_CONFIG_RUNNER
#include <torch/torch.h>

#include "implementations/cuda/load_torch_cuda.h"
#include "tests/support/device_main.h"

int main(int argc, char** argv) {
  return gacc::testing::run_where_devices_are(argc, argv, []() -> std::optional<std::string> {
    if (gacc::cuda::load_torch_cuda()) return std::nullopt;
    return std::string("needs a LibTorch with CUDA and a CUDA device");
  });
}
