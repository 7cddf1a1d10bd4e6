#pragma once
// A small emulation of the CUDA execution model on the CPU, for tests only: enough of it to run the
// fused accumulator's kernels (implementations/cuda/grad_accumulator_kernels.cuh) from their own
// source, in CI, where no GPU is. See Note [kernel emulation]; the runtime API around it is
// runtime.h's (Note [runtime emulation]). Code includes neither directly: it includes
// <cuda_runtime.h>, which is include/cuda_runtime.h in an emulated build.
//
// Note [kernel emulation]
// ~~~~~~~~~~~~~~~~~~~~~~~
// nvcc compiles the kernels for the device; this header lets the host compiler compile the same
// source, with CUDA's vocabulary defined here:
// - A launch of B blocks of T threads runs T OS threads (kept from launch to launch) that go
//   through the B blocks one after another (CUDA promises neither an order nor concurrency between
//   blocks), so the threads of a block run concurrently: a barrier (__syncthreads,
//   __syncthreads_or) waits for all T, a shuffle (__shfl_down_sync) for the 32 lanes of a warp,
//   exactly where the device would.
// - __shared__ becomes `static`: with one block at a time, a function's static is its block's
//   shared memory. Every thread waits at the end of a block before the next one starts.
// - float4 and uint4 are 16-byte aligned, as on the device: a vector access through a misaligned
//   pointer is what UndefinedBehaviorSanitizer reports (`make sanitize`), where the device would
//   fault; AddressSanitizer reports a kernel reading or writing outside a buffer.
// - A barrier that not every thread of the block reaches (a __syncthreads inside divergent code:
//   undefined on the device, where it may hang) aborts the test with a message after a minute.
// What it cannot show: the device's memory model beyond barriers, the kernel parameter limits, the
// device's rounding of math functions other than fma, sqrt and the conversions (the kernels use no
// others), timing. The GPU tests (label gpu) cover those on a device.

#define GACC_CUDA_EMULATION 1

