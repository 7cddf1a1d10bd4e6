// The fused accumulator on the GPU against its CPU twin (bit for bit on the elementwise path, the
// whole buffer, padding included) and a float64 reference (finalize): fresh random data in every
// dtype, the buffer poisoned before each run, sizes around chunk boundaries, more tensors than one
// launch holds, misaligned sources (the scalar path), NaN/Inf at the first, a middle and the last
// element; bad input refused before any launch.

#include "implementations/cuda/grad_accumulator.h"

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "implementations/cuda/grad_accumulator_cpu.h"
#include "tests/implementations/cuda/gradient_values.h"

using namespace gacc::cuda;
using namespace gacc::cuda::test;
using Catch::Matchers::Contains;

namespace {

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

/// One list of gradients in host memory (for the twin) and on the device (for the GPU), each
/// gradient `shift` elements past a 256-byte boundary (shift 1: every vector load misaligned).
struct GradientList {
  std::vector<std::vector<float>> fp32;
  std::vector<std::vector<uint16_t>> low;
  std::vector<GradientView> host, device;
  std::vector<std::unique_ptr<DeviceBytes>> memory;

  GradientList(const std::vector<int64_t>& sizes, const std::vector<GradientType>& types, uint32_t seed,
               int64_t shift = 0) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      const auto n = static_cast<size_t>(sizes[t]);
      const GradientType type = types[t % types.size()];
      fp32.push_back(random_values(n, seed + static_cast<uint32_t>(t)));
      low.emplace_back();
      for (float v : fp32.back())
        low.back().push_back(type == GradientType::bf16 ? bf16_bits(v) : fp16_bits(v));
      const void* data =
          type == GradientType::fp32 ? static_cast<const void*>(fp32.back().data()) : low.back().data();
      const size_t bytes = n * static_cast<size_t>(element_bytes(type));
      const size_t offset = static_cast<size_t>(shift * element_bytes(type));
      memory.push_back(std::make_unique<DeviceBytes>(offset + bytes));
      if (bytes > 0) memory.back()->upload(data, bytes, offset);
      host.push_back({data, sizes[t], type});
      device.push_back({memory.back()->data() + offset, sizes[t], type});
    }
  }

  /// Writes `value` over element `i` of gradient `t`, on the host and on the device.
  void set(size_t t, int64_t i, float value) {
    const auto type = host[t].type;
    const auto at = static_cast<size_t>(i);
    if (type == GradientType::fp32) {
      fp32[t][at] = value;
    } else {
      low[t][at] = type == GradientType::bf16 ? bf16_bits(value) : fp16_bits(value);
    }
    const size_t bytes = static_cast<size_t>(element_bytes(type));
    const void* source = type == GradientType::fp32 ? static_cast<const void*>(&fp32[t][at])
                                                    : static_cast<const void*>(&low[t][at]);
    REQUIRE(cudaMemcpy(static_cast<char*>(const_cast<void*>(device[t].data)) + at * bytes, source, bytes,
                       cudaMemcpyHostToDevice) == cudaSuccess);
  }
};

/// Fills the accumulator's device buffer with NaN bit patterns.
void poison(GradAccumulator& acc) {
  if (acc.layout().total == 0) return;
  REQUIRE(cudaMemset(acc.device_buffer(), 0xff, static_cast<size_t>(acc.layout().total) * sizeof(float)) ==
          cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

/// Every element equal: finite values bit for bit, NaN where the twin has NaN (the GPU's fused
/// multiply-add returns the canonical NaN, x86's keeps the input's payload).
void require_same_buffer(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const bool same =
        std::isnan(cpu[i]) ? std::isnan(gpu[i]) : std::memcmp(&gpu[i], &cpu[i], sizeof(float)) == 0;
    if (!same && mismatches++ == 0) first = i;
  }
  INFO("first mismatch at element " << first << ": GPU " << gpu[first] << ", CPU twin " << cpu[first]);
  CHECK(mismatches == 0);
}

const std::vector<GradientType> kAllTypes = {GradientType::fp32, GradientType::bf16, GradientType::fp16};

/// Three rounds of accumulate (three scales) on both, compared after each.
void compare_with_twin(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits,
                       const std::vector<GradientType>& types, int64_t shift) {
  GradAccumulatorOptions options;
  options.limits = limits;
  GradAccumulator gpu(sizes, options);
  CpuGradAccumulator cpu(sizes, limits);
  poison(gpu);
  gpu.reset();  // must clear the poison, padding included
  for (int round = 0; round < 3; ++round) {
    GradientList grads(sizes, types, static_cast<uint32_t>(1000 * round + shift), shift);
    const float scale = round == 0 ? 1.0f : round == 1 ? 1.0f / 3.0f : 1024.0f;
    gpu.accumulate(grads.device, scale);
    cpu.accumulate(grads.host, scale);
    INFO("round " << round << ", shift " << shift);
    require_same_buffer(gpu.copy_to_host(), cpu.buffer());
  }
  CHECK_FALSE(gpu.found_non_finite());
}

}  // namespace

