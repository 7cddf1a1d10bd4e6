// The oracle against LibTorch's autograd, torch::optim and its schedulers in float64, on the same
// weights and data. (tests/ may include LibTorch; reference/ may not.) Tolerances: Note
// [tolerance] for a float64 implementation (u = 2^-53).

#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>
#include <torch/torch.h>

#include "implementations/torch/schedules.h"
#include "implementations/torch/zoo_model.h"
#include "properties/compare.h"
#include "properties/generators.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"
#include "reference/oracle.h"
#include "tests/support/scenarios.h"

using namespace gacc;

namespace {

const reference::OracleOptions kJudgeFloat64{true, &kFp64};

struct Float64Step {
  std::vector<double> grad;
  double loss;
  std::vector<double> buffers;
};

/// LibTorch's float64 loss and gradient of the whole window as one large batch, at `params`.
Float64Step libtorch_step(const Scenario& sc, int step, const std::vector<double>& params) {
  torch_recipes::ZooModel model(sc.model, torch::kFloat64, params);
  model->train();
  const auto batch = torch_recipes::to_tensors(fixtures::window_batch(sc, step), torch::kFloat64);
  const auto loss = torch_recipes::batch_loss(sc, model->forward(batch.inputs), batch.targets);
  loss.backward();
  return {torch_recipes::flatten_gradients(model->ordered_parameters()), loss.item<double>(),
          torch_recipes::flatten(model->ordered_buffers())};
}

/// The worst ratio of LibTorch float64 to the oracle on window `step` (from the initial weights).
double gradient_ratio(const Scenario& sc, std::string* detail = nullptr, int step = 0) {
  const reference::Oracle oracle(sc, kJudgeFloat64);
  const auto& expected = oracle.window_from(step, oracle.initial_params(), {}, oracle.initial_buffers());
  const auto observed = libtorch_step(sc, step, oracle.initial_params());
  const auto grad = properties::compare(observed.grad, expected.grad, expected.grad_tolerance);
  const auto loss = properties::compare(observed.loss, expected.loss, expected.loss_tolerance);
  const auto buffers = properties::compare(observed.buffers, expected.buffers_after, expected.buffers_after_tolerance);
  if (detail) {
    *detail = "grad " + properties::describe(grad) + "; loss " + properties::describe(loss) + "; buffers " +
              properties::describe(buffers);
  }
  return std::max({grad.worst_ratio, loss.worst_ratio, buffers.worst_ratio});
}

/// Trains the large batch for the scenario's steps with torch::optim, gacc's LibTorch schedules
/// and clip_grad_norm_/clip_grad_value_ in float64; returns the worst ratio against the oracle's
/// trajectory (parameters, state, buffers, learning rate).
double trajectory_ratio(const Scenario& sc, std::string& detail) {
  const reference::Oracle oracle(sc, kJudgeFloat64);
  torch_recipes::ZooModel model(sc.model, torch::kFloat64, oracle.initial_params());
  model->train();
  const auto& params = model->ordered_parameters();
  auto optimizer = torch_recipes::make_optimizer(sc, params);
  auto schedule = torch_recipes::make_schedule(sc, *optimizer);
  double worst = 0;
  for (int s = 0; s < sc.steps; ++s) {
    optimizer->zero_grad();
    const auto batch = torch_recipes::to_tensors(fixtures::window_batch(sc, s), torch::kFloat64);
    torch_recipes::batch_loss(sc, model->forward(batch.inputs), batch.targets).backward();
    // An mlp_routed expert the window does not reach gets a zero gradient, as the training loop
    // hands it (implementations/torch/training_loop.cpp), so that torch::optim steps it.
    for (const auto& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    }
    if (sc.clipping.kind == ClippingKind::norm) torch::nn::utils::clip_grad_norm_(params, sc.clipping.max_norm);
    if (sc.clipping.kind == ClippingKind::value) torch::nn::utils::clip_grad_value_(params, sc.clipping.clip_value);
    const double lr = optimizer->param_groups()[0].options().get_lr();
    optimizer->step();
    if (schedule) schedule->step();
    const auto& e = oracle.trajectory()[s];
    std::vector<properties::Comparison> checks = {
        properties::compare(torch_recipes::flatten(params), e.params_after, e.params_after_tolerance),
        properties::compare(torch_recipes::flatten(model->ordered_buffers()), e.buffers_after, e.buffers_after_tolerance),
        properties::compare(lr, e.lr, e.lr_tolerance)};
    const auto state = torch_recipes::read_optimizer_state(sc, *optimizer, params);
    for (const auto& [name, values] : e.state_after) {
      checks.push_back(properties::compare(state.at(name), values, e.state_after_tolerance.at(name)));
    }
    for (const auto& c : checks) {
      if (c.worst_ratio > worst) {
        worst = c.worst_ratio;
        detail = "step " + std::to_string(s) + ": " + properties::describe(c);
      }
    }
  }
  return worst;
}

Scenario long_scenario(OptimizerKind kind, ScheduleKind schedule, ClippingKind clipping) {
  Scenario sc = testing::mlp_scenario();
  sc.steps = 20;
  sc.accumulation_steps = 1;
  sc.data.windows.assign(20, {{6}});
  sc.optimizer.kind = kind;
  sc.optimizer.lr = kind == OptimizerKind::sgd ? 0.125 : 0.01;
  sc.optimizer.weight_decay = 1.0 / 32;
  if (kind == OptimizerKind::sgd) {
    sc.optimizer.momentum = 0.875;
  } else {
    sc.optimizer.momentum = 0.0;
    sc.optimizer.amsgrad = true;
  }
  sc.schedule.kind = schedule;
  sc.schedule.step_size = 3;
  sc.schedule.gamma = 0.5;
  sc.schedule.warmup_steps = 5;
  sc.schedule.start_factor = 0.1;
  sc.schedule.t_max = 7;
  sc.schedule.eta_min = sc.optimizer.lr / 10;
  sc.clipping.kind = clipping;
  sc.clipping.max_norm = 0.05;
  sc.clipping.clip_value = 0.01;
  return sc;
}

}  // namespace

