#pragma once
/// One macro checks every CUDA call and launch: it records the call, file and line, and throws.
/// A failed call's error is also the runtime's "last error" (cudaGetLastError), which the launch
/// check reads: it is cleared before throwing, or a later launch would report it as its own.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace gacc::cuda {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(status) + " in " + call +
                             " at " + file + ":" + std::to_string(line));
  }
}

}  // namespace gacc::cuda

#define GACC_CUDA_CHECK(call) ::gacc::cuda::check((call), #call, __FILE__, __LINE__)
/// After a kernel launch: the launch's own error (bad configuration), not the kernel's.
#define GACC_CUDA_CHECK_LAUNCH() GACC_CUDA_CHECK(cudaGetLastError())
