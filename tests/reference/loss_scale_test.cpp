// The dynamic loss-scale state machine against GradScaler's documented transitions.

#include <catch2/catch.hpp>

#include "reference/loss_scale.h"

using namespace gacc;
using namespace gacc::reference;

namespace {

LossScaleSpec spec(double init, double growth, double backoff, int64_t interval) {
  LossScaleSpec s;
  s.init_scale = init;
  s.growth_factor = growth;
  s.backoff_factor = backoff;
  s.growth_interval = interval;
  return s;
}

}  // namespace

TEST_CASE("the scale starts at init_scale, held in fp32", "[oracle]") {
  CHECK(initial_loss_scale(spec(65536, 2, 0.5, 2000)).scale == 65536);
  CHECK(initial_loss_scale(spec(0.1, 2, 0.5, 2000)).scale == static_cast<double>(0.1f));
  CHECK(initial_loss_scale(spec(0.1, 2, 0.5, 2000)).growth_tracker == 0);
}

TEST_CASE("the scale grows after growth_interval clean steps, not before", "[oracle]") {
  const auto s = spec(8, 2, 0.5, 3);
  auto state = initial_loss_scale(s);
  state = update_loss_scale(s, state, false);
  state = update_loss_scale(s, state, false);
  CHECK(state.scale == 8);
  CHECK(state.growth_tracker == 2);
  state = update_loss_scale(s, state, false);
  CHECK(state.scale == 16);
  CHECK(state.growth_tracker == 0);
}

TEST_CASE("a non-finite gradient backs off once and restarts the count", "[oracle]") {
  const auto s = spec(8, 2, 0.5, 3);
  auto state = initial_loss_scale(s);
  state = update_loss_scale(s, state, false);
  state = update_loss_scale(s, state, false);
  state = update_loss_scale(s, state, true);
  CHECK(state.scale == 4);
  CHECK(state.growth_tracker == 0);
  state = update_loss_scale(s, state, false);
  state = update_loss_scale(s, state, false);
  CHECK(state.scale == 4);  // two clean steps since the backoff: not yet
  state = update_loss_scale(s, state, false);
  CHECK(state.scale == 8);
}

TEST_CASE("a growth that would overflow fp32 keeps the scale", "[oracle]") {
  const auto s = spec(0x1p127, 2, 0.5, 1);
  auto state = update_loss_scale(s, initial_loss_scale(s), false);
  CHECK(state.scale == 0x1p127);
  CHECK(state.growth_tracker == 0);
}

TEST_CASE("interval 1 grows every clean step", "[oracle]") {
  const auto s = spec(1, 4, 0.25, 1);
  auto state = initial_loss_scale(s);
  for (int i = 0; i < 3; ++i) state = update_loss_scale(s, state, false);
  CHECK(state.scale == 64);
  state = update_loss_scale(s, state, true);
  CHECK(state.scale == 16);
}
