// The oracle's SGD against PyTorch's documented update, written out by hand.

#include <catch2/catch.hpp>

#include "reference/optimizers.h"

using namespace gacc;
using namespace gacc::reference;

namespace {

OptimizerSpec sgd(double lr, double momentum, double dampening, double weight_decay, bool nesterov) {
  OptimizerSpec o;
  o.lr = lr;
  o.momentum = momentum;
  o.dampening = dampening;
  o.weight_decay = weight_decay;
  o.nesterov = nesterov;
  return o;
}

}  // namespace

TEST_CASE("plain SGD is p - lr g and keeps no state", "[oracle]") {
  std::vector<double> p = {1.0, -2.0};
  StateOf<double> state;
  sgd_step(sgd(0.5, 0, 0, 0, false), 0.5, p, {0.25, 1.0}, state);
  CHECK(p == std::vector<double>{0.875, -2.5});
  CHECK(state.empty());
}

TEST_CASE("weight decay adds weight_decay * p to the gradient", "[oracle]") {
  std::vector<double> p = {2.0};
  StateOf<double> state;
  sgd_step(sgd(0.5, 0, 0, 0.25, false), 0.5, p, {1.0}, state);
  CHECK(p[0] == 2.0 - 0.5 * (1.0 + 0.25 * 2.0));
}

TEST_CASE("momentum starts from the first gradient, undampened, then dampens", "[oracle]") {
  std::vector<double> p = {0.0};
  StateOf<double> state;
  const auto o = sgd(1.0, 0.5, 0.25, 0, false);
  sgd_step(o, 1.0, p, {4.0}, state);
  CHECK(state.at("momentum_buffer")[0] == 4.0);  // not (1 - dampening) * 4
  CHECK(p[0] == -4.0);
  sgd_step(o, 1.0, p, {2.0}, state);
  CHECK(state.at("momentum_buffer")[0] == 0.5 * 4.0 + 0.75 * 2.0);
  CHECK(p[0] == -4.0 - 3.5);
}

TEST_CASE("nesterov steps along g + momentum * buf", "[oracle]") {
  std::vector<double> p = {0.0};
  StateOf<double> state;
  const auto o = sgd(1.0, 0.5, 0, 0, true);
  sgd_step(o, 1.0, p, {2.0}, state);
  CHECK(p[0] == -(2.0 + 0.5 * 2.0));
  sgd_step(o, 1.0, p, {1.0}, state);
  const double buf = 0.5 * 2.0 + 1.0;
  CHECK(state.at("momentum_buffer")[0] == buf);
  CHECK(p[0] == -3.0 - (1.0 + 0.5 * buf));
}

TEST_CASE("a gradient of the wrong length is refused", "[oracle]") {
  std::vector<double> p = {0.0, 1.0};
  StateOf<double> state;
  CHECK_THROWS_AS(sgd_step(sgd(1, 0, 0, 0, false), 1.0, p, {1.0}, state), std::invalid_argument);
}
