// The oracle's models beyond their gradients: ghost BatchNorm, and inputs that do not fit.

#include <catch2/catch.hpp>

#include "fixtures/fixtures.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "tests/support/scenarios.h"

using namespace gacc;
using namespace gacc::reference;
using Catch::Matchers::Contains;

namespace {

template <class T>
std::vector<T> as(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

Scenario batch_norm() {
  Scenario sc = testing::arch_scenario(Architecture::mlp_batch_norm);
  sc.data.global_batch = 7;
  sc.data.windows = {{{2, 3, 2}}};
  sc.accumulation_steps = 3;
  sc.steps = 1;
  return sc;
}

}  // namespace

TEST_CASE("ghost BatchNorm over virtual batches equals accumulating those micro-batches", "[oracle]") {
  const Scenario sc = batch_norm();
  const auto w = as<HighPrecision>(fixtures::initial_weights(sc.model, sc.precision));
  const auto b = as<HighPrecision>(fixtures::initial_buffers(sc.model));
  EvaluationOptions ghost;
  ghost.virtual_batches = {2, 3, 2};
  const auto together = loss_and_gradient(sc, w, b, fixtures::window_batch(sc, 0), ghost);

  std::vector<HighPrecision> grad(w.size(), HighPrecision(0)), buffers = b;
  HighPrecision loss = 0;
  EvaluationOptions share;
  share.loss_elements = fixtures::window_loss_elements(sc, 0);
  for (int k = 0; k < 3; ++k) {
    const auto micro = loss_and_gradient(sc, w, buffers, fixtures::micro_batch(sc, 0, 0, k), share);
    for (size_t i = 0; i < grad.size(); ++i) grad[i] += micro.grad[i];
    loss += micro.loss;
    buffers = micro.buffers_after;
  }
  for (size_t i = 0; i < grad.size(); ++i) CHECK(to_double(abs(grad[i] - together.grad[i])) < 1e-40);
  CHECK(to_double(abs(loss - together.loss)) < 1e-40);
  for (size_t i = 0; i < buffers.size(); ++i) CHECK(to_double(abs(buffers[i] - together.buffers_after[i])) < 1e-40);
  CHECK(to_double(together.buffers_after.back()) == 3.0);  // running statistics updated K = 3 times

  // ... and differs from BatchNorm over the whole window: the documented non-equivalence.
  const auto large = loss_and_gradient(sc, w, b, fixtures::window_batch(sc, 0));
  double difference = 0;
  for (size_t i = 0; i < grad.size(); ++i) difference = std::max(difference, to_double(abs(grad[i] - large.grad[i])));
  CHECK(difference > 1e-6);
  CHECK(to_double(large.buffers_after.back()) == 1.0);
}

TEST_CASE("inputs that do not fit the model are refused, naming the problem", "[oracle]") {
  const Scenario lm = testing::arch_scenario(Architecture::causal_lm);
  const auto w = fixtures::initial_weights(lm.model, lm.precision);
  auto batch = fixtures::window_batch(lm, 0);
  for (size_t i = 0; i < batch.tokens.size(); ++i) {
    if (batch.lengths[i / static_cast<size_t>(batch.max_length)] > static_cast<int64_t>(i % batch.max_length)) {
      batch.tokens[i] = lm.model.vocab_size;  // one past the vocabulary
      break;
    }
  }
  CHECK_THROWS_WITH(loss_and_gradient(lm, w, {}, batch),
                    Contains("token id " + std::to_string(lm.model.vocab_size) + " outside the vocabulary"));
  auto targets = fixtures::window_batch(lm, 0);
  for (auto& t : targets.token_targets) {
    if (t != fixtures::kIgnoreIndex) {
      t = -7;
      break;
    }
  }
  CHECK_THROWS_WITH(loss_and_gradient(lm, w, {}, targets), Contains("target id -7 outside the vocabulary"));

  const Scenario mlp = testing::mlp_scenario();
  const auto mw = fixtures::initial_weights(mlp.model, mlp.precision);
  CHECK_THROWS_WITH(loss_and_gradient(mlp, std::vector<double>(3, 0.0), {}, fixtures::window_batch(mlp, 0)),
                    Contains("expected 26 parameters, got 3"));
  CHECK_THROWS_WITH(loss_and_gradient(mlp, mw, {1.0}, fixtures::window_batch(mlp, 0)),
                    Contains("expected 0 buffer values, got 1"));
  auto narrow = fixtures::window_batch(mlp, 0);
  narrow.input_dim = 2;
  CHECK_THROWS_WITH(loss_and_gradient(mlp, mw, {}, narrow), Contains("does not fit model 3 -> 2"));
  EvaluationOptions wrong;
  wrong.virtual_batches = {2, 2};
  CHECK_THROWS_WITH(loss_and_gradient(mlp, mw, {}, fixtures::window_batch(mlp, 0), wrong),
                    Contains("virtual batches cover 4 of 6 examples"));
}
