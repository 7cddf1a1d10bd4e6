// gacc's C++ GradScaler against the oracle's state machine (reference/loss_scale.h) and against
// PyTorch's documented semantics: the scale sequence over any pattern of overflowing steps, the
// unscale (fp32 reciprocal computed in double), the skipped step, and the misuses it refuses.

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include "implementations/torch/grad_scaler.h"
#include "reference/loss_scale.h"

using gacc::torch_recipes::GradScaler;
using Catch::Matchers::Contains;

namespace {

/// One parameter p (two elements), with SGD at lr 1 so that a step is visible.
struct Rig {
  torch::Tensor p = torch::tensor({1.0f, 2.0f}).requires_grad_(true);
  torch::optim::SGD optimizer{std::vector<torch::Tensor>{p}, torch::optim::SGDOptions(1.0)};

  /// A backward through the scaler of loss = sum(g * p): p.grad = scale * g.
  void backward(GradScaler& scaler, const torch::Tensor& g) {
    optimizer.zero_grad();
    scaler.scale((g * p).sum()).backward();
  }
};

GradScaler::Options options_of(const gacc::LossScaleSpec& spec) {
  return {spec.init_scale, spec.growth_factor, spec.backoff_factor, spec.growth_interval};
}

}  // namespace

TEST_CASE("the scale follows the oracle's state machine over any pattern of overflows", "[grad_scaler]") {
  rc::prop("scale and growth tracker equal reference::update_loss_scale after every step", [] {
    gacc::LossScaleSpec spec;
    spec.init_scale = *rc::gen::element(65536.0, 1.0, 3.0, 0x1p100, 1e-30);
    spec.growth_factor = *rc::gen::element(2.0, 1.5, 1e30);
    spec.backoff_factor = *rc::gen::element(0.5, 0.25, 0.3);
    spec.growth_interval = *rc::gen::inRange<int64_t>(1, 5);
    const auto overflows = *rc::gen::container<std::vector<bool>>(*rc::gen::inRange(1, 30), rc::gen::arbitrary<bool>());
    GradScaler scaler(options_of(spec));
    Rig rig;
    auto expected = gacc::reference::initial_loss_scale(spec);
    for (bool overflow : overflows) {
      RC_ASSERT(scaler.get_scale() == expected.scale);
      RC_ASSERT(scaler.growth_tracker() == expected.growth_tracker);
      rig.backward(scaler, overflow ? torch::tensor({std::numeric_limits<float>::infinity(), 0.0f})
                                    : torch::tensor({0.5f, -0.25f}));
      const auto before = rig.p.detach().clone();
      const bool stepped = scaler.step(rig.optimizer);
      RC_ASSERT(stepped == !overflow);
      RC_ASSERT(torch::equal(rig.p.detach(), before) == overflow);
      scaler.update();
      expected = gacc::reference::update_loss_scale(spec, expected, overflow);
    }
    RC_ASSERT(scaler.get_scale() == expected.scale);
  });
}

TEST_CASE("unscale_ multiplies by the fp32 reciprocal of the scale and finds NaN as well as infinity",
          "[grad_scaler]") {
  GradScaler scaler({3.0, 2.0, 0.5, 2000});
  Rig rig;
  rig.backward(scaler, torch::tensor({0.75f, -6.0f}));
  CHECK(rig.p.grad()[0].item<float>() == 2.25f);
  scaler.unscale_(rig.optimizer);
  const float inverse = static_cast<float>(1.0 / 3.0);
  CHECK(rig.p.grad()[0].item<float>() == 2.25f * inverse);
  CHECK(rig.p.grad()[1].item<float>() == -18.0f * inverse);
  CHECK(scaler.step(rig.optimizer));
  scaler.update();

  rig.backward(scaler, torch::tensor({std::numeric_limits<float>::quiet_NaN(), 1.0f}));
  CHECK_FALSE(scaler.step(rig.optimizer));
  scaler.update();
  CHECK(scaler.get_scale() == 1.5);
}

TEST_CASE("the scaler refuses what PyTorch's refuses", "[grad_scaler]") {
  CHECK_THROWS_WITH(GradScaler({0.0, 2.0, 0.5, 1}), Contains("init_scale must be positive and finite"));
  CHECK_THROWS_WITH(GradScaler({1.0, 1.0, 0.5, 1}), Contains("growth_factor must be > 1"));
  CHECK_THROWS_WITH(GradScaler({1.0, 2.0, 1.0, 1}), Contains("backoff_factor must be in (0, 1)"));
  CHECK_THROWS_WITH(GradScaler({1.0, 2.0, 0.5, 0}), Contains("growth_interval must be >= 1"));

  GradScaler scaler({1024.0, 2.0, 0.5, 1});
  Rig rig;
  CHECK_THROWS_WITH(scaler.update(), Contains("no inf checks were recorded prior to update()"));
  rig.backward(scaler, torch::tensor({1.0f, 1.0f}));
  scaler.unscale_(rig.optimizer);
  CHECK_THROWS_WITH(scaler.unscale_(rig.optimizer), Contains("unscale_() has already been called"));
  scaler.step(rig.optimizer);
  CHECK_THROWS_WITH(scaler.step(rig.optimizer), Contains("step() has already been called"));
  CHECK_THROWS_WITH(scaler.unscale_(rig.optimizer), Contains("unscale_() is being called after step()"));
  scaler.update();
  CHECK(scaler.get_scale() == 2048.0);

  auto half = torch::tensor({1.0f}).to(torch::kFloat16).requires_grad_(true);
  torch::optim::SGD on_half(std::vector<torch::Tensor>{half}, torch::optim::SGDOptions(1.0));
  scaler.scale(half.sum()).backward();
  CHECK_THROWS_WITH(scaler.unscale_(on_half), Contains("fp16 gradients"));
}
