// Catch2 main for GPU tests: without a CUDA device, exit 77 so CTest shows the test as skipped.
#define CATCH_CONFIG_RUNNER
#include <iostream>

#include <catch2/catch.hpp>

#include "implementations/cuda/accumulate.h"

int main(int argc, char** argv) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv)) return rc;
  if (!session.configData().listTests && !session.configData().listTestNamesOnly &&
      gacc::cuda::device_count() == 0) {
    std::cout << "no CUDA device here: skipped\n";
    return 77;
  }
  return session.run();
}
