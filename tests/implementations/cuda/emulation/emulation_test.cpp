// The CUDA emulation itself (Notes [kernel emulation] and [runtime emulation]): what the emulated
// tests of the fused accumulator lean on, checked on its own — barriers and shuffles as the
// device's, work that waits for the host to synchronize, CUDA's memory rules and error reporting.
// An emulation more lenient than CUDA would let the accumulator's host code pass here and fail on a
// device.

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace gacc::cuda::emulation;

namespace {

/// What a 4-byte word of emulated device memory holds now (it is host memory underneath: the test
/// looks without synchronizing, which real host code cannot).
uint32_t peek(const void* device_word) {
  uint32_t word;
  std::memcpy(&word, device_word, sizeof word);
  return word;
}

}  // namespace

TEST_CASE("the emulated shuffle moves values down a warp and the barriers join a block", "[emulation]") {
  // Each warp's tree sum of its lane indices, as the kernels reduce: lane 0 holds the warp's sum.
  std::vector<unsigned> warp_sums(8, 0);
  launch(1, 256, [&] {
    unsigned value = threadIdx.x;
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
  });
  for (unsigned w = 0; w < 8; ++w) CHECK(warp_sums[w] == 32 * 32 * w + 31 * 32 / 2);

  // Shared memory written before a barrier is seen by every thread after it, in every block.
  std::vector<unsigned> sums(3, 0);
  launch(3, 128, [&] {
    __shared__ unsigned slots[128];
    slots[threadIdx.x] = threadIdx.x + blockIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned total = 0;
      for (unsigned t = 0; t < 128; ++t) total += slots[t];
      sums[blockIdx.x] = total;
    }
  });
  CHECK(sums == std::vector<unsigned>{8128, 8128 + 128, 8128 + 256});

  // __syncthreads_or is the OR over the block, in every block.
  std::vector<int> seen(3, -1);
  launch(3, 256, [&] {
    const int any = __syncthreads_or(blockIdx.x == 1 && threadIdx.x == 200);
    if (threadIdx.x == 0) seen[blockIdx.x] = any;
  });
  CHECK(seen == std::vector<int>{0, 1, 0});
  CHECK_THROWS_AS(launch(0, 256, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(launch(1, 100, [] {}), std::invalid_argument);
}

TEST_CASE("emulated device work waits until the host synchronizes, and runs in order", "[emulation]") {
  uint32_t* word = nullptr;
  REQUIRE(cudaMalloc(&word, sizeof(uint32_t)) == cudaSuccess);
  CHECK(peek(word) == 0xffffffffu);  // uninitialized memory is not zero
  REQUIRE(cudaMemsetAsync(word, 0, sizeof(uint32_t)) == cudaSuccess);
  launch_on(nullptr, 1, 32, [word] {
    if (threadIdx.x == 0) *word += 5;
  });
  CHECK(queued_operations() == 2);
  CHECK(peek(word) == 0xffffffffu);  // nothing has run yet
  REQUIRE(cudaStreamSynchronize(nullptr) == cudaSuccess);
  CHECK(queued_operations() == 0);
  CHECK(peek(word) == 5u);

  // A pinned source is read when its queued copy runs: rewriting it before then sends the new bytes
  // (what a reused staging buffer does on a device). A pageable source is taken at the call.
  uint32_t* pinned = nullptr;
  REQUIRE(cudaMallocHost(&pinned, sizeof(uint32_t)) == cudaSuccess);
  *pinned = 1;
  REQUIRE(cudaMemcpyAsync(word, pinned, sizeof(uint32_t), cudaMemcpyHostToDevice) == cudaSuccess);
  *pinned = 2;
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(peek(word) == 2u);
  uint32_t pageable = 3;
  REQUIRE(cudaMemcpyAsync(word, &pageable, sizeof(uint32_t), cudaMemcpyHostToDevice) == cudaSuccess);
  pageable = 4;
  // A copy to pageable memory returns once done, after the work queued before it.
  uint32_t back = 0;
  REQUIRE(cudaMemcpyAsync(&back, word, sizeof(uint32_t), cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(back == 3u);

  // Each stream's work waits too; destroying a stream lets its work finish.
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(word, 0, sizeof(uint32_t), stream) == cudaSuccess);
  CHECK(peek(word) == 3u);
  REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
  CHECK(peek(word) == 0u);
  CHECK(cudaStreamSynchronize(stream) == cudaErrorInvalidValue);  // destroyed
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);

  REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
  REQUIRE(cudaFree(word) == cudaSuccess);
}

TEST_CASE("emulated memory follows CUDA's rules and refuses what CUDA refuses", "[emulation]") {
  const size_t device_before = live_device_allocations(), pinned_before = live_pinned_allocations();
  char* device = nullptr;
  char* pinned = nullptr;
  std::vector<char> pageable(100, 0);
  REQUIRE(cudaMalloc(&device, 100) == cudaSuccess);
  REQUIRE(cudaMallocHost(&pinned, 100) == cudaSuccess);
  CHECK(reinterpret_cast<uintptr_t>(device) % 256 == 0);
  CHECK(live_device_allocations() == device_before + 1);
  CHECK(live_pinned_allocations() == pinned_before + 1);

  cudaPointerAttributes attributes{};
  REQUIRE(cudaPointerGetAttributes(&attributes, device + 10) == cudaSuccess);
  CHECK(attributes.type == cudaMemoryTypeDevice);
  CHECK(attributes.device == 0);
  REQUIRE(cudaPointerGetAttributes(&attributes, pinned) == cudaSuccess);
  CHECK(attributes.type == cudaMemoryTypeHost);
  REQUIRE(cudaPointerGetAttributes(&attributes, pageable.data()) == cudaSuccess);
  CHECK(attributes.type == cudaMemoryTypeUnregistered);
  REQUIRE(cudaPointerGetAttributes(&attributes, device + 100) == cudaSuccess);  // one past the end
  CHECK(attributes.type == cudaMemoryTypeUnregistered);

  void* function = nullptr;
  cudaDriverEntryPointQueryResult found{};
  REQUIRE(cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &function, 12000, cudaEnableDefault,
                                           &found) == cudaSuccess);
  REQUIRE(found == cudaDriverEntryPointSuccess);
  const auto address_range = reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr)>(function);
  CUdeviceptr base = 0;
  size_t size = 0;
  REQUIRE(address_range(&base, &size, reinterpret_cast<CUdeviceptr>(device + 37)) == CUDA_SUCCESS);
  CHECK(base == reinterpret_cast<CUdeviceptr>(device));
  CHECK(size == 100);
  CHECK(address_range(&base, &size, reinterpret_cast<CUdeviceptr>(pageable.data())) != CUDA_SUCCESS);
  REQUIRE(cudaGetDriverEntryPointByVersion("cuNothing", &function, 12000, cudaEnableDefault, &found) ==
          cudaSuccess);
  CHECK(found == cudaDriverEntryPointSymbolNotFound);

  // Copies past an allocation's end, of the wrong kind, memsets of host memory, frees of what was
  // not allocated (or not that way): refused, and recorded for cudaGetLastError.
  CHECK(cudaMemcpy(device + 1, pageable.data(), 100, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);  // cleared by reading it
  CHECK(cudaMemcpy(pageable.data(), pinned, 100, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpyAsync(device, pageable.data(), 100, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemset(pinned, 0, 100) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(nullptr, device, 100, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemsetAsync(nullptr, 0, 4) == cudaErrorInvalidValue);
  CHECK(cudaMemsetAsync(device, 0, 101) == cudaErrorInvalidValue);
  CHECK(cudaFree(device + 1) == cudaErrorInvalidValue);
  CHECK(cudaFree(pinned) == cudaErrorInvalidValue);
  CHECK(cudaFreeHost(device) == cudaErrorInvalidValue);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  launch_on(nullptr, 0, 256, [] {});
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(queued_operations() == 0);
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);

  REQUIRE(cudaMemcpy(device, pageable.data(), 100, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(pinned, device, 100, cudaMemcpyDefault) == cudaSuccess);
  CHECK(pinned[99] == 0);
  REQUIRE(cudaFree(device) == cudaSuccess);
  REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
  CHECK(live_device_allocations() == device_before);
  CHECK(live_pinned_allocations() == pinned_before);
}
