// The rank pool on the real engine: jobs over c10d/Gloo in gacc-rank processes, counted
// collectives, replicas compared, faults reported and recovered from.

#include "implementations/distributed/rank_pool.h"

#include <catch2/catch.hpp>

#include "core/errors.h"
#include "fixtures/fixtures.h"
#include "implementations/distributed/data_parallel.h"
#include "implementations/registry.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::distributed;
using Catch::Matchers::Contains;

namespace {

RankPoolOptions pool_options(int ranks) {
  RankPoolOptions options;
  options.ranks = ranks;
  options.timeout = std::chrono::milliseconds(5000);
  return options;
}

/// mlp_scenario() split over two ranks: K = 2 (1 in the partial last window), uneven across ranks.
Scenario two_rank_scenario() {
  Scenario sc = testing::mlp_scenario();
  sc.world_size = 2;
  sc.data.windows = {{{2, 1}, {1, 2}}, {{3, 1}, {1, 1}}, {{2}, {3}}};
  sc.accumulation_steps = 2;
  validate(sc);
  return sc;
}

}  // namespace

TEST_CASE("faults and masters parse, or are usage errors", "[distributed]") {
  CHECK(parse_fault("crash:1").kind == Fault::Kind::crash);
  CHECK(parse_fault("hang:0").rank == 0);
  CHECK(parse_fault("exit:7").kind == Fault::Kind::exit);
  CHECK(parse_fault("throw:2").kind == Fault::Kind::raise);
  CHECK_THROWS_AS(parse_fault("melt:1"), UsageError);
  CHECK_THROWS_AS(parse_fault("crash:-1"), UsageError);
  CHECK_THROWS_AS(parse_fault("crash:1x"), UsageError);
  CHECK_THROWS_AS(parse_fault("crash"), UsageError);
  CHECK(parse_master("10.0.0.1", "29500").port == 29500);
  CHECK_THROWS_AS(parse_master("10.0.0.1", "0"), UsageError);
  CHECK_THROWS_AS(parse_master("10.0.0.1", "65536"), UsageError);
  CHECK_THROWS_AS(parse_master("", "29500"), UsageError);
  CHECK_THROWS_AS(parse_master("host", "29500x"), UsageError);
}

TEST_CASE("a job runs on every rank, its collectives counted, its replicas identical", "[distributed]") {
  RankPool pool(pool_options(2));
  const Scenario sc = two_rank_scenario();
  const int64_t gradient_bytes = 4 * (3 * 4 + 4 + 4 * 2 + 2);  // mlp 3-4-2 in fp32

  const Trace once = pool.run("ddp-accumulate", sc);
  CHECK(once.replica_divergence.empty());
  CHECK(once.steps.size() == 3);
  CHECK(once.counters.all_reduces == 3);  // once per window
  CHECK(once.counters.all_reduce_bytes == 3 * gradient_bytes);
  CHECK(once.counters.metadata_collectives == 6);  // the window's loss elements and its loss
  CHECK(once.counters.micro_batches == 5);         // rank 0's own: 2 + 2 + 1

  const Trace every = pool.run("ddp-sync-every-micro-batch", sc);
  CHECK(every.replica_divergence.empty());
  CHECK(every.counters.all_reduces == 5);  // once per micro-batch
  CHECK(every.counters.all_reduce_bytes == 5 * gradient_bytes);
  // The same sums in another order: the same step within rounding.
  REQUIRE(every.steps.size() == once.steps.size());
  for (size_t i = 0; i < once.steps[2].params_after.size(); ++i) {
    CHECK(every.steps[2].params_after[i] == Approx(once.steps[2].params_after[i]).epsilon(1e-5));
  }
}

namespace {

/// The experts the micro-batch reaches, as a bit set (1: expert 0, 2: expert 1).
int experts_reached(const Scenario& sc, int step, int rank, int micro) {
  const auto batch = fixtures::micro_batch(sc, step, rank, micro);
  int reached = 0;
  for (int64_t i = 0; i < batch.size; ++i) {
    reached |= 1 << fixtures::routed_expert(
                   batch.inputs[static_cast<size_t>(i * batch.input_dim + fixtures::kRoutingFeature)]);
  }
  return reached;
}

}  // namespace

