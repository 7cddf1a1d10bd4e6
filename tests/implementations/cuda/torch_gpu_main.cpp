// Catch2 main for GPU tests that hand LibTorch CUDA tensors: without a LibTorch built with CUDA and
// a device it sees, exit 77 so CTest shows the test as skipped.
#define CATCH_CONFIG_RUNNER
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <iostream>

#include "implementations/cuda/load_torch_cuda.h"

int main(int argc, char** argv) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv)) return rc;
  if (!session.configData().listTests && !session.configData().listTestNamesOnly &&
      !gacc::cuda::load_torch_cuda()) {
    std::cout << "needs a LibTorch with CUDA and a CUDA device: skipped\n";
    return 77;
  }
  return session.run();
}
