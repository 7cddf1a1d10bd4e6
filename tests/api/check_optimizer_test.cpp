// gacc::check_optimizer, through its public headers only: LibTorch's own optimizers pass, and
// optimizers broken the way accumulation breaks them (state or scaling tied to backward passes)
// fail, each with a ratio above 1 or structurally.

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>
#include <utility>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gacc/catch2.h"
#include "gacc/check_optimizer.h"

namespace {

gacc::OptimizerCheckOptions small(int cases, uint64_t seed = 7) {
  gacc::OptimizerCheckOptions options;
  options.cases = cases;
  options.seed = seed;
  options.max_shrink_evaluations = 10;
  return options;
}

/// Options of the test optimizers below: a learning rate.
struct RateOptions : torch::optim::OptimizerCloneableOptions<RateOptions> {
  explicit RateOptions(double lr) : lr_(lr) {}
  TORCH_ARG(double, lr);
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

/// Counts, per parameter, the backward passes that produced a gradient since the last step.
struct BackwardCounter {
  std::shared_ptr<std::vector<int64_t>> counts;
  explicit BackwardCounter(const std::vector<torch::Tensor>& params)
      : counts(std::make_shared<std::vector<int64_t>>(params.size(), 0)) {
    for (size_t i = 0; i < params.size(); ++i) {
      auto shared = counts;
      params[i].register_hook([shared, i](const torch::Tensor&) { ++(*shared)[i]; });
    }
  }
};

// Broken! Plain SGD that divides the window's gradient by the number of backward passes it came
// from, as if each pass had added a full mean: the update shrinks by K under accumulation (the
// family of the "partial window divided by K" and "loss divided twice" bugs), and is right at K = 1.
class MeanOverBackwardsSgd : public torch::optim::Optimizer {
 public:
  MeanOverBackwardsSgd(const std::vector<torch::Tensor>& params, double lr)
      : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<RateOptions>(lr)), counter_(params) {}

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    torch::Tensor loss = closure ? closure() : torch::Tensor();
    auto& params = param_groups()[0].params();
    const double lr = param_groups()[0].options().get_lr();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) continue;
      const auto passes = std::max<int64_t>((*counter_.counts)[i], 1);
      params[i].add_(params[i].grad(), -lr / static_cast<double>(passes));
      (*counter_.counts)[i] = 0;
    }
    return loss;
  }

 private:
  BackwardCounter counter_;
};

// Broken! Adam whose step count (bias correction) advances on every backward pass instead of every
// optimizer step: keras-team/keras #19990 (Adam's iterations advanced per micro-batch under
// gradient accumulation).
class StepCountPerBackwardAdam : public torch::optim::Optimizer {
 public:
  StepCountPerBackwardAdam(const std::vector<torch::Tensor>& params, double lr)
      : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<RateOptions>(lr)), counter_(params) {
    for (const auto& p : params) {
      exp_avg_.push_back(torch::zeros_like(p));
      exp_avg_sq_.push_back(torch::zeros_like(p));
      steps_.push_back(0);
    }
  }

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    torch::Tensor loss = closure ? closure() : torch::Tensor();
    auto& params = param_groups()[0].params();
    const double lr = param_groups()[0].options().get_lr();
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) continue;
      steps_[i] += std::max<int64_t>((*counter_.counts)[i], 1);  // the bug: one count per backward pass
      (*counter_.counts)[i] = 0;
      const auto& g = params[i].grad();
      exp_avg_[i].mul_(beta1).add_(g, 1 - beta1);
      exp_avg_sq_[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
      const double correction1 = 1 - std::pow(beta1, static_cast<double>(steps_[i]));
      const double correction2 = 1 - std::pow(beta2, static_cast<double>(steps_[i]));
      const auto denominator = (exp_avg_sq_[i] / correction2).sqrt_().add_(eps);
      params[i].addcdiv_(exp_avg_[i], denominator, -lr / correction1);
    }
    return loss;
  }

 private:
  BackwardCounter counter_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<int64_t> steps_;
};

// Broken! SGD that applies its weight decay to the parameter from a gradient hook, on every
// backward pass (as optimizer-in-backward applies whole steps), instead of once per step.
class DecayInBackwardSgd : public torch::optim::Optimizer {
 public:
  DecayInBackwardSgd(const std::vector<torch::Tensor>& params, double lr, double decay)
      : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<RateOptions>(lr)) {
    for (const auto& p : params) {
      // A weak reference: a hook holding its own tensor would keep it alive forever (a cycle).
      c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> target(p.getIntrusivePtr());
      p.register_hook([target, lr, decay](const torch::Tensor&) {
        torch::NoGradGuard no_grad;
        if (auto alive = target.lock()) torch::Tensor(std::move(alive)).mul_(1 - lr * decay);
      });
    }
  }

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    torch::Tensor loss = closure ? closure() : torch::Tensor();
    const double lr = param_groups()[0].options().get_lr();
    for (auto& p : param_groups()[0].params()) {
      if (p.grad().defined()) p.add_(p.grad(), -lr);
    }
    return loss;
  }
};

