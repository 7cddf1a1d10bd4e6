// Every oracle gradient against central finite differences, both in cpp_bin_float_50.

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include "fixtures/fixtures.h"
#include "properties/generators.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::reference;

namespace {

/// max_j |finite difference_j - gradient_j| / max_j |gradient_j|, central differences.
double finite_difference_disagreement(const Scenario& sc, const fixtures::Batch& batch) {
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  const auto b = fixtures::initial_buffers(sc.model);
  std::vector<HighPrecision> params(w.begin(), w.end()), buffers(b.begin(), b.end());
  const auto exact = loss_and_gradient(sc, params, buffers, batch);
  // Truncation error ~ h^2 |f'''| / 6 ~ 1e-40; cancellation ~ 1e-50 / h ~ 1e-30.
  const HighPrecision h("1e-20");
  HighPrecision scale = 0, worst = 0;
  for (const auto& g : exact.grad) scale = max(scale, abs(g));
  for (size_t j = 0; j < params.size(); ++j) {
    auto plus = params, minus = params;
    plus[j] += h;
    minus[j] -= h;
    const HighPrecision fd =
        (loss_and_gradient(sc, plus, buffers, batch).loss - loss_and_gradient(sc, minus, buffers, batch).loss) / (2 * h);
    worst = max(worst, abs(fd - exact.grad[j]));
  }
  return scale > 0 ? (worst / scale).convert_to<double>() : worst.convert_to<double>();
}

}  // namespace

TEST_CASE("the oracle's gradients match finite differences to 1e-25", "[oracle]") {
  for (auto sc : {testing::mlp_scenario(), testing::linear_scenario()}) {
    for (auto reduction : {Reduction::mean, Reduction::sum}) {
      sc.loss.reduction = reduction;
      const double disagreement = finite_difference_disagreement(sc, fixtures::window_batch(sc, 0));
      INFO(to_string(sc.model.arch) << " " << to_string(reduction) << ": " << disagreement);
      CHECK(disagreement < 1e-25);
    }
  }
}

TEST_CASE("every model's gradient matches finite differences to 1e-25", "[oracle]") {
  for (const auto arch : properties::whole_zoo().architectures) {
    rc::prop("relative disagreement below 1e-25 for " + to_string(arch), [arch] {
      const Scenario sc = *properties::scenarios({{arch}, {OptimizerKind::sgd}, false, false});
      const double disagreement = finite_difference_disagreement(sc, fixtures::window_batch(sc, sc.steps - 1));
      RC_LOG() << "disagreement " << disagreement;
      RC_ASSERT(disagreement < 1e-25);
    });
  }
}