TEST_CASE("the oracle's gradient equals LibTorch float64 autograd for every model", "[oracle]") {
  for (const auto arch : properties::whole_zoo().architectures) {
    rc::prop("ratio below 0.5 at u = 2^-53 for " + to_string(arch), [arch] {
      const Scenario sc = *properties::scenarios({{arch}, {OptimizerKind::sgd}, false, false});
      std::string detail;
      const double ratio = gradient_ratio(sc, &detail);
      RC_LOG() << detail;
      RC_ASSERT(ratio < 0.5);
    });
  }
}

TEST_CASE("mlp_routed's gradient equals LibTorch float64 autograd whichever experts a batch reaches",
          "[oracle]") {
  // Routes of routed_scenario(): tests/support/scenarios.h. Windows 0 and 1 reach both experts,
  // window 2 expert 0 alone.
  const Scenario sc = testing::routed_scenario();
  for (const int step : {0, 1, 2}) {
    std::string detail;
    const double ratio = gradient_ratio(sc, &detail, step);
    INFO("window " << step << ": " << detail);
    CHECK(ratio < 0.5);
  }
  // The same examples in windows of two: routes [1 1], [0 1], [1] (the first and last: expert 1 alone).
  Scenario pairs = sc;
  pairs.accumulation_steps = 1;
  pairs.data.global_batch = 2;
  pairs.data.windows = {{{2}}, {{2}}, {{1}}};
  for (const int step : {0, 1, 2}) {
    std::string detail;
    const double ratio = gradient_ratio(pairs, &detail, step);
    INFO("window " << step << " of two examples: " << detail);
    CHECK(ratio < 0.5);
  }
  // LibTorch leaves the unreached expert without a gradient at all; the oracle's is exactly zero.
  torch_recipes::ZooModel model(sc.model, torch::kFloat64, fixtures::initial_weights(sc.model, sc.precision));
  const auto batch = torch_recipes::to_tensors(fixtures::window_batch(sc, 2), torch::kFloat64);
  torch_recipes::batch_loss(sc, model->forward(batch.inputs), batch.targets).backward();
  const auto& params = model->ordered_parameters();  // fc1.weight, fc1.bias, expert0.*, expert1.*
  for (size_t i = 0; i < 4; ++i) CHECK(params[i].grad().defined());
  CHECK_FALSE(params[4].grad().defined());
  CHECK_FALSE(params[5].grad().defined());
}

