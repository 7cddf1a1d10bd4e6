#pragma once
// The body of a Catch2 main for tests that need devices: list the tests anywhere, run them only
// where `missing()` returns nothing, and otherwise print why and exit 77, which CTest shows as
// skipped. Include it after defining CATCH_CONFIG_RUNNER.

#include <catch2/catch.hpp>
#include <iostream>
#include <optional>
#include <string>

/// How many CUDA devices a test binary needs (a target may define more).
#ifndef GACC_MIN_CUDA_DEVICES
#define GACC_MIN_CUDA_DEVICES 1
#endif

namespace gacc::testing {

/// What is missing when `found` CUDA devices are here: nullopt when GACC_MIN_CUDA_DEVICES are.
inline std::optional<std::string> fewer_cuda_devices(int found) {
  if (found >= GACC_MIN_CUDA_DEVICES) return std::nullopt;
  return "needs " + std::to_string(GACC_MIN_CUDA_DEVICES) + " CUDA device(s), found " + std::to_string(found);
}

/// `missing`: what this machine lacks for the tests (nullopt when nothing).
template <class Missing>
int run_where_devices_are(int argc, char** argv, Missing missing) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv)) return rc;
  if (!session.configData().listTests && !session.configData().listTestNamesOnly) {
    if (const std::optional<std::string> lacking = missing()) {
      std::cout << *lacking << ": skipped\n";
      return 77;
    }
  }
  return session.run();
}

}  // namespace gacc::testing
