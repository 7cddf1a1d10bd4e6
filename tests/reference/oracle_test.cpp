// The Oracle object: one large-batch run per scenario, local checks from given states, tolerances.

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "core/errors.h"
#include "reference/oracle.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::reference;

TEST_CASE("the trajectory has one step per window with positive tolerances", "[oracle]") {
  const Scenario sc = testing::mlp_scenario();
  const Oracle oracle(sc);
  REQUIRE(oracle.trajectory().size() == 3);
  for (const auto& e : oracle.trajectory()) {
    CHECK(e.grad.size() == 26);
    CHECK(e.params_after.size() == 26);
    CHECK(e.state_after.count("momentum_buffer") == 1);
    CHECK(e.lr == 0.125);
    for (double t : e.grad_tolerance) CHECK(t > 0);
    for (double t : e.params_after_tolerance) CHECK(t > 0);
    CHECK(e.loss > 0);
    CHECK(e.loss_tolerance > 0);
    CHECK(e.norm_tolerance > 0);
  }
  CHECK(oracle.unit_roundoff() == 0x1p-24);
}

TEST_CASE("the local check from the initial state is the trajectory's first step", "[oracle]") {
  const Oracle oracle(testing::mlp_scenario());
  const auto& local = oracle.window_from(0, oracle.initial_params(), {});
  const auto& first = oracle.trajectory()[0];
  CHECK(local.grad == first.grad);
  CHECK(local.params_after == first.params_after);
  CHECK(local.grad_tolerance == first.grad_tolerance);
  // Memoized: the same inputs give the same object.
  CHECK(&oracle.window_from(0, oracle.initial_params(), {}) == &local);
}

TEST_CASE("trajectory tolerances grow along the trajectory", "[oracle]") {
  const Oracle oracle(testing::mlp_scenario());
  const auto& last = oracle.trajectory().back();
  const auto& from_own = oracle.window_from(2, oracle.trajectory()[1].params_after,
                                            oracle.trajectory()[1].state_after);
  // From exact inputs, the step's tolerance is smaller than with the trajectory's carried error.
  for (size_t i = 0; i < last.params_after.size(); ++i) {
    CHECK(from_own.params_after_tolerance[i] < last.params_after_tolerance[i]);
    CHECK(from_own.params_after[i] == Approx(last.params_after[i]).epsilon(1e-12));
  }
}

TEST_CASE("the oracle sees the large batch only: re-splitting a window changes nothing", "[oracle]") {
  Scenario sc = testing::mlp_scenario();
  const Oracle a(sc);
  sc.data.windows[0] = {{3, 2, 1}};
  sc.data.windows[1] = {{1, 1, 4}};
  const Oracle b(sc);
  for (size_t s = 0; s < a.trajectory().size(); ++s) {
    CHECK(a.trajectory()[s].grad == b.trajectory()[s].grad);
    CHECK(a.trajectory()[s].params_after == b.trajectory()[s].params_after);
  }
}

TEST_CASE("double and cpp_bin_float_50 oracles agree to double precision", "[oracle]") {
  const Scenario sc = testing::mlp_scenario();
  const Oracle truth(sc), fast(sc, OracleOptions{false});
  for (size_t s = 0; s < truth.trajectory().size(); ++s) {
    const auto& t = truth.trajectory()[s];
    const auto& f = fast.trajectory()[s];
    for (size_t i = 0; i < t.params_after.size(); ++i) {
      CHECK(f.params_after[i] == Approx(t.params_after[i]).epsilon(1e-13).margin(1e-15));
    }
  }
}

TEST_CASE("the oracle refuses parameters it cannot judge", "[oracle]") {
  const Oracle oracle(testing::mlp_scenario());
  CHECK_THROWS_AS(oracle.window_from(0, {1.0, 2.0}, {}), std::invalid_argument);
  CHECK_THROWS_AS(oracle.window_from(3, oracle.initial_params(), {}), std::out_of_range);
  auto bad = oracle.initial_params();
  bad[4] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(oracle.window_from(1, bad, {}), std::invalid_argument);
}

TEST_CASE("an invalid scenario is refused with the field named", "[oracle]") {
  Scenario sc = testing::mlp_scenario();
  sc.accumulation_steps = 0;
  CHECK_THROWS_WITH(Oracle(sc), Catch::Matchers::Contains("scenario.accumulation_steps"));
}