TEST_CASE("mlp_routed trajectories equal torch::optim, an unreached expert stepped with a zero gradient",
          "[oracle]") {
  // routed_scenario()'s last window never reaches expert 1: weight decay, momentum and Adam's
  // moments still move it, in the oracle as in torch::optim handed a zero gradient.
  for (const auto kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw}) {
    Scenario sc = testing::routed_scenario();
    sc.optimizer.kind = kind;
    if (kind != OptimizerKind::sgd) {
      sc.optimizer.lr = 0.01;
      sc.optimizer.momentum = 0.0;
    }
    std::string detail;
    const double ratio = trajectory_ratio(sc, detail);
    INFO(to_string(kind) << ": " << detail);
    CHECK(ratio < 0.5);
  }
}

TEST_CASE("the oracle's trajectories equal torch::optim over 20 steps, every optimizer and schedule", "[oracle]") {
  for (const auto kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw}) {
    for (const auto schedule :
         {ScheduleKind::constant, ScheduleKind::step, ScheduleKind::linear_warmup, ScheduleKind::cosine}) {
      for (const auto clipping : {ClippingKind::none, ClippingKind::norm, ClippingKind::value}) {
        std::string detail;
        const double ratio = trajectory_ratio(long_scenario(kind, schedule, clipping), detail);
        INFO(to_string(kind) << ", " << to_string(schedule) << ", clipping " << to_string(clipping) << ": " << detail);
        CHECK(ratio < 0.5);
      }
    }
  }
}

TEST_CASE("SGD with nesterov and with dampening equals torch::optim over 20 steps", "[oracle]") {
  for (const bool nesterov : {false, true}) {
    Scenario sc = long_scenario(OptimizerKind::sgd, ScheduleKind::constant, ClippingKind::none);
    sc.optimizer.nesterov = nesterov;
    sc.optimizer.dampening = nesterov ? 0.0 : 0.25;
    std::string detail;
    const double ratio = trajectory_ratio(sc, detail);
    INFO("nesterov " << nesterov << ": " << detail);
    CHECK(ratio < 0.5);
  }
}

TEST_CASE("the schedules' rates equal PyTorch's own schedulers", "[oracle]") {
  // PyTorch (Python, the project's .venv) steps LinearLR and CosineAnnealingLR 25 times.
  const std::string script =
      "import torch\n"
      "def run(make):\n"
      "    p = torch.nn.Parameter(torch.zeros(1))\n"
      "    o = torch.optim.SGD([p], lr=0.3)\n"
      "    s = make(o)\n"
      "    out = []\n"
      "    for _ in range(25):\n"
      "        out.append(o.param_groups[0]['lr'])\n"
      "        o.step(); s.step()\n"
      "    print(' '.join(repr(x) for x in out))\n"
      "run(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5))\n"
      "run(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.03))\n"
      "run(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5))\n";
  const std::string command = std::string(GACC_TORCH_PYTHON) + " -W ignore -c \"" + script + "\"";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe)) output += buffer;
  REQUIRE(pclose(pipe) == 0);
  std::istringstream lines(output);
  Scenario sc = long_scenario(OptimizerKind::sgd, ScheduleKind::linear_warmup, ClippingKind::none);
  sc.optimizer.lr = 0.3;
  sc.schedule.eta_min = 0.03;
  for (const auto kind : {ScheduleKind::linear_warmup, ScheduleKind::cosine, ScheduleKind::step}) {
    sc.schedule.kind = kind;
    std::string line;
    REQUIRE(std::getline(lines, line));
    std::istringstream values(line);
    for (int s = 0; s < 25; ++s) {
      double pytorch = 0;
      REQUIRE(values >> pytorch);
      const double oracle = reference::learning_rate<double>(sc, s);
      INFO(to_string(kind) << " step " << s);
      CHECK(oracle == Approx(pytorch).epsilon(1e-13));
    }
  }
}

