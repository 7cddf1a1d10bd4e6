// Catch2 main for GPU tests: without GACC_MIN_CUDA_DEVICES CUDA devices (1 unless the target says
// more), exit 77 so CTest shows the test as skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "implementations/cuda/grad_accumulator.h"

#ifndef GACC_MIN_CUDA_DEVICES
#define GACC_MIN_CUDA_DEVICES 1
#endif

int main(int argc, char** argv) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv)) return rc;
  const int devices = gacc::cuda::device_count();
  if (!session.configData().listTests && !session.configData().listTestNamesOnly &&
      devices < GACC_MIN_CUDA_DEVICES) {
    std::cout << "needs " << GACC_MIN_CUDA_DEVICES << " CUDA device(s), found " << devices << ": skipped\n";
    return 77;
  }
  return session.run();
}