TEST_CASE("accumulate equals the CPU twin bit for bit around chunk boundaries, in every dtype", "[gpu]") {
  const ChunkPlanLimits small{64, 3, 5};  // many launches: entries and chunks split across them
  const std::vector<int64_t> sizes = {1, 7, 8, 9, 63, 64, 65, 0, 127, 128, 129, 3 * 64 + 5, 1000, 0, 2};
  for (const int64_t shift : {int64_t{0}, int64_t{1}}) {
    for (const auto& types : std::vector<std::vector<GradientType>>{
             {GradientType::fp32}, {GradientType::bf16}, {GradientType::fp16}, kAllTypes}) {
      compare_with_twin(sizes, small, types, shift);
    }
  }
  // A chunk size that is not a multiple of the vector width: chunks start misaligned.
  compare_with_twin(sizes, ChunkPlanLimits{12, 4, 7}, kAllTypes, 0);
}

TEST_CASE("accumulate equals the CPU twin on hundreds of mixed tensors and on one large buffer", "[gpu]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> size(0, 70000);  // up to two default chunks
  std::vector<int64_t> sizes(300);
  for (auto& s : sizes) s = size(rng);
  compare_with_twin(sizes, ChunkPlanLimits{}, kAllTypes, 0);  // more than one launch holds
  compare_with_twin({(int64_t{1} << 22) + 3}, ChunkPlanLimits{}, {GradientType::bf16}, 0);
}

TEST_CASE("a non-finite gradient at the first, a middle or the last element sets the sticky flag", "[gpu]") {
  const int64_t n = 3 * 65536 + 17;  // four chunks
  for (const auto type : kAllTypes) {
    for (const int64_t where : {int64_t{0}, n / 2, n - 1}) {
      for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN()}) {
        INFO(type_name(type) << " at " << where << ": " << bad);
        GradAccumulator gpu({n});
        CpuGradAccumulator cpu({n});
        GradientList grads({n}, {type}, 11);
        gpu.accumulate(grads.device, 1.0f);
        CHECK_FALSE(gpu.found_non_finite());
        grads.set(0, where, bad);
        gpu.accumulate(grads.device, 0.5f);
        cpu.accumulate(grads.host, 0.5f);
        CHECK(gpu.found_non_finite());
        grads.set(0, where, 1.0f);
        gpu.accumulate(grads.device, 1.0f);
        CHECK(gpu.found_non_finite());  // sticky until reset
        const auto finalized = gpu.finalize(1.0f, 1.0f);
        CHECK(finalized.found_non_finite);
        CHECK_FALSE(std::isfinite(finalized.norm));
        const auto host = gpu.copy_to_host();
        CHECK_FALSE(std::isfinite(host[static_cast<size_t>(where)]));
        gpu.reset();
        CHECK_FALSE(gpu.found_non_finite());
        CHECK(gpu.copy_to_host()[static_cast<size_t>(where)] == 0.0f);
      }
    }
  }
}