gacc::OptimizerFactory sgd_momentum() {
  return [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01).nesterov(true));
  };
}

gacc::OptimizerFactory adam() {
  return [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(0.01).weight_decay(0.01));
  };
}

/// Every check holds. Under bf16 a step whose gradient the oracle cannot bound is not judged, so
/// the step check may judge fewer cases there; in fp32 every case is judged.
void check_passes(const gacc::OptimizerCheckReport& report, bool every_case_judged = true) {
  INFO(report.table());
  REQUIRE(report.rows.size() == 3);
  for (const auto& row : report.rows) {
    CHECK(row.verdict == gacc::CheckVerdict::pass);
    if (every_case_judged || row.check != "step") {
      CHECK(row.cases == report.cases);
    } else {
      CHECK(row.cases > 0);
    }
    CHECK(row.worst_ratio < 1.0);
    CHECK(row.counterexample.empty());
  }
}

}  // namespace

TEST_CASE("torch::optim::SGD with momentum, nesterov and weight decay passes every check", "[api]") {
  check_passes(gacc::check_optimizer("sgd", sgd_momentum(), small(12)));
}

TEST_CASE("torch::optim::Adam passes every check, in fp32 and bf16", "[api]") {
  auto options = small(12);
  options.precisions = {"fp32", "bf16"};
  check_passes(gacc::check_optimizer("adam", adam(), options), false);
}

TEST_CASE("torch::optim::AdamW with amsgrad passes every check on the language model", "[api]") {
  auto options = small(6);
  options.models = {"causal_lm"};
  check_passes(gacc::check_optimizer(
      "adamw",
      [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(0.01).amsgrad(true));
      },
      options));
}

TEST_CASE("GACC_CHECK_OPTIMIZER asserts every check of a correct optimizer", "[api]") {
  GACC_CHECK_OPTIMIZER("sgd", sgd_momentum(), small(4));
}

TEST_CASE("an SGD that divides by its backward passes fails the step check, and only it", "[api]") {
  const auto report = gacc::check_optimizer(
      "mean-over-backwards-sgd",
      [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<MeanOverBackwardsSgd>(params, 0.05);
      },
      small(12));
  INFO(report.table());
  CHECK_FALSE(report.passed());
  const auto& step = report.row("step");
  CHECK(step.verdict == gacc::CheckVerdict::fail);
  CHECK(step.worst_ratio > 1.0);
  CHECK(std::isfinite(step.worst_ratio));
  CHECK(step.counterexample_ratio >= 1.0);
  CHECK(step.reproduce.find("gacc::check_optimizer_on_scenario(\"mean-over-backwards-sgd\"") == 0);
  // The gradient is the loop's, and the structure is intact: the bug shows where it is.
  CHECK(report.row("gradient").verdict == gacc::CheckVerdict::pass);
  CHECK(report.row("structure").verdict == gacc::CheckVerdict::pass);
  GACC_CHECK_OPTIMIZER_FAILS("mean-over-backwards-sgd",
                             [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
                               return std::make_unique<MeanOverBackwardsSgd>(params, 0.05);
                             },
                             small(6));
}

TEST_CASE("the shrunk counterexample reruns to the same failure", "[api]") {
  const gacc::OptimizerFactory factory = [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<MeanOverBackwardsSgd>(params, 0.05);
  };
  const auto report = gacc::check_optimizer("mean-over-backwards-sgd", factory, small(12));
  const auto& step = report.row("step");
  REQUIRE(step.verdict == gacc::CheckVerdict::fail);
  const auto rerun = gacc::check_optimizer_on_scenario("mean-over-backwards-sgd", factory, step.counterexample);
  INFO(rerun.table());
  CHECK(rerun.row("step").verdict == gacc::CheckVerdict::fail);
  CHECK(rerun.row("step").worst_ratio == step.counterexample_ratio);
  // A counterexample needs K >= 2: at K = 1 the broken SGD is plain SGD.
  CHECK(step.counterexample.find("\"accumulation_steps\":1,") == std::string::npos);
}

TEST_CASE("an Adam whose step count advances per backward pass fails the step check", "[api]") {
  const auto report = gacc::check_optimizer(
      "step-count-per-backward-adam",
      [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<StepCountPerBackwardAdam>(params, 0.01);
      },
      small(12));
  INFO(report.table());
  CHECK(report.row("step").verdict == gacc::CheckVerdict::fail);
  CHECK(report.row("step").worst_ratio > 1.0);
  CHECK(report.row("gradient").verdict == gacc::CheckVerdict::pass);
}