TEST_CASE("replicas that drift apart are named", "[distributed]") {
  RankPool pool(pool_options(2));
  Scenario sc = testing::routed_scenario();
  sc.world_size = 2;
  sc.data.windows = {{{3, 1}, {2, 1}}};
  sc.data.global_batch = 7;
  sc.accumulation_steps = 2;
  sc.steps = 1;
  validate(sc);
  // Expert 0 is reached before the last micro-batch on rank 0 and by neither rank's last one: DDP's
  // old reducer leaves it out of the all-reduce, and each replica steps it with its own gradient.
  REQUIRE((experts_reached(sc, 0, 0, 0) & 1) == 1);
  REQUIRE((experts_reached(sc, 0, 0, 1) & 1) == 0);
  REQUIRE((experts_reached(sc, 0, 1, 1) & 1) == 0);
  const Trace correct = pool.run("ddp-average", sc);
  CHECK(correct.replica_divergence.empty());
  const Trace broken = pool.run("unused-parameters-not-synced", sc);
  CHECK_THAT(broken.replica_divergence, Contains("rank 1 differs from rank 0 after step 0: parameter"));
}

TEST_CASE("a loop that throws on a rank fails the job with its message, and the pool recovers",
          "[distributed]") {
  auto options = pool_options(2);
  options.fault = parse_fault("throw:1");
  RankPool pool(options);
  const Scenario sc = two_rank_scenario();
  try {
    pool.run("ddp-accumulate", sc);
    FAIL("the injected fault did not fail the job");
  } catch (const EnvironmentError&) {
    FAIL("a throwing loop is the recipe's failure, not the environment's");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("rank 1: injected fault on rank 1"));
  }
  // Fresh ranks serve the next job.
  const Trace next = pool.run("ddp-accumulate", sc);
  CHECK(next.replica_divergence.empty());
  CHECK(next.steps.size() == 3);
}

TEST_CASE("a rank that dies is an environment error naming it, and the pool restarts", "[distributed]") {
  auto options = pool_options(3);
  options.fault = parse_fault("crash:2");
  RankPool pool(options);
  Scenario two = two_rank_scenario();
  CHECK(pool.run("ddp-accumulate", two).replica_divergence.empty());  // rank 2 takes no part: no fault yet
  Scenario three = testing::mlp_scenario();
  three.world_size = 3;
  three.data.windows = {{{2}, {2}, {2}}, {{2}, {2}, {2}}, {{2}, {1}, {2}}};
  three.accumulation_steps = 1;
  validate(three);
  try {
    pool.run("ddp-accumulate", three);
    FAIL("the crash went unnoticed");
  } catch (const EnvironmentError& e) {
    CHECK_THAT(std::string(e.what()), Contains("rank 2 (pid") && Contains("killed by signal 11") &&
                                          Contains("ddp-accumulate on 3 ranks: gacc repro"));
  }
  CHECK(pool.run("ddp-accumulate", three).replica_divergence.empty());
}

TEST_CASE("data-parallel recipes take two ranks up to the pool's, and no BatchNorm", "[distributed]") {
  configure_shared_pool(pool_options(4));
  const DataParallelRecipe recipe(std::move(data_parallel_loops().front()));  // ddp-accumulate
  Scenario sc = two_rank_scenario();
  CHECK(recipe.supports(sc));
  CHECK_FALSE(recipe.supports(testing::mlp_scenario()));  // one rank: the single-process recipes'
  sc.world_size = 8;
  CHECK_FALSE(recipe.supports(sc));  // more ranks than the pool holds
  Scenario bn = testing::arch_scenario(Architecture::mlp_batch_norm);
  bn.world_size = 2;
  CHECK_FALSE(recipe.supports(bn));
  shutdown_shared_pool();
}
