// The fused accumulator on the GPU against its CPU twin (bit for bit on the elementwise path, the
// whole buffer, padding included) and a float64 reference (finalize): twin_comparison.h's cases —
// fresh random data in every dtype, the buffer poisoned before each run, sizes around chunk
// boundaries, misaligned sources (the scalar path), NaN/Inf at the first, a middle and the last
// element — plus more tensors than one launch holds, launches filled to their metadata's capacity,
// host staging, streams, and bad input refused before any launch.
//
// This file is built twice: against CUDA (gacc_cuda_tests, label gpu, on a device) and against the
// CUDA emulation (gacc_cuda_emulated_tests, label cpu, in CI: grad_accumulator.cu's host code and
// kernels run on the CPU; see tests/implementations/cuda/emulation). Under the emulation the
// largest cases shrink to what the CPU runs in seconds, keeping what they exercise.

#include "implementations/cuda/grad_accumulator.h"

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>

#include "implementations/cuda/grad_accumulator_cpu.h"
#include "tests/implementations/cuda/device_gradients.h"
#include "tests/implementations/cuda/twin_comparison.h"

using namespace gacc::cuda;
using namespace gacc::cuda::test;
using Catch::Matchers::Contains;

namespace {

#ifdef GACC_CUDA_EMULATION
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

/// `on_device` on a GPU, `emulated` under the emulation.
template <class T>
T sized(T on_device, T emulated) {
  return kEmulated ? emulated : on_device;
}

/// GradAccumulator as twin_comparison.h's accumulator under test: the buffer poisoned with NaN
/// bit patterns, then reset; each accumulate copies the gradients to the device first.
class OnDevice {
 public:
  OnDevice(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits) : acc_(sizes, options(limits)) {
    if (acc_.layout().total > 0) {
      REQUIRE(cudaMemset(acc_.device_buffer(), 0xff,
                         static_cast<size_t>(acc_.layout().total) * sizeof(float)) == cudaSuccess);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    }
    acc_.reset();  // must clear the poison, padding included
  }

  void accumulate(const HostGradients& grads, float scale) {
    const DeviceGradients device(grads);
    acc_.accumulate(device.views, scale);
    acc_.synchronize();  // before the device copies are freed
  }
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) {
    return acc_.finalize(inv_scale, max_norm, apply_clip);
  }
  void reset() { acc_.reset(); }
  bool found_non_finite() const { return acc_.found_non_finite(); }
  std::vector<float> buffer() const { return acc_.copy_to_host(); }

 private:
  static GradAccumulatorOptions options(const ChunkPlanLimits& limits) {
    GradAccumulatorOptions options;
    options.limits = limits;
    return options;
  }
  GradAccumulator acc_;
};

}  // namespace

TEST_CASE("accumulate equals the CPU twin bit for bit around chunk boundaries, in every dtype", "[gpu]") {
  compare_accumulate_around_chunk_boundaries<OnDevice>();
}

TEST_CASE("accumulate equals the CPU twin on hundreds of mixed tensors and on one large buffer", "[gpu]") {
  // Up to two default chunks each (on a device): more tensors than one launch holds.
  compare_accumulate<OnDevice>(random_sizes(300, sized(70000, 700), 7), ChunkPlanLimits{}, kAllTypes, 0);
  compare_accumulate<OnDevice>({sized(int64_t{1} << 22, int64_t{1} << 17) + 3}, ChunkPlanLimits{},
                               {GradientType::bf16}, 0);
}

TEST_CASE("accumulate equals the CPU twin in the production configuration", "[gpu]") {
  // Default chunks of 64Ki elements: each thread's vector loop runs its 32 steps, and a tensor of
  // two chunks plus a tail ends in the scalar loop.
  compare_accumulate<OnDevice>({65536 + 65536 + 13, 5, 0, 4096}, ChunkPlanLimits{}, kAllTypes, 0);
}

TEST_CASE("accumulate equals the CPU twin with launches filled to their metadata's capacity", "[gpu]") {
  // 300 tensors of up to 4 chunks: launches of kMaxLaunchTensors entries or kMaxLaunchBlocks chunks.
  const ChunkPlanLimits full{64, kMaxLaunchTensors, kMaxLaunchBlocks};
  const auto sizes = random_sizes(300, 256, 5);
  const auto plan = plan_chunks(sizes, full);
  REQUIRE(plan.size() >= 3);
  CHECK((plan[0].tensors.size() == kMaxLaunchTensors || plan[0].blocks.size() == kMaxLaunchBlocks));
  compare_accumulate<OnDevice>(sizes, full, kAllTypes, 0);
}

TEST_CASE("a non-finite gradient at the first, a middle or the last element sets the sticky flag", "[gpu]") {
  // Four chunks: of the default size on a device; of 64 elements in launches of 3 chunks emulated.
  check_sticky_flag<OnDevice>(sized(3 * 65536 + 17, 3 * 64 + 17),
                              sized(ChunkPlanLimits{}, ChunkPlanLimits{64, 2, 3}));
}