TEST_CASE("the same Adam written correctly passes: the checks see the bug, not the hand-written code", "[api]") {
  // StepCountPerBackwardAdam at one backward pass per window is a correct Adam: at K = 1 it
  // passes, and the same scenario cut into K = 3 micro-batches fails.
  const gacc::OptimizerFactory factory = [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<StepCountPerBackwardAdam>(params, 0.01);
  };
  const std::string k1 =
      R"({"model": {"arch": "mlp_tanh", "input_dim": 3, "hidden_dim": 4, "output_dim": 2, "init_seed": 7},
          "data": {"seed": 11, "global_batch": 6, "windows": [[[6]], [[6]], [[6]]]},
          "loss": {"kind": "mse", "reduction": "mean"},
          "optimizer": {"kind": "sgd", "lr": 0.125},
          "precision": "fp32", "world_size": 1, "accumulation_steps": 1, "steps": 3})";
  const auto at_k1 = gacc::check_optimizer_on_scenario("adam-k1", factory, k1);
  INFO(at_k1.table());
  CHECK(at_k1.passed());
  std::string k3 = k1;
  k3.replace(k3.find("[[[6]], [[6]], [[6]]]"), 21, "[[[1, 3, 2]], [[2, 2, 2]], [[4, 1, 1]]]");
  k3.replace(k3.find("\"accumulation_steps\": 1"), 23, "\"accumulation_steps\": 3");
  const auto at_k3 = gacc::check_optimizer_on_scenario("adam-k3", factory, k3);
  INFO(at_k3.table());
  CHECK(at_k3.row("step").verdict == gacc::CheckVerdict::fail);
}

TEST_CASE("an SGD that decays parameters inside backward fails the structure check", "[api]") {
  const auto report = gacc::check_optimizer(
      "decay-in-backward-sgd",
      [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<DecayInBackwardSgd>(params, 0.05, 0.1);
      },
      small(4));
  INFO(report.table());
  const auto& structure = report.row("structure");
  CHECK(structure.verdict == gacc::CheckVerdict::fail);
  CHECK(std::isinf(structure.worst_ratio));
  CHECK(structure.counterexample_detail.find("changed during backward") != std::string::npos);
}

TEST_CASE("bad options and a null factory are refused with the value", "[api]") {
  auto options = small(0);
  CHECK_THROWS_WITH(gacc::check_optimizer("sgd", sgd_momentum(), options), Catch::Contains("got 0"));
  options = small(1);
  options.models = {"mlp_batch_norm"};
  CHECK_THROWS_WITH(gacc::check_optimizer("sgd", sgd_momentum(), options), Catch::Contains("mlp_batch_norm"));
  options = small(1);
  options.precisions = {"fp16"};
  CHECK_THROWS_WITH(gacc::check_optimizer("sgd", sgd_momentum(), options), Catch::Contains("fp16"));
  CHECK_THROWS_AS(gacc::check_optimizer("null",
                                        [](std::vector<torch::Tensor>) -> std::unique_ptr<torch::optim::Optimizer> {
                                          return nullptr;
                                        },
                                        small(1)),
                  std::invalid_argument);
  CHECK_THROWS_WITH(gacc::check_optimizer_on_scenario("sgd", sgd_momentum(), "{not json"),
                    Catch::Contains("check_optimizer_on_scenario"));
}

TEST_CASE("the table lists every check and names a failure's reproduce line", "[api]") {
  const auto report = gacc::check_optimizer(
      "mean-over-backwards-sgd",
      [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<MeanOverBackwardsSgd>(params, 0.05);
      },
      small(6));
  const auto table = report.table();
  for (const char* check : {"gradient", "step", "structure"}) CHECK(table.find(check) != std::string::npos);
  CHECK(table.find("step FAILS") != std::string::npos);
  CHECK(table.find("reproduce: gacc::check_optimizer_on_scenario(") != std::string::npos);
  CHECK_THROWS_AS(report.row("no-such-check"), std::out_of_range);
}

// Separation, measured (hidden: `gacc_api_tests "[.separation]"`): over many cases, the worst ratio of
// LibTorch's optimizers against the weakest catch of each broken one.
TEST_CASE("separation of correct and broken optimizers over many cases", "[.separation]") {
  auto options = small(200, 424242);
  options.precisions = {"fp32", "bf16"};
  options.max_shrink_evaluations = 0;
  const std::vector<std::pair<std::string, gacc::OptimizerFactory>> correct = {
      {"sgd", sgd_momentum()},
      {"adam", adam()},
      {"adamw-amsgrad", [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(0.01).amsgrad(true));
       }}};
  for (const auto& [name, factory] : correct) {
    const auto report = gacc::check_optimizer(name, factory, options);
    std::cout << report.table();
    for (const auto& row : report.rows) {
      std::cout << "  " << row.check << " worst: " << row.worst_detail << "\n";
      CHECK(row.worst_ratio <= 0.5);
    }
  }
  const std::vector<std::pair<std::string, gacc::OptimizerFactory>> broken = {
      {"mean-over-backwards-sgd", [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<MeanOverBackwardsSgd>(params, 0.05);
       }},
      {"step-count-per-backward-adam",
       [](std::vector<torch::Tensor> params) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<StepCountPerBackwardAdam>(params, 0.01);
       }}};
  for (const auto& [name, factory] : broken) {
    const auto report = gacc::check_optimizer(name, factory, options);
    std::cout << report.table();
    CHECK(report.row("step").worst_ratio >= 10.0);
  }
}
