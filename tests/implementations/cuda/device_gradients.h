#pragma once
// Device memory for the GPU accumulator's tests (on a device, or under the CUDA emulation): raw
// bytes freed at scope exit, and a copy of HostGradients on the device.

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "tests/implementations/cuda/gradient_values.h"

namespace gacc::cuda::test {

/// Device memory for a test, freed at scope exit.
class DeviceBytes {
 public:
  explicit DeviceBytes(size_t bytes) {
    REQUIRE(cudaMalloc(&data_, bytes > 0 ? bytes : 1) == cudaSuccess);
    REQUIRE(cudaMemset(data_, 0, bytes > 0 ? bytes : 1) == cudaSuccess);
    bytes_ = bytes;
  }
  ~DeviceBytes() { cudaFree(data_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  char* data() const { return static_cast<char*>(data_); }
  void upload(const void* host, size_t bytes, size_t at = 0) {
    REQUIRE(at + bytes <= bytes_);
    REQUIRE(cudaMemcpy(data() + at, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

/// A copy of host gradients in device memory, each `grads.shift` elements past a 256-byte boundary
/// (cudaMalloc's alignment): with shift 1 every vector load is misaligned.
struct DeviceGradients {
  std::vector<GradientView> views;
  std::vector<std::unique_ptr<DeviceBytes>> memory;

  explicit DeviceGradients(const HostGradients& grads) {
    for (const auto& g : grads.views) {
      const size_t bytes = static_cast<size_t>(g.numel) * static_cast<size_t>(element_bytes(g.type));
      const size_t offset = static_cast<size_t>(grads.shift * element_bytes(g.type));
      memory.push_back(std::make_unique<DeviceBytes>(offset + bytes));
      if (bytes > 0) memory.back()->upload(g.data, bytes, offset);
      views.push_back({memory.back()->data() + offset, g.numel, g.type});
    }
  }
};

}  // namespace gacc::cuda::test
