// The oracle's optimizers, schedules and clipping against PyTorch's documented updates, written out
// by hand for small cases.

#include <cmath>

#include <catch2/catch.hpp>

#include "reference/number_types.h"
#include "reference/optimizers.h"
#include "tests/support/scenarios.h"

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

OptimizerSpec adam(double lr, double weight_decay, bool amsgrad) {
  OptimizerSpec o;
  o.kind = OptimizerKind::adam;
  o.lr = lr;
  o.beta1 = 0.5;
  o.beta2 = 0.75;
  o.eps = 0.125;
  o.weight_decay = weight_decay;
  o.amsgrad = amsgrad;
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

TEST_CASE("SGD weight decay adds weight_decay * p to the gradient", "[oracle]") {
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

TEST_CASE("Adam follows PyTorch's update with bias correction and eps outside the root", "[oracle]") {
  std::vector<double> p = {1.0};
  StateOf<double> state;
  const auto o = adam(0.25, 0.0, false);
  adam_step(o, 0.25, false, p, {2.0}, state);
  // m = 0.5 * 2 = 1, v = 0.25 * 4 = 1; m_hat = 2, sqrt(v_hat) = sqrt(1 / 0.25) = 2.
  CHECK(state.at("step")[0] == 1.0);
  CHECK(state.at("exp_avg")[0] == 1.0);
  CHECK(state.at("exp_avg_sq")[0] == 1.0);
  CHECK(p[0] == Approx(1.0 - 0.25 / 0.5 * 1.0 / (1.0 / std::sqrt(0.25) + 0.125)).epsilon(1e-15));
  adam_step(o, 0.25, false, p, {-1.0}, state);
  const double m = 0.5 * 1.0 + 0.5 * -1.0, v = 0.75 * 1.0 + 0.25 * 1.0;
  CHECK(state.at("step")[0] == 2.0);
  CHECK(state.at("exp_avg")[0] == m);
  CHECK(state.at("exp_avg_sq")[0] == v);
  CHECK(state.count("max_exp_avg_sq") == 0);
}

TEST_CASE("Adam adds L2 decay to the gradient, AdamW decays the weights first", "[oracle]") {
  std::vector<double> coupled = {2.0}, decoupled = {2.0};
  StateOf<double> coupled_state, decoupled_state;
  const auto o = adam(0.25, 0.5, false);
  adam_step(o, 0.25, false, coupled, {1.0}, coupled_state);
  adam_step(o, 0.25, true, decoupled, {1.0}, decoupled_state);
  CHECK(coupled_state.at("exp_avg")[0] == 0.5 * (1.0 + 0.5 * 2.0));  // g + wd p
  CHECK(decoupled_state.at("exp_avg")[0] == 0.5 * 1.0);              // g alone
  const double update = 0.25 / 0.5 * 0.5 / (std::sqrt(0.25 / 0.25) + 0.125);
  CHECK(decoupled[0] == Approx(2.0 * (1.0 - 0.25 * 0.5) - update).epsilon(1e-15));
}

TEST_CASE("amsgrad normalizes by the largest second moment so far", "[oracle]") {
  std::vector<double> p = {0.0};
  StateOf<double> state;
  const auto o = adam(0.25, 0.0, true);
  adam_step(o, 0.25, false, p, {4.0}, state);
  adam_step(o, 0.25, false, p, {0.0}, state);
  CHECK(state.at("exp_avg_sq")[0] == 0.75 * 4.0);
  CHECK(state.at("max_exp_avg_sq")[0] == 4.0);
}

TEST_CASE("schedules follow PyTorch's closed forms, step by step", "[oracle]") {
  Scenario sc = testing::mlp_scenario();
  sc.optimizer.lr = 1.0;
  sc.schedule.kind = ScheduleKind::step;
  sc.schedule.step_size = 2;
  sc.schedule.gamma = 0.5;
  CHECK(learning_rate<double>(sc, 0) == 1.0);
  CHECK(learning_rate<double>(sc, 1) == 1.0);
  CHECK(learning_rate<double>(sc, 2) == 0.5);
  CHECK(learning_rate<double>(sc, 5) == 0.25);
  sc.schedule.kind = ScheduleKind::linear_warmup;
  sc.schedule.warmup_steps = 4;
  sc.schedule.start_factor = 0.25;
  CHECK(learning_rate<double>(sc, 0) == 0.25);
  CHECK(learning_rate<double>(sc, 2) == Approx(0.625));
  CHECK(learning_rate<double>(sc, 4) == 1.0);
  CHECK(learning_rate<double>(sc, 9) == 1.0);
  sc.schedule.kind = ScheduleKind::cosine;
  sc.schedule.t_max = 4;
  sc.schedule.eta_min = 0.125;
  CHECK(learning_rate<double>(sc, 0) == 1.0);
  CHECK(learning_rate<double>(sc, 2) == Approx(0.125 + 0.875 * 0.5));
  CHECK(learning_rate<double>(sc, 4) == Approx(0.125));
  CHECK(learning_rate<double>(sc, 8) == Approx(1.0));  // the schedule is periodic, as PyTorch's
  CHECK(to_double(learning_rate<HighPrecision>(sc, 1)) == Approx(learning_rate<double>(sc, 1)).epsilon(1e-15));
}

TEST_CASE("clipping by norm scales by max_norm / (norm + 1e-6) only below 1, by value clamps", "[oracle]") {
  Scenario sc = testing::mlp_scenario();
  sc.clipping.kind = ClippingKind::norm;
  sc.clipping.max_norm = 1.0;
  std::vector<double> g = {3.0, 4.0};
  clip(sc, 5.0, g);
  CHECK(g[0] == Approx(3.0 / (5.0 + 1e-6)).epsilon(1e-15));
  CHECK(g[1] == Approx(4.0 / (5.0 + 1e-6)).epsilon(1e-15));
  std::vector<double> small = {0.3, 0.4};
  clip(sc, 0.5, small);
  CHECK(small == std::vector<double>{0.3, 0.4});
  sc.clipping.kind = ClippingKind::value;
  sc.clipping.clip_value = 0.5;
  std::vector<double> v = {-2.0, 0.25, 0.75};
  clip(sc, 0.0, v);
  CHECK(v == std::vector<double>{-0.5, 0.25, 0.5});
  const auto layout = fixtures::model_layout(sc.model);
  std::vector<double> ones(static_cast<size_t>(layout.size), 1.0);
  CHECK(global_norm(layout, ones) == Approx(std::sqrt(static_cast<double>(layout.size))));
}

TEST_CASE("a gradient of the wrong length is refused", "[oracle]") {
  std::vector<double> p = {0.0, 1.0};
  StateOf<double> state;
  CHECK_THROWS_AS(sgd_step(sgd(1, 0, 0, 0, false), 1.0, p, {1.0}, state), std::invalid_argument);
  CHECK_THROWS_AS(adam_step(adam(1, 0, false), 1.0, false, p, {1.0}, state), std::invalid_argument);
}

// Note [bounded Adam update]: |update| <= lr C_t whatever the gradients were; the gradients
// g_i ~ (beta1 / beta2)^(t - i) attain it (Cauchy-Schwarz with equality) as eps -> 0. The Bounded
// step caps its error there, so a gradient known only to be within its bound of zero costs at most
// two such steps, not an infinite bound.
TEST_CASE("Adam's update never exceeds lr C_t, which extremal gradients attain, and caps the Bounded step",
          "[oracle]") {
  OptimizerSpec o = adam(0.5, 0.0, false);
  o.beta1 = 0.75;
  o.beta2 = 0.875;
  o.eps = 1e-300;
  const double lr = 0.5;
  for (int t = 1; t <= 4; ++t) {
    // The extremal sequence: its last update is lr C_t.
    std::vector<double> p = {0.0};
    StateOf<double> state;
    double before = 0.0;
    for (int i = 1; i <= t; ++i) {
      before = p[0];
      adam_step(o, lr, false, p, {std::pow(o.beta1 / o.beta2, t - i)}, state);
    }
    const double limit = std::fabs(p[0] - before) / lr;  // C_t, attained
    CHECK(limit >= 1.0 - 1e-12);                       // C_t >= C_1 = 1
    // Any other sequence stays below it.
    uint64_t bits = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(t);
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<double> q = {0.0};
      StateOf<double> s;
      double q_before = 0.0;
      for (int i = 1; i <= t; ++i) {
        bits = bits * 6364136223846793005ULL + 1442695040888963407ULL;
        const double g = std::ldexp(static_cast<double>(bits >> 11) / 0x1p53 - 0.5, static_cast<int>(bits % 9) - 4);
        q_before = q[0];
        adam_step(o, lr, false, q, {g}, s);
      }
      CHECK(std::fabs(q[0] - q_before) <= lr * limit * (1.0 + 1e-12));
    }
    // The Bounded step: every gradient within a bound far past its value.
    RoundingScope fp32(kFp32);
    std::vector<Bounded> bp = {Bounded(0.0)};
    StateOf<Bounded> bstate;
    Bounded b_before;
    for (int i = 1; i <= t; ++i) {
      b_before = bp[0];
      adam_step<Bounded>(o, Bounded(lr), false, bp, {Bounded(1e-3 * i, 1.0)}, bstate);
    }
    const double step_error = bp[0].error - b_before.error;
    CHECK(std::isfinite(bp[0].error));
    CHECK(step_error <= 2.0 * lr * limit * (1.0 + 1e-5));
    CHECK(step_error >= 2.0 * lr * limit * (1.0 - 1e-3));  // the cap is what acts
  }
}
