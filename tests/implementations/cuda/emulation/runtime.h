#pragma once
// The part of the CUDA runtime API (and of the driver API's types) that the fused accumulator and
// its GPU tests use, emulated over host memory, for tests only: with it, grad_accumulator.cu — host
// code and kernels — and the GPU tests that judge it compile with the host compiler and run in CI.
// Code does not include this header: an emulated build puts include/ (cuda_runtime.h, cuda.h,
// cuda_fp16.h) ahead of the toolkit on the include path.
//
// Note [runtime emulation]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// One device (device 0). What the emulation keeps of CUDA's documented semantics, so that code
// which breaks them fails here as it would on a device:
// - Asynchrony. Kernel launches, cudaMemcpyAsync and cudaMemsetAsync are queued, and run only when
//   the host synchronizes: cudaStreamSynchronize, cudaDeviceSynchronize, the synchronous cudaMemcpy
//   and cudaMemset, cudaFree and cudaFreeHost (which synchronize the device), and a copy to
//   pageable host memory (which returns once the copy is done). Host code that reads a result
//   before synchronizing reads stale memory; host code that rewrites a pinned source before its
//   queued copy has run sends the new bytes. Every stream shares one queue (stricter than CUDA,
//   which orders streams only by their events).
// - Launch parameters are copied when the kernel is launched, as the device copies them: a host
//   struct changed after the launch does not change the launched kernel's arguments.
// - Memory. cudaMalloc returns 256-byte aligned memory filled with 0xff bytes (NaN as fp32), not
//   zeroes, as uninitialized device memory may hold anything; cudaMallocHost's pinned memory too.
//   cudaPointerGetAttributes tells device, pinned host and unregistered host memory apart, and
//   cuMemGetAddressRange (through cudaGetDriverEntryPointByVersion) gives an allocation's extent.
//   A copy or memset whose device side is not inside one live device allocation, or whose kind
//   does not match its pointers, fails with cudaErrorInvalidValue; so does freeing what was not
//   allocated.
// - Errors. A failing call records its error for cudaGetLastError, which returns and clears it; a
//   launch of an invalid configuration (no blocks, more than 1024 threads) records
//   cudaErrorInvalidConfiguration and runs nothing.
// What it cannot show: device memory read directly by the host (here it is host memory), the
// device's memory model, concurrency between streams, timing. The GPU tests cover those on a device.

#include <cstddef>
#include <cstdint>
#include <functional>

#include "tests/implementations/cuda/emulation/execution_model.h"

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
using cudaError_t = cudaError;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamDefault = 0x0, cudaStreamNonBlocking = 0x1;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaMemoryType {
  cudaMemoryTypeUnregistered = 0,
  cudaMemoryTypeHost = 1,
  cudaMemoryTypeDevice = 2,
  cudaMemoryTypeManaged = 3,
};

struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};

enum cudaDriverEntryPointQueryResult {
  cudaDriverEntryPointSuccess = 0,
  cudaDriverEntryPointSymbolNotFound = 1,
  cudaDriverEntryPointVersionNotSufficent = 2,
};
constexpr unsigned long long cudaEnableDefault = 0x0;

// The driver API's types, as <cuda.h> declares them.
enum cudaError_enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_NOT_FOUND = 500,
};
using CUresult = cudaError_enum;
using CUdeviceptr = unsigned long long;

const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError();

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);

cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMallocHost(void** pointer, size_t bytes);
cudaError_t cudaFreeHost(void* pointer);
template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
template <class T>
cudaError_t cudaMallocHost(T** pointer, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(pointer), bytes);
}

cudaError_t cudaMemcpy(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* destination, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* destination, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* pointer);
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** function, unsigned cuda_version,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult* found);

namespace gacc::cuda::emulation {

/// Queues a launch of `blocks` blocks of `threads` threads running `kernel` (which holds its own
/// copy of the arguments) on `stream`; an invalid configuration records
/// cudaErrorInvalidConfiguration instead (see Note [runtime emulation]).
void launch_on(cudaStream_t stream, unsigned blocks, unsigned threads, std::function<void()> kernel);

/// Makes the `nth` allocation from now (cudaMalloc or cudaMallocHost, counting from 1) fail with
/// cudaErrorMemoryAllocation, as a full device would; 0 takes the injection back.
void fail_allocation(size_t nth);

/// What the emulated device holds now, for tests that check nothing leaks or stays queued.
size_t live_device_allocations();
size_t live_pinned_allocations();
size_t queued_operations();

}  // namespace gacc::cuda::emulation
