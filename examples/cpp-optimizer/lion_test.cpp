// gacc's checks on a user's own optimizer: Lion accumulates like the large batch; the variant that
// does its work in a gradient hook does not, and gacc says where and by how much.

#include <gacc/catch2.h>  // Catch2 (yours) and gacc::check_optimizer

#include <cmath>
#include <memory>
#include <vector>

#include "lion.h"

namespace {

std::unique_ptr<torch::optim::Optimizer> make_lion(std::vector<torch::Tensor> params) {
  return std::make_unique<Lion>(params, LionOptions(0.01).weight_decay(0.1));
}

std::unique_ptr<torch::optim::Optimizer> make_lion_in_backward(std::vector<torch::Tensor> params) {
  return std::make_unique<LionInBackward>(params, LionOptions(0.01).weight_decay(0.1));
}

gacc::OptimizerCheckOptions options() {
  gacc::OptimizerCheckOptions o;
  o.cases = 12;  // a CI-sized run; raise it for a thorough one
  o.seed = 2023;
  o.precisions = {"fp32", "bf16"};
  o.max_shrink_evaluations = 20;
  return o;
}

}  // namespace

TEST_CASE("Lion accumulates gradients like the large batch") {
  GACC_CHECK_OPTIMIZER("lion", make_lion, options());
}

TEST_CASE("Lion with its work in a gradient hook is caught under accumulation") {
  const auto report = gacc::check_optimizer("lion-in-backward", make_lion_in_backward, options());
  INFO(report.table());
  // The accumulated gradient is right: the loop is not what is broken.
  CHECK(report.row("gradient").verdict == gacc::CheckVerdict::pass);
  // The steps are not: each is compared with the same optimizer's large-batch step.
  const auto& step = report.row("step");
  REQUIRE(step.verdict == gacc::CheckVerdict::fail);
  CHECK(step.worst_ratio > 1.0);
  CHECK_FALSE(step.counterexample.empty());
  CHECK(step.reproduce.find("check_optimizer_on_scenario(\"lion-in-backward\"") != std::string::npos);
  // The shrunk counterexample reruns to the same failure.
  const auto rerun = gacc::check_optimizer_on_scenario("lion-in-backward", make_lion_in_backward, step.counterexample);
  CHECK(rerun.row("step").verdict == gacc::CheckVerdict::fail);
  // And the macro for "this must be caught":
  GACC_CHECK_OPTIMIZER_FAILS("lion-in-backward", make_lion_in_backward, options());
}