TEST_CASE("finalize unscales bit for bit and measures the norm to fp32 rounding of a float64 reference",
          "[gpu]") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> size(1, 200000);
  std::vector<int64_t> sizes(40);
  for (auto& s : sizes) s = size(rng);
  GradientList grads(sizes, kAllTypes, 21);
  for (const float max_norm : {0.5f, 1e6f, std::numeric_limits<float>::infinity()}) {
    for (const float loss_scale : {1.0f, 1024.0f, 3.0f}) {
      INFO("max_norm " << max_norm << ", loss scale " << loss_scale);
      GradAccumulator gpu(sizes), clipped(sizes);
      CpuGradAccumulator cpu(sizes);
      gpu.accumulate(grads.device, loss_scale);
      clipped.accumulate(grads.device, loss_scale);
      cpu.accumulate(grads.host, loss_scale);
      const auto result = gpu.finalize(1.0f / loss_scale, max_norm);
      const auto twin = cpu.finalize(1.0f / loss_scale, max_norm);
      const auto unscaled = gpu.copy_to_host();
      require_same_buffer(unscaled, cpu.buffer());  // the unscale is elementwise: bit for bit
      double squares = 0.0;
      for (const float v : unscaled) squares += static_cast<double>(v) * v;
      const double reference = std::sqrt(squares);
      CHECK_FALSE(result.found_non_finite);
      CHECK(std::fabs(result.norm - reference) <= std::ldexp(reference, -23));  // one fp32 rounding
      CHECK(std::fabs(result.norm - twin.norm) <= std::ldexp(reference, -23));
      CHECK(result.clip_coefficient == clip_coefficient(result.norm, max_norm));  // the same formula
      // Deterministic: the same bits again; and apply_clip multiplies by that coefficient.
      const auto again = clipped.finalize(1.0f / loss_scale, max_norm, /*apply_clip=*/true);
      CHECK(again.norm == result.norm);
      CHECK(again.clip_coefficient == result.clip_coefficient);
      auto expected = unscaled;
      if (result.clip_coefficient != 1.0f) {
        for (auto& v : expected) v *= result.clip_coefficient;
      }
      require_same_buffer(clipped.copy_to_host(), expected);
    }
  }
}

TEST_CASE("an unscale that overflows is found non-finite, and an empty accumulator finalizes to zero",
          "[gpu]") {
  std::vector<float> huge = {3e38f, -3e38f, 1.0f, 2.0f, 3.0f};
  DeviceBytes memory(huge.size() * sizeof(float));
  memory.upload(huge.data(), huge.size() * sizeof(float));
  GradAccumulator gpu({5});
  gpu.accumulate({GradientView{memory.data(), 5, GradientType::fp32}}, 1.0f);
  CHECK_FALSE(gpu.found_non_finite());
  CHECK(gpu.finalize(4.0f, 1.0f).found_non_finite);

  for (const auto& sizes : {std::vector<int64_t>{}, std::vector<int64_t>{0, 0}}) {
    GradAccumulator empty(sizes);
    empty.accumulate(std::vector<GradientView>(sizes.size()), 1.0f);
    const auto result = empty.finalize(1.0f, 1.0f);
    CHECK_FALSE(result.found_non_finite);
    CHECK(result.norm == 0.0f);
    CHECK(result.clip_coefficient == 1.0f);
  }
}

TEST_CASE("host gradients staged through one copy equal device gradients", "[gpu]") {
  const std::vector<int64_t> sizes = {5, 0, 70000, 33};
  GradientList grads(sizes, kAllTypes, 5);
  GradAccumulator from_device(sizes), from_host(sizes);
  for (int round = 0; round < 2; ++round) {
    from_device.accumulate(grads.device, 0.25f);
    from_host.accumulate_from_host(grads.host, 0.25f);
  }
  require_same_buffer(from_host.copy_to_host(), from_device.copy_to_host());
}

TEST_CASE("an accumulator on a stream of its own is ordered on that stream", "[gpu]") {
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  {
    const std::vector<int64_t> sizes = {100000, 3};
    GradientList grads(sizes, kAllTypes, 8);
    GradAccumulatorOptions options;
    options.stream = stream;
    GradAccumulator gpu(sizes, options);
    CpuGradAccumulator cpu(sizes);
    for (int round = 0; round < 4; ++round) {
      gpu.accumulate(grads.device, 1.0f);
      cpu.accumulate(grads.host, 1.0f);
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
