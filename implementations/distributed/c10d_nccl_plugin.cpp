// libgacc_c10d_nccl.so: LibTorch's ProcessGroupNCCL for gacc's data-parallel recipes, behind the C
// interface of nccl_plugin_abi.h. Linked against libtorch_cuda (where ProcessGroupNCCL lives);
// loaded by gacc at run time, never linked into it.

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "implementations/distributed/nccl_plugin_abi.h"

namespace {

void write_error(const std::string& message, char* error, std::size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  const std::size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

/// The first line of LibTorch's message: the rest is a C++ stack trace.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int gacc_c10d_nccl_plugin_abi() { return kGaccNcclPluginAbi; }

__attribute__((visibility("default"))) int gacc_c10d_nccl_device_count(char* error, std::size_t error_size) {
  try {
    return static_cast<int>(c10::cuda::device_count());
  } catch (const std::exception& e) {
    write_error(first_line(e.what()), error, error_size);
    return -1;
  }
}

__attribute__((visibility("default"))) void* gacc_c10d_nccl_make_backend(void* store, int rank, int world,
                                                                         std::int64_t timeout_ms, int device,
                                                                         char* error, std::size_t error_size) {
  try {
    if (store == nullptr) throw std::invalid_argument("no store");
    const int devices = static_cast<int>(c10::cuda::device_count());
    if (device < 0 || device >= devices) {
      throw std::invalid_argument("CUDA device " + std::to_string(device) + " is not here (" +
                                  std::to_string(devices) + " visible; NCCL needs one device per rank)");
    }
    // A collective that waits past the timeout throws on the waiting rank (the rank reports it),
    // rather than the watchdog tearing the process down: the error says what happened.
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Backend> group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::intrusive_ptr<c10d::Store>::reclaim_copy(static_cast<c10d::Store*>(store)), rank, world, options);
    return group.release();
  } catch (const std::exception& e) {
    write_error(first_line(e.what()), error, error_size);
    return nullptr;
  }
}

}  // extern "C"
