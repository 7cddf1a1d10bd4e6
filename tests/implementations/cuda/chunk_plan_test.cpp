// The multi-tensor launch planner: every element covered exactly once, in order, within the
// limits of one launch's metadata.

#include "implementations/cuda/chunk_plan.h"

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <catch2/catch.hpp>

using namespace gacc::cuda;

namespace {

/// How many times the plan covers each element of each tensor; and whether it respects the limits.
std::vector<std::vector<int>> coverage(const std::vector<int64_t>& sizes,
                                       const std::vector<PlannedLaunch>& plan,
                                       const ChunkPlanLimits& limits) {
  std::vector<std::vector<int>> seen;
  for (const int64_t size : sizes) seen.emplace_back(static_cast<size_t>(size), 0);
  for (const auto& launch : plan) {
    REQUIRE_FALSE(launch.blocks.empty());
    REQUIRE(static_cast<int>(launch.tensors.size()) <= limits.max_tensors);
    REQUIRE(static_cast<int>(launch.blocks.size()) <= limits.max_blocks);
    for (const auto& block : launch.blocks) {
      const int t = launch.tensors.at(static_cast<size_t>(block.entry));
      for (int64_t i = chunk_begin(block.chunk, limits); i < chunk_end(block.chunk, sizes[t], limits); ++i) {
        ++seen[static_cast<size_t>(t)][static_cast<size_t>(i)];
      }
    }
  }
  return seen;
}

}  // namespace

TEST_CASE("chunk boundaries: a tensor of exactly, just under and just over a chunk", "[planner]") {
  const ChunkPlanLimits limits{4, 8, 8};
  const auto plan = plan_chunks({4, 3, 5}, limits);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].tensors == std::vector<int>{0, 1, 2});
  REQUIRE(plan[0].blocks.size() == 4);  // 1 + 1 + 2 chunks
  CHECK(plan[0].blocks[3].entry == 2);
  CHECK(plan[0].blocks[3].chunk == 1);
  CHECK(chunk_end(1, 5, limits) == 5);  // the last chunk holds one element
}

TEST_CASE("more tensors than one launch holds start another launch", "[planner]") {
  const ChunkPlanLimits limits{16, 3, 100};
  const auto plan = plan_chunks(std::vector<int64_t>(7, 10), limits);
  REQUIRE(plan.size() == 3);
  CHECK(plan[0].tensors == std::vector<int>{0, 1, 2});
  CHECK(plan[1].tensors == std::vector<int>{3, 4, 5});
  CHECK(plan[2].tensors == std::vector<int>{6});
}

TEST_CASE("a tensor with more chunks than one launch holds continues in the next", "[planner]") {
  const ChunkPlanLimits limits{2, 8, 3};
  const auto plan = plan_chunks({1, 9}, limits);  // 1 chunk, then 5
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].tensors == std::vector<int>{0, 1});
  CHECK(plan[0].blocks.size() == 3);
  CHECK(plan[1].tensors == std::vector<int>{1});  // the entry repeated for the chunks left
  CHECK(plan[1].blocks.front().chunk == 2);
  CHECK(plan[1].blocks.back().chunk == 4);
}

TEST_CASE("empty tensors take no entry and no chunk, nothing to do plans nothing", "[planner]") {
  const ChunkPlanLimits limits{4, 2, 8};
  const auto plan = plan_chunks({0, 3, 0, 0, 2, 0}, limits);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].tensors == std::vector<int>{1, 4});
  CHECK(plan_chunks({}, limits).empty());
  CHECK(plan_chunks({0, 0}, limits).empty());
}

TEST_CASE("bad sizes and limits are refused", "[planner]") {
  CHECK_THROWS_AS(plan_chunks({3, -1}), std::invalid_argument);
  CHECK_THROWS_AS(plan_chunks({3}, ChunkPlanLimits{0, 1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(plan_chunks({3}, ChunkPlanLimits{1, 0, 1}), std::invalid_argument);
  CHECK_THROWS_AS(plan_chunks({3}, ChunkPlanLimits{1, 1, 0}), std::invalid_argument);
}

TEST_CASE("any sizes and limits: every element exactly once, chunks in order", "[planner]") {
  rc::prop("covered once", [] {
    const auto sizes = *rc::gen::container<std::vector<int64_t>>(rc::gen::inRange<int64_t>(0, 40));
    const ChunkPlanLimits limits{*rc::gen::inRange<int64_t>(1, 9), *rc::gen::inRange(1, 5),
                                 *rc::gen::inRange(1, 7)};
    const auto plan = plan_chunks(sizes, limits);
    for (const auto& counts : coverage(sizes, plan, limits)) {
      for (const int c : counts) RC_ASSERT(c == 1);
    }
    int last_tensor = -1;
    int64_t last_chunk = -1;
    for (const auto& launch : plan) {
      for (const auto& block : launch.blocks) {
        const int t = launch.tensors[static_cast<size_t>(block.entry)];
        RC_ASSERT((t > last_tensor || (t == last_tensor && block.chunk == last_chunk + 1)));
        if (t != last_tensor) RC_ASSERT(block.chunk == 0);
        last_tensor = t;
        last_chunk = block.chunk;
      }
    }
  });
}
