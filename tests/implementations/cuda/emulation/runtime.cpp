// The emulated CUDA runtime: see Note [runtime emulation] in runtime.h.

#include "tests/implementations/cuda/emulation/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <vector>

struct CUstream_st {
  unsigned flags = 0;
};

namespace gacc::cuda::emulation {
namespace {

constexpr size_t kAlignment = 256;  // cudaMalloc's documented alignment
constexpr unsigned char kPoison = 0xff;

enum class Memory { device, pinned, pageable, invalid };

struct Allocation {
  size_t bytes;
  bool device;  ///< cudaMalloc's; otherwise cudaMallocHost's
};

/// The emulated device: its allocations, its streams and the queue of work not yet run.
struct Device {
  std::mutex mutex;
  std::map<uintptr_t, Allocation> allocations;  ///< by base address
  std::set<cudaStream_t> streams;
  std::deque<std::function<void()>> queue;
};

Device& device() {
  static Device instance;
  return instance;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
size_t allocations_until_failure = 0;  ///< fail_allocation's countdown; 0: none fails

cudaError_t fail(cudaError_t error) {
  last_error = error;
  return error;
}

/// Runs everything queued, in order (the host synchronizing with the device).
void run_queued() {
  for (;;) {
    std::function<void()> job;
    {
      std::lock_guard<std::mutex> lock(device().mutex);
      if (device().queue.empty()) return;
      job = std::move(device().queue.front());
      device().queue.pop_front();
    }
    job();
  }
}

void enqueue(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(device().mutex);
  device().queue.push_back(std::move(job));
}

/// The allocation holding `pointer`, or none.
const std::pair<const uintptr_t, Allocation>* find_allocation(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  const auto& allocations = device().allocations;
  auto next = allocations.upper_bound(address);
  if (next == allocations.begin()) return nullptr;
  const auto& found = *std::prev(next);
  return address < found.first + found.second.bytes ? &found : nullptr;
}

/// Where [pointer, pointer + bytes) lies: inside one device or pinned allocation, outside every
/// allocation (pageable host memory), or nowhere valid (null, or starting in an allocation and
/// running past its end).
Memory classify(const void* pointer, size_t bytes) {
  if (pointer == nullptr) return Memory::invalid;
  std::lock_guard<std::mutex> lock(device().mutex);
  const auto* found = find_allocation(pointer);
  if (found == nullptr) return Memory::pageable;
  if (reinterpret_cast<uintptr_t>(pointer) + bytes > found->first + found->second.bytes) {
    return Memory::invalid;
  }
  return found->second.device ? Memory::device : Memory::pinned;
}

bool is_host(Memory memory) { return memory == Memory::pinned || memory == Memory::pageable; }

bool valid_stream(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(device().mutex);
  return stream == nullptr || device().streams.count(stream) != 0;
}

cudaError_t allocate(void** pointer, size_t bytes, bool on_device) {
  if (pointer == nullptr) return fail(cudaErrorInvalidValue);
  *pointer = nullptr;
  if (allocations_until_failure > 0 && --allocations_until_failure == 0) {
    return fail(cudaErrorMemoryAllocation);
  }
  if (bytes == 0) return cudaSuccess;
  void* memory = ::operator new (bytes, std::align_val_t{kAlignment}, std::nothrow);
  if (memory == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(memory, kPoison, bytes);
  std::lock_guard<std::mutex> lock(device().mutex);
  device().allocations[reinterpret_cast<uintptr_t>(memory)] = Allocation{bytes, on_device};
  *pointer = memory;
  return cudaSuccess;
}

cudaError_t release(void* pointer, bool on_device) {
  if (pointer == nullptr) return cudaSuccess;
  run_queued();  // cudaFree and cudaFreeHost synchronize the device
  std::lock_guard<std::mutex> lock(device().mutex);
  auto& allocations = device().allocations;
  const auto found = allocations.find(reinterpret_cast<uintptr_t>(pointer));
  if (found == allocations.end() || found->second.device != on_device) return fail(cudaErrorInvalidValue);
  allocations.erase(found);
  ::operator delete (pointer, std::align_val_t{kAlignment});
  return cudaSuccess;
}

/// Whether a copy of `kind` may go from `source` to `destination` (both already classified).
bool matches(cudaMemcpyKind kind, Memory destination, Memory source) {
  if (destination == Memory::invalid || source == Memory::invalid) return false;
  switch (kind) {
    case cudaMemcpyHostToHost:
      return is_host(destination) && is_host(source);
    case cudaMemcpyHostToDevice:
      return destination == Memory::device && is_host(source);
    case cudaMemcpyDeviceToHost:
      return is_host(destination) && source == Memory::device;
    case cudaMemcpyDeviceToDevice:
      return destination == Memory::device && source == Memory::device;
    case cudaMemcpyDefault:
      return true;
  }
  return false;
}

CUresult memory_address_range(CUdeviceptr* base, size_t* size, CUdeviceptr pointer) {
  std::lock_guard<std::mutex> lock(device().mutex);
  const auto* found = find_allocation(reinterpret_cast<const void*>(pointer));
  if (found == nullptr || !found->second.device) return CUDA_ERROR_NOT_FOUND;
  if (base != nullptr) *base = found->first;
  if (size != nullptr) *size = found->second.bytes;
  return CUDA_SUCCESS;
}

size_t live_allocations(bool on_device) {
  std::lock_guard<std::mutex> lock(device().mutex);
  size_t count = 0;
  for (const auto& entry : device().allocations) count += entry.second.device == on_device ? 1 : 0;
  return count;
}

}  // namespace

void launch_on(cudaStream_t stream, unsigned blocks, unsigned threads, std::function<void()> kernel) {
  if (!valid_stream(stream)) {
    fail(cudaErrorInvalidValue);
    return;
  }
  if (blocks == 0 || threads == 0 || threads > 1024) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (threads % 32 != 0) {
    std::fprintf(stderr, "CUDA emulation: blocks of %u threads; the emulation runs whole warps only\n",
                 threads);
    std::abort();
  }
  enqueue([blocks, threads, kernel = std::move(kernel)] { launch(blocks, threads, kernel); });
}

void fail_allocation(size_t nth) { allocations_until_failure = nth; }

size_t live_device_allocations() { return live_allocations(true); }
size_t live_pinned_allocations() { return live_allocations(false); }

size_t queued_operations() {
  std::lock_guard<std::mutex> lock(device().mutex);
  return device().queue.size();
}

}  // namespace gacc::cuda::emulation

using namespace gacc::cuda::emulation;

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) { return allocate(pointer, bytes, true); }
cudaError_t cudaFree(void* pointer) { return release(pointer, true); }
cudaError_t cudaMallocHost(void** pointer, size_t bytes) { return allocate(pointer, bytes, false); }
cudaError_t cudaFreeHost(void* pointer) { return release(pointer, false); }

cudaError_t cudaMemcpy(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!matches(kind, classify(destination, bytes), classify(source, bytes)))
    return fail(cudaErrorInvalidValue);
  run_queued();  // synchronous: after everything queued before it
  std::memmove(destination, source, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  if (bytes == 0) return cudaSuccess;
  const Memory to = classify(destination, bytes), from = classify(source, bytes);
  if (!matches(kind, to, from)) return fail(cudaErrorInvalidValue);
  if (to == Memory::pageable) {  // returns once the copy is done
    run_queued();
    std::memmove(destination, source, bytes);
  } else if (from == Memory::pageable) {  // the bytes are taken now, copied later
    std::vector<unsigned char> taken(static_cast<const unsigned char*>(source),
                                     static_cast<const unsigned char*>(source) + bytes);
    enqueue(
        [destination, taken = std::move(taken)] { std::memcpy(destination, taken.data(), taken.size()); });
  } else {
    enqueue([destination, source, bytes] { std::memmove(destination, source, bytes); });
  }
  return cudaSuccess;
}

cudaError_t cudaMemset(void* destination, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (classify(destination, bytes) != Memory::device) return fail(cudaErrorInvalidValue);
  run_queued();
  std::memset(destination, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* destination, int value, size_t bytes, cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  if (bytes == 0) return cudaSuccess;
  if (classify(destination, bytes) != Memory::device) return fail(cudaErrorInvalidValue);
  enqueue([destination, value, bytes] { std::memset(destination, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (stream == nullptr || (flags & ~cudaStreamNonBlocking) != 0) return fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{flags};
  std::lock_guard<std::mutex> lock(device().mutex);
  device().streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr || !valid_stream(stream)) return fail(cudaErrorInvalidValue);
  run_queued();  // its queued work still completes
  {
    std::lock_guard<std::mutex> lock(device().mutex);
    device().streams.erase(stream);
  }
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  run_queued();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  run_queued();
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* pointer) {
  if (attributes == nullptr) return fail(cudaErrorInvalidValue);
  *attributes = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, nullptr};
  std::lock_guard<std::mutex> lock(device().mutex);
  if (const auto* found = find_allocation(pointer)) {
    const bool on_device = found->second.device;
    attributes->type = on_device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
    attributes->device = 0;
    attributes->devicePointer = const_cast<void*>(pointer);
    attributes->hostPointer = on_device ? nullptr : const_cast<void*>(pointer);
  }
  return cudaSuccess;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** function, unsigned /*cuda_version*/,
                                             unsigned long long /*flags*/,
                                             cudaDriverEntryPointQueryResult* found) {
  if (symbol == nullptr || function == nullptr) return fail(cudaErrorInvalidValue);
  const bool known = std::strcmp(symbol, "cuMemGetAddressRange") == 0;
  *function = known ? reinterpret_cast<void*>(&memory_address_range) : nullptr;
  if (found != nullptr) *found = known ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}