#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __shared__ static  // one block at a time: see Note [kernel emulation]

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct __half {
  uint16_t bits;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline uint3 blockDim;  // written before a launch's threads start, read-only while they run

using std::isfinite;
using std::isnan;
using std::min;
using std::sqrt;

namespace gacc::cuda::emulation {

/// A reusable barrier for `count` threads that also ORs a predicate over them (__syncthreads_or).
class Barrier {
 public:
  explicit Barrier(unsigned count) : count_(count) {}

  int arrive_and_wait(int predicate) {
    std::unique_lock<std::mutex> lock(mutex_);
    accumulated_ |= predicate != 0;
    const unsigned long generation = generation_;
    if (++arrived_ == count_) {
      result_ = accumulated_;
      accumulated_ = 0;
      arrived_ = 0;
      ++generation_;
      const int result = result_;
      lock.unlock();
      changed_.notify_all();
      return result;
    }
    if (!changed_.wait_for(lock, std::chrono::minutes(1), [&] { return generation_ != generation; })) {
      std::fprintf(stderr,
                   "kernel emulation: a barrier of %u threads waited a minute with %u arrived: a "
                   "__syncthreads or shuffle that not every thread reaches\n",
                   count_, arrived_);
      std::abort();
    }
    return result_;  // still this generation's: the next cannot complete before this thread arrives
  }

 private:
  const unsigned count_;
  std::mutex mutex_;
  std::condition_variable changed_;
  unsigned arrived_ = 0;
  unsigned long generation_ = 0;
  int accumulated_ = 0;
  int result_ = 0;
};

/// What the threads of the running block share beyond __shared__ memory: its barriers, and each
/// warp's shuffle slots.
struct Block {
  explicit Block(unsigned threads) : whole(threads), slots(threads / 32) {
    for (unsigned w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<Barrier>(32));
  }
  Barrier whole;
  std::vector<std::unique_ptr<Barrier>> warps;
  std::vector<std::array<std::array<unsigned char, 16>, 32>> slots;
};

inline Block* running_block = nullptr;

inline Block& block() {
  if (running_block == nullptr) {
    std::fprintf(stderr, "kernel emulation: a device intrinsic called outside a launch\n");
    std::abort();
  }
  return *running_block;
}

/// The OS threads that play a block's threads, kept between launches (a launch would otherwise
/// start and join hundreds of threads).
class Workers {
 public:
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    start_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  /// Runs job(t) on threads t = 0 .. count-1 concurrently; returns when all have returned.
  void run(unsigned count, const std::function<void(unsigned)>& job) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (threads_.size() < count) {
      const auto index = static_cast<unsigned>(threads_.size());
      threads_.emplace_back([this, index] { work(index); });
    }
    job_ = &job;
    active_ = count;
    running_ = count;
    ++generation_;
    start_.notify_all();
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

 private:
  void work(unsigned index) {
    unsigned long seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (index >= active_) continue;
      const auto* job = job_;
      lock.unlock();
      (*job)(index);
      lock.lock();
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned active_ = 0, running_ = 0;
  unsigned long generation_ = 0;
  bool stopping_ = false;
};

/// The one set of workers every launch uses.
inline Workers& workers() {
  static Workers instance;
  return instance;
}

/// Runs `kernel()` as a grid of `blocks` blocks of `threads` threads (see Note [kernel emulation]).
/// Refuses what CUDA refuses as an invalid configuration, and a block that is not whole warps.
/// One launch at a time.
template <class Kernel>
void launch(unsigned blocks, unsigned threads, Kernel kernel) {
  if (blocks == 0 || threads == 0 || threads > 1024 || threads % 32 != 0) {
    throw std::invalid_argument("kernel emulation: a launch of " + std::to_string(blocks) + " blocks of " +
                                std::to_string(threads) + " threads");
  }
  Block state(threads);
  running_block = &state;
  blockDim = {threads, 1, 1};
  workers().run(threads, [&state, &kernel, blocks](unsigned t) {
    threadIdx = {t, 0, 0};
    for (unsigned b = 0; b < blocks; ++b) {
      blockIdx = {b, 0, 0};
      kernel();
      state.whole.arrive_and_wait(0);  // the block ends for every thread before the next begins
    }
  });
  running_block = nullptr;
}

}  // namespace gacc::cuda::emulation

inline void __syncthreads() { gacc::cuda::emulation::block().whole.arrive_and_wait(0); }
inline int __syncthreads_or(int predicate) {
  return gacc::cuda::emulation::block().whole.arrive_and_wait(predicate);
}

/// Lane i gets lane i + offset's value, or its own where i + offset is past the warp. Every lane of
/// the warp takes part (the kernels shuffle with a full mask only).
template <class T>
T __shfl_down_sync(unsigned mask, T value, int offset) {
  static_assert(sizeof(T) <= 16, "a shuffle slot holds 16 bytes");
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "kernel emulation: only full-warp shuffles are emulated\n");
    std::abort();
  }
  auto& block = gacc::cuda::emulation::block();
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto& barrier = *block.warps[warp];
  std::memcpy(block.slots[warp][lane].data(), &value, sizeof(T));
  barrier.arrive_and_wait(0);
  T out = value;
  if (offset >= 0 && lane + static_cast<unsigned>(offset) < 32) {
    std::memcpy(&out, block.slots[warp][lane + static_cast<unsigned>(offset)].data(), sizeof(T));
  }
  barrier.arrive_and_wait(0);  // every lane has read before any writes its next value
  return out;
}

inline int atomicOr(int* address, int value) { return __atomic_fetch_or(address, value, __ATOMIC_SEQ_CST); }

inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

inline float __uint_as_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline __half __ushort_as_half(uint16_t bits) { return __half{bits}; }

/// fp16 to fp32, exactly (NaN payloads are not kept: the comparisons treat every NaN alike).
inline float __half2float(__half h) {
  const unsigned exponent = (h.bits >> 10) & 0x1fu, mantissa = h.bits & 0x3ffu;
  float magnitude;
  if (exponent == 0x1f) {
    magnitude = mantissa != 0 ? std::nanf("") : INFINITY;
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal: mantissa 2^-24
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return (h.bits & 0x8000u) != 0 ? -magnitude : magnitude;
}
