// The rounding bounds of Note [tolerance] really bound: fp32 re-enactments of the oracle's own
// computation — as one large batch, and accumulated over micro-batches the way a correct recipe
// does — stay within them, against the cpp_bin_float_50 truth.

#include <cmath>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include "fixtures/fixtures.h"
#include "properties/generators.h"
#include "reference/bounded.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::reference;

namespace {

template <class T>
std::vector<T> as(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

/// Largest |re-enacted - truth| / bound over the elements (0 where both are 0).
double worst_ratio(const std::vector<float>& observed, const std::vector<HighPrecision>& truth,
                   const std::vector<Bounded>& bound) {
  double worst = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double error = std::fabs(static_cast<double>(observed[i]) - to_double(truth[i]));
    if (error > 0) worst = std::max(worst, error / bound[i].error);
  }
  return worst;
}

/// A correct recipe's accumulation, in fp32: each micro-batch's mean loss gradient weighted by its
/// share of the window, summed in micro-batch order.
std::vector<float> accumulated_in_fp32(const Scenario& sc, int step, const std::vector<float>& params) {
  std::vector<float> total(params.size(), 0.0f);
  const auto examples = static_cast<float>(window_examples(sc, step));
  for (int k = 0; k < micro_batch_count(sc, step); ++k) {
    const auto micro = fixtures::micro_batch(sc, step, 0, k);
    const auto lg = loss_and_gradient(sc, params, micro);
    const float share =
        sc.loss.reduction == Reduction::mean ? static_cast<float>(micro.size) / examples : 1.0f;
    for (size_t i = 0; i < total.size(); ++i) total[i] += share * lg.grad[i];
  }
  return total;
}

}  // namespace

TEST_CASE("Bounded follows the standard model for each operation", "[bounded]") {
  RoundingScope fp32(0x1p-24);
  const Bounded a(3.0, 1e-6), b(-2.0, 2e-6);
  const Bounded sum = a + b;
  CHECK(sum.value == 1.0);
  CHECK(sum.error == Approx(1e-6 + 2e-6 + 0x1p-24));
  const Bounded product = a * b;
  CHECK(product.value == -6.0);
  CHECK(product.error == Approx(2.0 * 1e-6 + 3.0 * 2e-6 + 6.0 * 0x1p-24));
  const Bounded quotient = a / b;
  CHECK(quotient.error == Approx((1e-6 + 1.5 * 2e-6) / 2.0 + 1.5 * 0x1p-24));
  CHECK(Bounded(2.0).error == 0.0);
  CHECK((-a).error == a.error);
  const Bounded root = sqrt(Bounded(4.0, 1e-6));
  CHECK(root.error == Approx(1e-6 / 4.0 + 2.0 * 0x1p-24));
  CHECK(sqrt(Bounded(0.0, 1e-10)).error == Approx(1e-5));
}

TEST_CASE("sums are bounded for any order by gamma_{n-1} times the absolute mass", "[bounded]") {
  RoundingScope fp32(0x1p-24);
  std::vector<Bounded> x = {Bounded(1.0), Bounded(-1.0), Bounded(0.5, 1e-9)};
  const Bounded s = sum_of(x.data(), x.size());
  CHECK(s.value == 0.5);
  CHECK(s.error == Approx(1e-9 + gamma_k(2) * 2.5));
  CHECK(gamma_k(2) == Approx(2 * 0x1p-24 / (1 - 2 * 0x1p-24)));
  // A real fp32 sum of many cancelling terms, in two different orders, stays within it.
  std::vector<Bounded> terms;
  std::vector<float> values;
  for (int i = 0; i < 1000; ++i) {
    const float v = static_cast<float>(std::sin(i * 0.37) * (i % 7 + 1));
    values.push_back(v);
    terms.emplace_back(static_cast<double>(v));
  }
  const Bounded bound = sum_of(terms.data(), terms.size());
  float forward = 0, backward = 0;
  for (size_t i = 0; i < values.size(); ++i) forward += values[i];
  for (size_t i = values.size(); i-- > 0;) backward += values[i];
  CHECK(std::fabs(forward - bound.value) <= bound.error);
  CHECK(std::fabs(backward - bound.value) <= bound.error);
}

