// The loop on gacc's own accumulation path (the fused accumulator's CPU twin) holds every property
// the LibTorch loop holds.

#include "implementations/torch/fused_accumulator_loop.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "properties/generators.h"
#include "properties/runner.h"

using namespace gacc;

TEST_CASE("the fused-accumulator loop passes every property with ratio at most 0.5", "[torch][accumulator]") {
  const auto owned = properties::all_properties();
  std::vector<const properties::Property*> all;
  for (const auto& p : owned) all.push_back(p.get());
  const torch_recipes::FusedAccumulatorLoop loop;
  properties::RunOptions options;
  options.cases = 120;
  options.seed = 20261122;
  const auto report = properties::run_properties(all, {&loop}, properties::scenarios(), options);
  int judged = 0;
  for (const auto& row : report.rows) {
    INFO(row.property << ": " << row.worst_detail);
    if (row.property == "batch-norm") {
      CHECK(row.verdict != properties::Verdict::fail);  // the documented non-equivalence, if drawn
      continue;
    }
    if (row.property == "data-parallel") {
      CHECK(row.verdict == properties::Verdict::skip);  // one rank
      continue;
    }
    CHECK(row.verdict == properties::Verdict::pass);
    CHECK(row.worst_ratio <= 0.5);
    judged += row.cases;
  }
  CHECK(judged > 200);
}