TEST_CASE("ghost BatchNorm equals LibTorch's BatchNorm accumulated over micro-batches in float64", "[oracle]") {
  Scenario sc = testing::arch_scenario(Architecture::mlp_batch_norm);
  sc.data.global_batch = 7;
  sc.data.windows = {{{2, 3, 2}}};
  sc.accumulation_steps = 3;
  sc.steps = 1;
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  const auto b = fixtures::initial_buffers(sc.model);

  torch_recipes::ZooModel model(sc.model, torch::kFloat64, w);
  model->train();
  const double elements = static_cast<double>(fixtures::window_loss_elements(sc, 0));
  for (int k = 0; k < 3; ++k) {
    const auto batch = torch_recipes::to_tensors(fixtures::micro_batch(sc, 0, 0, k), torch::kFloat64);
    (torch_recipes::summed_loss(sc, model->forward(batch.inputs), batch.targets) / elements).backward();
  }

  reference::RoundingScope fp64(kFp64);
  reference::EvaluationOptions ghost;
  ghost.virtual_batches = {2, 3, 2};
  const auto batch = fixtures::window_batch(sc, 0);
  const auto truth = reference::loss_and_gradient(sc, std::vector<reference::HighPrecision>(w.begin(), w.end()),
                                                  std::vector<reference::HighPrecision>(b.begin(), b.end()), batch, ghost);
  const auto bound = reference::loss_and_gradient(sc, std::vector<reference::Bounded>(w.begin(), w.end()),
                                                  std::vector<reference::Bounded>(b.begin(), b.end()), batch, ghost);
  std::vector<double> expected, tolerance, expected_buffers, buffer_tolerance;
  for (size_t i = 0; i < truth.grad.size(); ++i) {
    expected.push_back(reference::to_double(truth.grad[i]));
    tolerance.push_back(reference::kToleranceMargin * bound.grad[i].error);
  }
  for (size_t i = 0; i < truth.buffers_after.size(); ++i) {
    expected_buffers.push_back(reference::to_double(truth.buffers_after[i]));
    buffer_tolerance.push_back(reference::kToleranceMargin * bound.buffers_after[i].error);
  }
  const auto grad = properties::compare(torch_recipes::flatten_gradients(model->ordered_parameters()), expected, tolerance);
  const auto buffers = properties::compare(torch_recipes::flatten(model->ordered_buffers()), expected_buffers, buffer_tolerance);
  INFO("grad " << properties::describe(grad) << "; buffers " << properties::describe(buffers));
  CHECK(grad.worst_ratio < 0.5);
  CHECK(buffers.worst_ratio < 0.5);
  CHECK(expected_buffers.back() == 3.0);
}

TEST_CASE("the bf16 and fp16 rounding models equal LibTorch's conversions from fp32", "[oracle]") {
  // Autocast rounds fp32 values into bf16 and fp16: random fp32 values over a wide range, including
  // fp16's overflow and subnormal ranges and exact ties, convert as the oracle's model says.
  std::vector<float> values;
  uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float mantissa = static_cast<float>(state >> 8) * 0x1p-24f;
    values.push_back(std::ldexp(mantissa, static_cast<int>(state % 64) - 40) * ((state & 1) ? -1.0f : 1.0f));
  }
  for (float tie : {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 65520.0f, 65519.0f, 0x1p-25f, 3 * 0x1p-25f}) values.push_back(tie);
  const auto source = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kFloat32);
  for (const auto& [format, dtype] : {std::pair<const FloatFormat*, torch::Dtype>{&kBf16, torch::kBFloat16},
                                      std::pair<const FloatFormat*, torch::Dtype>{&kFp16, torch::kHalf}}) {
    const auto converted = source.to(dtype).to(torch::kFloat64).contiguous();
    const double* got = converted.data_ptr<double>();
    int64_t mismatches = 0, first = -1;
    for (size_t i = 0; i < values.size(); ++i) {
      const double expected = round_to(*format, static_cast<double>(values[i]));
      if (!(expected == got[i] || (std::isnan(expected) && std::isnan(got[i])))) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++mismatches;
      }
    }
    INFO(format->name << ": " << mismatches << " mismatches, first at value "
                      << (first >= 0 ? values[static_cast<size_t>(first)] : 0.0f));
    CHECK(mismatches == 0);
  }
}
