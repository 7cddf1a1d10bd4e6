#pragma once
/// gacc for out-of-tree optimizers: run gacc's gradient-accumulation checks against any
/// torch::optim::Optimizer, from your own tests (docs/custom-optimizers.md).
///
///   auto report = gacc::check_optimizer("lion", [](std::vector<torch::Tensor> params) {
///     return std::make_unique<MyLion>(params, MyLionOptions(1e-3));
///   });
///   std::cout << report.table();   // or GACC_CHECK_OPTIMIZER(...) from <gacc/catch2.h>
///
/// gacc generates scenarios from its model zoo (model, data, how each window is cut into K
/// micro-batches, loss, clipping, precision), trains each with the correct accumulation loop and
/// an optimizer from the factory, and judges it DIFFERENTIALLY: every step, taken from the run's own
/// parameters and state, against the same optimizer's large-batch step in float64 (each window as
/// one backward pass), within the run's gradient rounding bound pushed through that step
/// (Note [optimizer tolerance] in api/check_optimizer.cpp). It sees what changes when a window
/// arrives as K backward passes instead of one: state advanced per backward pass, updates scaled
/// by the number of passes, parameters touched inside backward. It does not know what your
/// optimizer should compute: a formula that is wrong the same way at any K passes.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gacc {

/// Makes a fresh optimizer over `parameters` (called once per run, and for every float64 twin:
/// the optimizer must work on float32 and float64 parameters alike).
using OptimizerFactory =
    std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor> parameters)>;

enum class CheckVerdict {
  pass,  ///< held on every case
  fail,  ///< failed on some case
  skip,  ///< judged on no case
};

std::string to_string(CheckVerdict verdict);

struct OptimizerCheckOptions {
  /// Generated scenarios (each one accumulated run and its twins).
  int cases = 20;
  /// Seeds the scenario generator: the same seed gives the same scenarios and the same report.
  uint64_t seed = 1;
  /// Zoo models to draw from, by name: linear, mlp_tanh, mlp_gelu, mlp_layer_norm, mlp_group_norm,
  /// mlp_rms_norm, mlp_routed, causal_lm. Empty: all of them. (mlp_batch_norm is not offered: its
  /// accumulation is not equivalent to the large batch whatever the optimizer.)
  std::vector<std::string> models;
  /// Precision policies: "fp32", "bf16" (CPU autocast; fp32 parameters, gradients and optimizer).
  std::vector<std::string> precisions = {"fp32"};
  /// Whether the loop also clips (by global norm or value) after the window, before the step.
  bool clipping = true;
  /// Reruns allowed to shrink a failing case to a smaller one.
  int max_shrink_evaluations = 40;
};

/// One check on every case.
struct OptimizerCheckRow {
  std::string check;  ///< "gradient", "step", "structure"
  std::string claim;  ///< what must hold, in one sentence
  CheckVerdict verdict = CheckVerdict::skip;
  int cases = 0;
  /// Worst observed error / derived tolerance over every case; < 1 holds; +inf for a structural
  /// failure (parameters changed inside backward, an exception, a non-finite value).
  double worst_ratio = 0.0;
  std::string worst_detail;  ///< where the worst ratio was: step, element, values, tolerance
  int failing_cases = 0;     ///< cases in which the check failed
  /// The smallest ratio among the failing cases (how narrowly the weakest failure shows); 0 when
  /// none failed.
  double weakest_failure_ratio = 0.0;
  /// The failing case, shrunk: its scenario JSON, ratio and detail (empty when the row passes).
  std::string counterexample;
  double counterexample_ratio = 0.0;
  std::string counterexample_detail;
  int case_index = -1;  ///< the generated case it was shrunk from
  int shrinks = 0;
  bool shrink_budget_ended = false;  ///< shrinking stopped at its budget: a smaller one may exist
  /// A line of C++ that reruns the counterexample (empty when the row passes).
  std::string reproduce;
};

struct OptimizerCheckReport {
  std::string optimizer;
  uint64_t seed = 0;
  int cases = 0;
  std::vector<OptimizerCheckRow> rows;

  /// Whether no row failed.
  bool passed() const;
  /// The row of a check; throws std::out_of_range for an unknown name.
  const OptimizerCheckRow& row(const std::string& check) const;
  /// The table: one line per check, then each failure's detail, counterexample and reproduce line.
  std::string table() const;
};

/// Runs every check on `options.cases` generated scenarios. Throws std::invalid_argument on bad
/// options (the message names the value) or when the factory returns null.
OptimizerCheckReport check_optimizer(const std::string& name, const OptimizerFactory& factory,
                                     const OptimizerCheckOptions& options = {});

/// Runs every check on one scenario (its JSON text, as a report's counterexample prints it), without
/// generation or shrinking: what a reproduce line calls. Throws std::invalid_argument on a scenario
/// that is malformed or outside what the check supports.
OptimizerCheckReport check_optimizer_on_scenario(const std::string& name, const OptimizerFactory& factory,
                                                 const std::string& scenario_json);

}  // namespace gacc