TEST_CASE("finalize unscales bit for bit and measures the norm to fp32 rounding of a float64 reference",
          "[gpu]") {
  // Clipping active, inactive and off; unscaling by a power of two, by 1/3 (inexact) and not at all
  // (the read-only pass). Emulated, a finalize block passes about 25 barriers: fewer, smaller cases.
  std::vector<std::pair<float, float>> cases;
  if (kEmulated) {
    cases = {{0.5f, 1024.0f}, {0.5f, 1.0f}, {1e6f, 3.0f}, {std::numeric_limits<float>::infinity(), 1024.0f}};
    compare_finalize<OnDevice>(random_sizes(12, 1500, 3), ChunkPlanLimits{512, 4, 9}, cases);
    return;
  }
  for (const float max_norm : {0.5f, 1e6f, std::numeric_limits<float>::infinity()}) {
    for (const float loss_scale : {1.0f, 1024.0f, 3.0f}) cases.emplace_back(max_norm, loss_scale);
  }
  compare_finalize<OnDevice>(random_sizes(40, 200000, 3), ChunkPlanLimits{}, cases);
}

TEST_CASE("an unscale that overflows is found non-finite, and an empty accumulator finalizes to zero",
          "[gpu]") {
  check_overflow_and_empty<OnDevice>();
}

TEST_CASE("host gradients staged through one copy equal device gradients", "[gpu]") {
  // Different gradients each round: a staging area rewritten before its copy ran would show.
  const std::vector<int64_t> sizes = {5, 0, 70000, 33};
  GradAccumulator from_device(sizes), from_host(sizes);
  for (uint32_t round = 0; round < 2; ++round) {
    const HostGradients grads(sizes, kAllTypes, 5 + round);
    const DeviceGradients device(grads);
    from_device.accumulate(device.views, 0.25f);
    from_host.accumulate_from_host(grads.views, 0.25f);
    from_device.synchronize();  // before the device copies are freed
  }
  require_same_buffer(from_host.copy_to_host(), from_device.copy_to_host());
}

TEST_CASE("an accumulator on a stream of its own is ordered on that stream", "[gpu]") {
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  {
    const std::vector<int64_t> sizes = {100000, 3};
    const HostGradients grads(sizes, kAllTypes, 8);
    const DeviceGradients device(grads);
    GradAccumulatorOptions options;
    options.stream = stream;
    GradAccumulator gpu(sizes, options);
    CpuGradAccumulator cpu(sizes);
    for (int round = 0; round < 4; ++round) {
      gpu.accumulate(device.views, 1.0f);
      cpu.accumulate(grads.views, 1.0f);
    }
    require_same_buffer(gpu.copy_to_host(), cpu.buffer());
  }
  cudaStreamDestroy(stream);
}

TEST_CASE("bad input is refused before any launch, never an illegal memory access", "[gpu]") {
  GradAccumulator gpu({16, 3});
  DeviceBytes a(16 * sizeof(float) + 8), b(3 * sizeof(float));
  const GradientView va{a.data(), 16, GradientType::fp32}, vb{b.data(), 3, GradientType::fp32};
  std::vector<float> host(16, 1.0f);

  CHECK_THROWS_WITH(gpu.accumulate({va}, 1.0f), Contains("1 gradients for a buffer of 2"));
  CHECK_THROWS_WITH(gpu.accumulate({vb, va}, 1.0f), Contains("gradient 0 has 3 elements, its slot 16"));
  CHECK_THROWS_WITH(gpu.accumulate({va, GradientView{nullptr, 3, GradientType::fp32}}, 1.0f),
                    Contains("gradient 1 is a null pointer"));
  CHECK_THROWS_WITH(gpu.accumulate({GradientView{a.data() + 2, 16, GradientType::fp32}, vb}, 1.0f),
                    Contains("gradient 0 (fp32) is misaligned"));
  CHECK_THROWS_WITH(gpu.accumulate({GradientView{host.data(), 16, GradientType::fp32}, vb}, 1.0f),
                    Contains("gradient 0 is host memory"));
  // 16 elements starting 8 before the end of a 2 MiB allocation (a whole allocation granule).
  const size_t granule = size_t{2} << 20;
  DeviceBytes large(granule);
  CHECK_THROWS_WITH(
      gpu.accumulate({GradientView{large.data() + granule - 32, 16, GradientType::fp32}, vb}, 1.0f),
      Contains("run past the end of its allocation"));
  CHECK_NOTHROW(
      gpu.accumulate({GradientView{large.data() + granule - 64, 16, GradientType::fp32}, vb}, 0.0f));
  CHECK_THROWS_AS(gpu.accumulate({va, vb}, std::numeric_limits<float>::quiet_NaN()), std::invalid_argument);
  for (const float v : gpu.copy_to_host()) CHECK(v == 0.0f);  // nothing was launched

  GradAccumulatorOptions too_wide;
  too_wide.limits.max_tensors = kMaxLaunchTensors + 1;
  CHECK_THROWS_WITH(GradAccumulator({1}, too_wide), Contains("a launch holds at most"));

  gpu.accumulate({va, vb}, 1.0f);
  CHECK_THROWS_AS(gpu.finalize(1.0f, 0.0f), std::invalid_argument);
  CHECK_THROWS_AS(gpu.finalize(std::numeric_limits<float>::infinity(), 1.0f), std::invalid_argument);
  gpu.finalize(1.0f, 1.0f);
  CHECK_THROWS_WITH(gpu.finalize(1.0f, 1.0f), Contains("a second finalize without reset"));
  CHECK_THROWS_WITH(gpu.accumulate({va, vb}, 1.0f), Contains("accumulate after finalize without reset"));
  gpu.reset();
  CHECK_NOTHROW(gpu.accumulate({va, vb}, 1.0f));
}
