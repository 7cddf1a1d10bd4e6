// What both accumulators share: the buffer's layout (16-byte slots) and the NCCL bucket plan.

#include "implementations/cuda/accumulator_contract.h"

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <catch2/catch.hpp>

using namespace gacc::cuda;
using Catch::Matchers::Contains;

TEST_CASE("each gradient's slot starts on a 16-byte boundary, in order, without overlap", "[accumulator]") {
  const auto layout = make_layout({7, 0, 33, 16, 1});
  CHECK(layout.offsets == std::vector<int64_t>{0, 8, 8, 44, 60});
  CHECK(layout.total == 64);
  CHECK(make_layout({}).total == 0);
  CHECK_THROWS_WITH(make_layout({3, -1}), Contains("gradient 1 has a negative size (-1)"));
}

TEST_CASE("buckets hold whole slots up to their size, a larger gradient gets one of its own",
          "[accumulator]") {
  const auto layout = make_layout({4, 4, 100, 0, 8, 4});  // offsets 0 4 8 108 108 116, total 120
  const auto buckets = plan_buckets(layout, 12);
  REQUIRE(buckets.size() == 3);
  CHECK((buckets[0].begin == 0 && buckets[0].end == 8 && buckets[0].first_tensor == 0 &&
         buckets[0].end_tensor == 2));
  CHECK((buckets[1].begin == 8 && buckets[1].end == 108 && buckets[1].first_tensor == 2 &&
         buckets[1].end_tensor == 3));
  // The empty gradient 3 belongs to the bucket that follows it.
  CHECK((buckets[2].begin == 108 && buckets[2].end == 120 && buckets[2].first_tensor == 3 &&
         buckets[2].end_tensor == 6));
  CHECK(plan_buckets(make_layout({}), 10).empty());
  CHECK(plan_buckets(make_layout({0, 0}), 10).empty());
  CHECK_THROWS_WITH(plan_buckets(layout, 0), Contains("at least 1"));
}

TEST_CASE("the bucket plan covers the buffer exactly once, in order, within its size", "[accumulator]") {
  rc::prop("buckets tile the buffer", [] {
    const auto sizes = *rc::gen::container<std::vector<int64_t>>(rc::gen::inRange<int64_t>(0, 300));
    const auto bucket_elements = *rc::gen::inRange<int64_t>(1, 1000);
    const auto layout = make_layout(sizes);
    const auto buckets = plan_buckets(layout, bucket_elements);
    int64_t covered = 0;
    size_t tensors = 0;
    for (const auto& bucket : buckets) {
      RC_ASSERT(bucket.begin == covered);
      RC_ASSERT(bucket.end > bucket.begin);
      RC_ASSERT(bucket.first_tensor == tensors);
      RC_ASSERT(bucket.end_tensor > bucket.first_tensor);
      // Within the size, unless it is one gradient too large for any bucket.
      const bool single = bucket.end_tensor - bucket.first_tensor == 1 ||
                          std::count_if(sizes.begin() + static_cast<long>(bucket.first_tensor),
                                        sizes.begin() + static_cast<long>(bucket.end_tensor),
                                        [](int64_t s) { return s > 0; }) == 1;
      RC_ASSERT((bucket.end - bucket.begin <= bucket_elements || single));
      // Whole slots: the bucket ends where a slot ends.
      RC_ASSERT((bucket.end == layout.total || bucket.end == layout.offsets[bucket.end_tensor]));
      covered = bucket.end;
      tensors = bucket.end_tensor;
    }
    RC_ASSERT(covered == layout.total);
    if (!buckets.empty()) RC_ASSERT(tensors == sizes.size());
  });
}
