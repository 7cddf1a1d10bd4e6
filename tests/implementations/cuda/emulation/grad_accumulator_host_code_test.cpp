// What only the emulation can ask of GradAccumulator's host code (grad_accumulator.cu): that it
// synchronizes where it must and nowhere else, frees all it allocates, and hands kernels their own
// copy of the metadata. The GPU tests (grad_accumulator_test.cpp, here built against the same
// emulation) judge its results; these judge how it gets them.

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <vector>

#include "implementations/cuda/grad_accumulator.h"
#include "implementations/cuda/grad_accumulator_cpu.h"
#include "tests/implementations/cuda/device_gradients.h"
#include "tests/implementations/cuda/twin_comparison.h"

using namespace gacc::cuda;
using namespace gacc::cuda::test;
using namespace gacc::cuda::emulation;

TEST_CASE("accumulate and reset only queue work, finalize and the readers wait for it", "[emulation]") {
  const std::vector<int64_t> sizes = {3000, 17, 0, 70000};
  const HostGradients grads(sizes, kAllTypes, 11);
  const DeviceGradients device(grads);
  GradAccumulator gpu(sizes);
  CHECK(queued_operations() == 0);  // the constructor waits for its reset
  gpu.accumulate(device.views, 0.5f);
  const size_t after_accumulate = queued_operations();
  CHECK(after_accumulate >= 1);  // one launch per launch of the plan, none run yet
  gpu.reset();
  CHECK(queued_operations() > after_accumulate);
  gpu.accumulate(device.views, 0.5f);
  CHECK(gpu.copy_to_host().size() == static_cast<size_t>(gpu.layout().total));
  CHECK(queued_operations() == 0);
  gpu.accumulate(device.views, 0.5f);
  CHECK_FALSE(gpu.found_non_finite());
  CHECK(queued_operations() == 0);
  gpu.accumulate(device.views, 0.5f);
  gpu.finalize(1.0f, 1.0f, true);
  CHECK(queued_operations() == 0);

  // Two queued accumulates with different gradients: each launch keeps the sources it was given,
  // though the host's metadata is rewritten for the second before the first has run.
  const HostGradients other(sizes, kAllTypes, 12);
  const DeviceGradients other_device(other);
  gpu.reset();
  gpu.accumulate(device.views, 1.0f);
  gpu.accumulate(other_device.views, 1.0f);
  CpuGradAccumulator cpu(sizes);
  cpu.accumulate(grads.views, 1.0f);
  cpu.accumulate(other.views, 1.0f);
  require_same_buffer(gpu.copy_to_host(), cpu.buffer());
}

TEST_CASE("host staging survives back-to-back calls with different gradients", "[emulation]") {
  // accumulate_from_host packs into one pinned staging area and copies it asynchronously: the next
  // call must not rewrite it before the copy has run.
  const std::vector<int64_t> sizes = {5, 40000, 33};
  GradAccumulator gpu(sizes);
  CpuGradAccumulator cpu(sizes);
  for (uint32_t round = 0; round < 3; ++round) {
    // fp32 first (the most bytes), then narrower types: the staging area never needs to grow.
    const auto type = round == 0 ? GradientType::fp32 : round == 1 ? GradientType::bf16 : GradientType::fp16;
    const HostGradients grads(sizes, {type}, 20 + round);
    gpu.accumulate_from_host(grads.views, 1.0f);
    cpu.accumulate(grads.views, 1.0f);
  }
  require_same_buffer(gpu.copy_to_host(), cpu.buffer());
}

TEST_CASE("the GPU accumulator frees everything it allocates", "[emulation]") {
  const size_t device_before = live_device_allocations(), pinned_before = live_pinned_allocations();
  {
    const std::vector<int64_t> sizes = {100, 0, 3};
    GradAccumulator gpu(sizes);
    const HostGradients small(sizes, {GradientType::bf16}, 1), large(sizes, {GradientType::fp32}, 2);
    gpu.accumulate_from_host(small.views, 1.0f);
    gpu.accumulate_from_host(large.views, 1.0f);  // a larger staging area replaces the first
    GradAccumulator moved = std::move(gpu);
    moved.finalize(1.0f, 1.0f);
    CHECK(live_device_allocations() > device_before);
    CHECK(live_pinned_allocations() > pinned_before);
  }
  CHECK(live_device_allocations() == device_before);
  CHECK(live_pinned_allocations() == pinned_before);
  CHECK(queued_operations() == 0);
}

TEST_CASE("a GPU accumulator that cannot allocate says so and frees what it had", "[emulation]") {
  const size_t device_before = live_device_allocations(), pinned_before = live_pinned_allocations();
  // The constructor allocates five times (buffer, partial sums, flags, result, pinned result): let
  // each in turn fail.
  for (size_t nth = 1; nth <= 5; ++nth) {
    INFO("allocation " << nth << " fails");
    fail_allocation(nth);
    CHECK_THROWS_WITH(GradAccumulator({1000, 3}), Catch::Matchers::Contains("out of memory"));
    CHECK(live_device_allocations() == device_before);
    CHECK(live_pinned_allocations() == pinned_before);
  }
  fail_allocation(6);
  {
    GradAccumulator gpu({1000, 3});
    // The staging area is the sixth allocation.
    const HostGradients grads({1000, 3}, {GradientType::fp32}, 3);
    CHECK_THROWS_WITH(gpu.accumulate_from_host(grads.views, 1.0f),
                      Catch::Matchers::Contains("out of memory"));
    fail_allocation(0);
    gpu.accumulate_from_host(grads.views, 1.0f);  // and a later call allocates it
    CpuGradAccumulator cpu({1000, 3});
    cpu.accumulate(grads.views, 1.0f);
    require_same_buffer(gpu.copy_to_host(), cpu.buffer());
  }
  CHECK(live_device_allocations() == device_before);
  CHECK(live_pinned_allocations() == pinned_before);
  // Another device than the one the machine has.
  GradAccumulatorOptions another_device;
  another_device.device = 1;
  CHECK_THROWS_WITH(GradAccumulator({8}, another_device),
                    Catch::Matchers::Contains("invalid device ordinal"));
}