TEST_CASE("the unit roundoff is scoped to the calling thread", "[bounded]") {
  const double before = unit_roundoff();
  {
    RoundingScope fp64(0x1p-53);
    CHECK(unit_roundoff() == 0x1p-53);
  }
  CHECK(unit_roundoff() == before);
}

TEST_CASE("fp32 re-enactments, large-batch or accumulated, stay within the derived bound",
          "[bounded]") {
  rc::prop("fp32 loss and gradient, in one batch or over any split, are within the bound",
           [](const Scenario& sc) {
             RoundingScope fp32(0x1p-24);
             const auto w = fixtures::initial_weights(sc.model, sc.precision);
             for (int s = 0; s < sc.steps; ++s) {
               const auto batch = fixtures::window_batch(sc, s);
               const auto truth = loss_and_gradient(sc, as<HighPrecision>(w), batch);
               const auto bound = loss_and_gradient(sc, as<Bounded>(w), batch);
               const auto large_batch = loss_and_gradient(sc, as<float>(w), batch);
               RC_ASSERT(worst_ratio(large_batch.grad, truth.grad, bound.grad) <= 1.0);
               RC_ASSERT(worst_ratio({large_batch.loss}, {truth.loss}, {bound.loss}) <= 1.0);
               RC_ASSERT(worst_ratio(accumulated_in_fp32(sc, s, as<float>(w)), truth.grad, bound.grad) <= 1.0);
             }
           });
}

TEST_CASE("an fp32 SGD step from exact inputs stays within the step's bound", "[bounded]") {
  rc::prop("params and momentum after one fp32 step are within the Bounded step's bound",
           [](const Scenario& sc) {
             RoundingScope fp32(0x1p-24);
             const auto w = fixtures::initial_weights(sc.model, sc.precision);
             const auto batch = fixtures::window_batch(sc, 0);
             auto truth_params = as<HighPrecision>(w);
             auto bound_params = as<Bounded>(w);
             auto fp32_params = as<float>(w);
             StateOf<HighPrecision> truth_state;
             StateOf<Bounded> bound_state;
             StateOf<float> fp32_state;
             // Two steps: the second starts from a momentum buffer.
             for (int s = 0; s < 2; ++s) {
               const auto truth = loss_and_gradient(sc, truth_params, batch);
               const auto bound = loss_and_gradient(sc, bound_params, batch);
               const auto fp32 = loss_and_gradient(sc, fp32_params, batch);
               optimizer_step(sc, s, truth_params, truth.grad, truth_state);
               optimizer_step(sc, s, bound_params, bound.grad, bound_state);
               optimizer_step(sc, s, fp32_params, fp32.grad, fp32_state);
               RC_ASSERT(worst_ratio(fp32_params, truth_params, bound_params) <= 1.0);
               for (const auto& [name, values] : fp32_state) {
                 RC_ASSERT(worst_ratio(values, truth_state.at(name), bound_state.at(name)) <= 1.0);
               }
             }
           });
}

TEST_CASE("the bound is not vacuous: it is within a few hundred ulps of the values", "[bounded]") {
  RoundingScope fp32(0x1p-24);
  const Scenario sc = testing::mlp_scenario();
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  const auto bound = loss_and_gradient(sc, as<Bounded>(w), fixtures::window_batch(sc, 0));
  double mass = 0;
  for (const auto& g : bound.grad) mass = std::max(mass, std::fabs(g.value));
  for (const auto& g : bound.grad) {
    CHECK(g.error > 0);
    CHECK(g.error < 300 * 0x1p-24 * mass);
  }
}
