// The buckets' all-reduce over NCCL across every GPU of the machine (at least two; skipped
// otherwise), one thread per rank: each rank accumulates its own gradients, and after the
// all-reduce every rank's buffer is the sum (or the average) of all of them. The values are small
// integers, so the sum is exact whatever order NCCL adds in.

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <thread>

#include "implementations/cuda/nccl_buckets.h"

using namespace gacc::cuda;

TEST_CASE("every rank's buffer becomes the sum, or the average, over the ranks", "[gpu]") {
  const int world = device_count();
  const std::vector<int64_t> sizes = {3000, 1, 0, 70000, 17};
  int64_t total = 0;
  for (const int64_t s : sizes) total += s;
  const auto value = [](int rank, int64_t i) { return static_cast<float>((i * 7 + rank * 3) % 23) - 11.0f; };
  for (const auto reduction : {BucketReduction::sum, BucketReduction::average}) {
    const auto id = new_nccl_group_id();
    std::vector<std::vector<float>> results(static_cast<size_t>(world));
    std::vector<std::string> errors(static_cast<size_t>(world));
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < world; ++rank) {
      ranks.emplace_back([&, rank] {
        try {
          REQUIRE(cudaSetDevice(rank) == cudaSuccess);
          GradAccumulatorOptions options;
          options.device = rank;
          options.bucket_elements = 4096;
          GradAccumulator acc(sizes, options);
          std::vector<float> host(static_cast<size_t>(total));
          for (int64_t i = 0; i < total; ++i) host[static_cast<size_t>(i)] = value(rank, i);
          std::vector<GradientView> views;
          int64_t at = 0;
          for (const int64_t s : sizes) {
            views.push_back({host.data() + at, s, GradientType::fp32});
            at += s;
          }
          acc.accumulate_from_host(views, 1.0f);
          NcclGroup group(id, rank, world, rank);
          all_reduce_buckets(acc, group, reduction);
          results[static_cast<size_t>(rank)] = acc.copy_to_host();
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(rank)] = e.what();
        }
      });
    }
    for (auto& t : ranks) t.join();
    for (int rank = 0; rank < world; ++rank) {
      INFO("rank " << rank << ": " << errors[static_cast<size_t>(rank)]);
      REQUIRE(errors[static_cast<size_t>(rank)].empty());
      const auto layout = make_layout(sizes);
      int64_t source = 0;
      for (size_t t = 0; t < sizes.size(); ++t) {
        for (int64_t i = 0; i < sizes[t]; ++i, ++source) {
          float sum = 0.0f;
          for (int r = 0; r < world; ++r) sum += value(r, source);
          const float expected = reduction == BucketReduction::sum ? sum : sum / static_cast<float>(world);
          const float got = results[static_cast<size_t>(rank)][static_cast<size_t>(layout.offsets[t] + i)];
          if (reduction == BucketReduction::sum) {
            REQUIRE(got == expected);
          } else {
            REQUIRE(std::fabs(got - expected) <= std::ldexp(std::fabs(expected), -22));
          }
        }
      }
    }
  }
}
