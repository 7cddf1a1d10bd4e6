// The fused accumulator's CUDA kernels, compiled from their own source for the CPU under the
// kernel emulation (Note [kernel emulation]) and launched as grad_accumulator.cu launches them,
// against the CPU twin: bit for bit on the elementwise path (the whole buffer, padding included),
// the norm to fp32 rounding of a float64 reference, the sticky flag, chunk boundaries, launches
// that split tensors, misaligned sources (the scalar path), empty tensors. This runs in CI; the
// GPU tests (grad_accumulator_test.cpp, label gpu) run the same comparisons on a device.

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "tests/implementations/cuda/kernel_emulation.h"  // the kernels, compiled for the CPU
#include "tests/implementations/cuda/twin_comparison.h"

using namespace gacc::cuda;
using namespace gacc::cuda::kernels;
using namespace gacc::cuda::test;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

/// GradAccumulator's launches (grad_accumulator.cu: the same metadata, kernels and order) with host
/// memory for device memory, as twin_comparison.h's accumulator under test. The buffer starts
/// poisoned (the constructor's reset must clear it, padding included); the partial sums and the
/// result are poisoned before each finalize.
class EmulatedAccumulator {
 public:
  EmulatedAccumulator(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits)
      : layout_(make_layout(sizes)),
        plan_(plan_chunks(layout_.sizes, limits)),
        buffer_(static_cast<size_t>(layout_.total), kNaN),
        chunks_(chunk_count(plan_)),
        partials_(static_cast<size_t>(chunks_ > 0 ? chunks_ : 1), 0.0) {
    launches_ = make_launch_args(plan_, layout_, limits, buffer_.data());
    reset();
  }

  void reset() {
    std::fill(buffer_.begin(), buffer_.end(), 0.0f);
    flags_[0] = flags_[1] = 0;
  }

  void accumulate(const HostGradients& grads, float scale) {
    check_accumulate_arguments(layout_, grads.views, scale);
    set_sources(launches_, plan_, grads.views);
    for_each_launch([&](const LaunchArgs& args) { accumulate_kernel(args, scale, &flags_[0]); });
  }

  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) {
    std::fill(partials_.begin(), partials_.end(), static_cast<double>(kNaN));
    result_ = DeviceResult{-1, kNaN, kNaN};
    const bool unscale = inv_scale != 1.0f;
    for_each_launch([&](const LaunchArgs& args) {
      finalize_partials_kernel(args, inv_scale, unscale, partials_.data(), &flags_[1]);
    });
    emulation::launch(1, kThreads,
                      [&] { finalize_result_kernel(partials_.data(), chunks_, max_norm, flags_, &result_); });
    if (apply_clip) for_each_launch([&](const LaunchArgs& args) { apply_clip_kernel(args, &result_); });
    REQUIRE((result_.found_non_finite == 0 || result_.found_non_finite == 1));
    return {result_.found_non_finite != 0, result_.norm, result_.clip_coefficient};
  }

  bool found_non_finite() const { return flags_[0] != 0; }
  std::vector<float> buffer() const { return buffer_; }

 private:
  template <class Kernel>
  void for_each_launch(Kernel kernel) {
    for (size_t l = 0; l < launches_.size(); ++l) {
      const LaunchArgs& args = launches_[l];
      emulation::launch(static_cast<unsigned>(plan_[l].blocks.size()), kThreads, [&] { kernel(args); });
    }
  }

  BufferLayout layout_;
  std::vector<PlannedLaunch> plan_;
  std::vector<float> buffer_;  // never resized: the launches point into it
  int64_t chunks_;
  std::vector<double> partials_;
  std::vector<LaunchArgs> launches_;
  int flags_[2] = {0, 0};
  DeviceResult result_{};
};

}  // namespace

TEST_CASE("the accumulate kernel equals the CPU twin bit for bit around chunk boundaries, in every dtype",
          "[accumulator][emulated]") {
  compare_accumulate_around_chunk_boundaries<EmulatedAccumulator>();
}

TEST_CASE("the accumulate kernel equals the CPU twin in the production configuration",
          "[accumulator][emulated]") {
  // Default chunks of 64Ki elements: each thread's vector loop runs its 32 steps, and a tensor of
  // two chunks plus a tail ends in the scalar loop.
  compare_accumulate<EmulatedAccumulator>({65536 + 65536 + 13, 5, 0, 4096}, ChunkPlanLimits{}, kAllTypes, 0);
}

TEST_CASE("the accumulate kernel equals the CPU twin with launches filled to their metadata's capacity",
          "[accumulator][emulated]") {
  // 300 tensors of up to 4 chunks: launches of kMaxLaunchTensors entries or kMaxLaunchBlocks chunks.
  const ChunkPlanLimits full{64, kMaxLaunchTensors, kMaxLaunchBlocks};
  const auto sizes = random_sizes(300, 256, 5);
  const auto plan = plan_chunks(sizes, full);
  REQUIRE(plan.size() >= 3);
  CHECK((plan[0].tensors.size() == kMaxLaunchTensors || plan[0].blocks.size() == kMaxLaunchBlocks));
  compare_accumulate<EmulatedAccumulator>(sizes, full, kAllTypes, 0);
}

TEST_CASE("a non-finite gradient at the first, a middle or the last element sets the kernels' sticky flag",
          "[accumulator][emulated]") {
  check_sticky_flag<EmulatedAccumulator>(3 * 64 + 17, ChunkPlanLimits{64, 2, 3});  // 4 chunks, 2 launches
}

TEST_CASE("the finalize kernels unscale bit for bit, measure the norm to fp32 rounding and clip as the twin",
          "[accumulator][emulated]") {
  // Clipping active, inactive and off; unscaling by a power of two, by 1/3 (inexact) and not at all
  // (the read-only pass). A finalize block passes about 25 barriers: a few cases keep CI short.
  compare_finalize<EmulatedAccumulator>(
      random_sizes(12, 1500, 3), ChunkPlanLimits{512, 4, 9},
      {{0.5f, 1024.0f}, {0.5f, 1.0f}, {1e6f, 3.0f}, {std::numeric_limits<float>::infinity(), 1024.0f}});
}

TEST_CASE("the finalize kernels find an overflowing unscale, and an empty buffer finalizes to zero",
          "[accumulator][emulated]") {
  check_overflow_and_empty<EmulatedAccumulator>();
}

TEST_CASE("the kernel emulation's shuffle and barriers behave as the device's", "[accumulator][emulated]") {
  // block_sum (the kernels' deterministic reduction) over thread indices: 0 + 1 + ... + 255.
  double total = -1.0;
  emulation::launch(1, kThreads, [&] {
    const double sum = block_sum(static_cast<double>(threadIdx.x));
    if (threadIdx.x == 0) total = sum;
  });
  CHECK(total == 255.0 * 256.0 / 2.0);
  // __syncthreads_or is the OR over the block, in every block.
  std::vector<int> seen(3, -1);
  emulation::launch(3, kThreads, [&] {
    const int any = __syncthreads_or(blockIdx.x == 1 && threadIdx.x == 200);
    if (threadIdx.x == 0) seen[blockIdx.x] = any;
  });
  CHECK(seen == std::vector<int>{0, 1, 0});
  CHECK_THROWS_AS(emulation::launch(0, kThreads, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(emulation::launch(1, 100, [] {}), std::invalid_argument);
}
