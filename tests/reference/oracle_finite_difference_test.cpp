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

TEST_CASE("mlp_routed's gradient matches finite differences whichever experts a batch reaches, and is "
          "exactly zero for an expert it does not reach",
          "[oracle]") {
  // Routes of routed_scenario(): tests/support/scenarios.h.
  Scenario sc = testing::routed_scenario();
  const auto layout = fixtures::model_layout(sc.model);
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  struct Case {
    const char* what;
    fixtures::Batch batch;
    bool reaches[2];
  };
  const std::vector<Case> cases = {{"both experts", fixtures::window_batch(sc, 0), {true, true}},
                                   {"expert 1 alone", fixtures::micro_batch(sc, 0, 0, 2), {false, true}},
                                   {"expert 0 alone", fixtures::window_batch(sc, 2), {true, false}}};
  for (const auto& c : cases) {
    for (auto reduction : {Reduction::mean, Reduction::sum}) {
      sc.loss.reduction = reduction;
      const double disagreement = finite_difference_disagreement(sc, c.batch);
      INFO(c.what << ", " << to_string(reduction) << ": " << disagreement);
      CHECK(disagreement < 1e-25);
      const auto exact = loss_and_gradient(sc, std::vector<HighPrecision>(w.begin(), w.end()), {}, c.batch);
      for (int e = 0; e < fixtures::kRoutedExperts; ++e) {
        for (const char* tensor : {".weight", ".bias"}) {
          const auto& p = layout.parameter("expert" + std::to_string(e) + tensor);
          int nonzero = 0;
          for (int64_t i = 0; i < p.numel; ++i) nonzero += exact.grad[static_cast<size_t>(p.offset + i)] != 0;
          INFO(p.name << ": " << nonzero << " of " << p.numel << " gradient elements nonzero");
          CHECK(nonzero == (c.reaches[e] ? p.numel : 0));
        }
      }
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
