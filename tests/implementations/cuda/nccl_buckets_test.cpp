// The buckets' all-reduce over NCCL on one GPU: a group of one rank leaves the buffer as it was
// (sum and average), counts its collectives and bytes; a group whose other rank never comes times
// out, naming the rank, instead of hanging; bad ranks are refused.

#include "implementations/cuda/nccl_buckets.h"

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>

#include "tests/implementations/cuda/gradient_values.h"

using namespace gacc::cuda;
using Catch::Matchers::Contains;

namespace {

/// An accumulator holding fresh random fp32 values, in small buckets (several collectives).
GradAccumulator filled_accumulator(const std::vector<int64_t>& sizes, float** memory) {
  GradAccumulatorOptions options;
  options.bucket_elements = 1000;
  GradAccumulator acc(sizes, options);
  std::vector<GradientView> views;
  int64_t total = 0;
  for (const int64_t s : sizes) total += s;
  const auto values = gacc::cuda::test::random_values(static_cast<size_t>(total), 17);
  REQUIRE(cudaMalloc(memory, values.size() * sizeof(float) + 4) == cudaSuccess);
  REQUIRE(cudaMemcpy(*memory, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice) ==
          cudaSuccess);
  int64_t at = 0;
  for (const int64_t s : sizes) {
    views.push_back({*memory + at, s, GradientType::fp32});
    at += s;
  }
  acc.accumulate(views, 1.0f);
  return acc;
}

}  // namespace

TEST_CASE("a group of one rank all-reduces every bucket and leaves the buffer as it was", "[gpu]") {
  const std::vector<int64_t> sizes = {700, 5, 2000, 0, 333};
  float* memory = nullptr;
  auto acc = filled_accumulator(sizes, &memory);
  REQUIRE(acc.buckets().size() >= 3);
  const auto before = acc.copy_to_host();
  NcclGroup group(new_nccl_group_id(), 0, 1, acc.device());
  all_reduce_buckets(acc, group, BucketReduction::sum);
  all_reduce_buckets(acc, group, BucketReduction::average);
  const auto after = acc.copy_to_host();
  REQUIRE(after.size() == before.size());
  CHECK(std::memcmp(after.data(), before.data(), after.size() * sizeof(float)) == 0);
  CHECK(group.collectives() == 2 * static_cast<int64_t>(acc.buckets().size()));
  CHECK(group.bytes() == 2 * acc.layout().total * 4);
  cudaFree(memory);
}

TEST_CASE("a rank whose peer never joins times out and names itself instead of hanging", "[gpu]") {
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(NcclGroup(new_nccl_group_id(), 0, 2, 0, 2.0),
                    Contains("rank 0 of 2 waited") && Contains("communicator aborted"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(seconds < 30.0);
}

TEST_CASE("a rank outside its world is refused", "[gpu]") {
  CHECK_THROWS_AS(NcclGroup(new_nccl_group_id(), 2, 2, 0), std::invalid_argument);
  CHECK_THROWS_AS(NcclGroup(new_nccl_group_id(), -1, 2, 0), std::invalid_argument);
  CHECK_THROWS_AS(NcclGroup(new_nccl_group_id(), 0, 1, 0, 0.0), std::invalid_argument);
}
