// The oracle against LibTorch's autograd and torch::optim in float64, on the same weights and data.
// (tests/ may include LibTorch; reference/ may not.) Tolerances: Note [tolerance] at u = 2^-53.

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>
#include <torch/torch.h>

#include "implementations/torch/zoo_model.h"
#include "properties/compare.h"
#include "properties/generators.h"
#include "reference/oracle.h"
#include "tests/support/scenarios.h"

using namespace gacc;

namespace {

constexpr double kFloat64Roundoff = 0x1p-53;

/// LibTorch's float64 gradient of the whole window as one large batch, at `params`.
std::vector<double> libtorch_gradient(const Scenario& sc, int step, const std::vector<double>& params) {
  torch_recipes::ZooModel model(sc.model, torch::kFloat64, params);
  const auto [inputs, targets] = torch_recipes::to_tensors(fixtures::window_batch(sc, step), torch::kFloat64);
  torch_recipes::batch_loss(sc, model->forward(inputs), targets, sc.loss.reduction).backward();
  return torch_recipes::flatten_gradients(model->ordered_parameters());
}

double gradient_ratio(const Scenario& sc) {
  const reference::Oracle oracle(sc, {true, kFloat64Roundoff});
  const auto& expected = oracle.window_from(0, oracle.initial_params(), {});
  return properties::compare(libtorch_gradient(sc, 0, oracle.initial_params()), expected.grad,
                             expected.grad_tolerance)
      .worst_ratio;
}

}  // namespace

TEST_CASE("the oracle's gradient equals LibTorch float64 autograd", "[oracle]") {
  for (auto sc : {testing::mlp_scenario(), testing::linear_scenario()}) {
    for (auto reduction : {Reduction::mean, Reduction::sum}) {
      sc.loss.reduction = reduction;
      const double ratio = gradient_ratio(sc);
      INFO(to_string(sc.model.arch) << " " << to_string(reduction) << ": ratio " << ratio);
      CHECK(ratio < 0.5);
    }
  }
}

TEST_CASE("the oracle's gradient equals LibTorch float64 autograd on generated scenarios", "[oracle]") {
  rc::prop("ratio below 0.5 at u = 2^-53", [](const Scenario& sc) { RC_ASSERT(gradient_ratio(sc) < 0.5); });
}

TEST_CASE("the oracle's SGD trajectory equals torch::optim::SGD in float64 over 20 steps", "[oracle]") {
  for (const bool nesterov : {false, true}) {
    Scenario sc = testing::mlp_scenario();
    sc.steps = 20;
    sc.accumulation_steps = 1;
    sc.data.windows.assign(20, {{6}});
    sc.optimizer.momentum = 0.875;
    sc.optimizer.dampening = nesterov ? 0.0 : 0.25;
    sc.optimizer.nesterov = nesterov;
    sc.optimizer.weight_decay = 1.0 / 32;
    const reference::Oracle oracle(sc, {true, kFloat64Roundoff});

    torch_recipes::ZooModel model(sc.model, torch::kFloat64, oracle.initial_params());
    auto optimizer = torch_recipes::make_optimizer(sc, model->ordered_parameters());
    for (int s = 0; s < sc.steps; ++s) {
      optimizer->zero_grad();
      const auto [inputs, targets] = torch_recipes::to_tensors(fixtures::window_batch(sc, s), torch::kFloat64);
      torch_recipes::batch_loss(sc, model->forward(inputs), targets, sc.loss.reduction).backward();
      optimizer->step();
      const auto& expected = oracle.trajectory()[s];
      const auto params = properties::compare(torch_recipes::flatten(model->ordered_parameters()),
                                              expected.params_after, expected.params_after_tolerance);
      const auto state = torch_recipes::read_optimizer_state(sc, *optimizer, model->ordered_parameters());
      const auto buffer = properties::compare(state.at("momentum_buffer"), expected.state_after.at("momentum_buffer"),
                                              expected.state_after_tolerance.at("momentum_buffer"));
      INFO("nesterov " << nesterov << ", step " << s << ": params " << properties::describe(params)
                       << "; momentum " << properties::describe(buffer));
      CHECK(params.worst_ratio < 0.5);
      CHECK(buffer.worst_ratio < 0.5);
    }
  }
}
