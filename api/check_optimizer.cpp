#include "gacc/check_optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "core/errors.h"
#include "core/scenario.h"
#include "fixtures/fixtures.h"
#include "implementations/torch/autocast.h"
#include "implementations/torch/zoo_model.h"
#include "properties/compare.h"
#include "properties/generators.h"
#include "properties/runner.h"
#include "properties/shrinking.h"
#include "reference/bounded.h"
#include "reference/oracle.h"

// Note [optimizer tolerance]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// The oracle knows SGD, Adam and AdamW, not an optimizer handed over as a factory, so a custom
// optimizer is judged differentially: the accumulated run (K backward passes, then one step, in
// float32) against the same optimizer's large batch (the window as ONE backward pass, in float64).
//
// Teacher forcing. Step s is judged from the run's own parameters P_s and its own state, so that
// errors do not compound. LibTorch cannot copy an arbitrary optimizer's state into float64 (a
// param state's clone() shares its tensors and knows no dtype), so the twin REPLAYS it: a fresh
// optimizer from the factory over float64 parameters takes, for every earlier step j, the run's
// parameters P_j and the gradient g_j the run handed its optimizer, through one backward pass of
// the surrogate loss sum(p * g_j), whose gradient is g_j exactly; then step s. Its state is the
// run's as a large batch would have built it from the same inputs: one backward pass per window.
//
// The gradient. The oracle gives the large batch's gradient G at P_s (in double) and the bound b
// on the rounding error of the run's float32 gradient (reference/bounded.h: Note [tolerance];
// b = grad_tolerance / kToleranceMargin), so the run's gradient lies in [G - b, G + b]. The
// gradient check compares it with G under the oracle's tolerance.
//
// The step. Let T64(h) be the float64 twin's step at gradient h and T32(h) the same replay in
// float32, and x the run's parameters after its step. Then
//   x - T64(G) = [x - T32(g)] + [T32(g) - T64(g)] + [T64(g) - T64(G)]
// where g is the run's own gradient. The first term is what accumulation changed in the optimizer
// itself — the same float32 arithmetic on the same inputs, reached through K backward passes
// instead of one: zero for an optimizer that does not depend on how the window arrived, and the
// bug otherwise. The second is the optimizer's own float32 rounding at g (its state included),
// measured exactly by the same-precision large batch against the float64 one, as gacc bounds a
// model's forward and backward by its same-precision large batch. The third is the gradient's
// rounding pushed through the step: with |g - G| <= b per element, it lies within the spread
// max(|T64(G + b) - T64(G)|, |T64(G - b) - T64(G)|) — to first order and per element (exact for
// element-wise optimizers; one that couples elements, through a global norm say, is judged at the
// two coherent corners only). Where the step is discontinuous in the gradient within the bound —
// a sign-based optimizer such as Lion whose momentum interpolation is within rounding of zero —
// the spread is the jump, and the element is excused: both answers are right.
// The bound is spread + |T32(g) - T64(g)| + u |T64(G)| (u = 2^-24: the rounding of the stored
// result), and the tolerance is kToleranceMargin (2) times it: an optimizer that does not depend
// on the split stays at a ratio of about 0.5 or less.
//
// Where the oracle's bound is not finite (bf16 through a norm clip whose norm bound reaches the norm
// itself), nothing pins the step down and it is not judged.
//
// Structure. Parameters must not change during a window's backward passes (an optimizer stepping
// inside backward); after the one optimizer.step() of a window, the run's learning rates, number
// of param groups and number of state entries must equal the float64 twin's (state advanced or
// created per backward pass, a rate scheduled per backward pass); parameters must stay finite.

namespace gacc {

std::string to_string(CheckVerdict verdict) {
  switch (verdict) {
    case CheckVerdict::pass:
      return "pass";
    case CheckVerdict::fail:
      return "fail";
    case CheckVerdict::skip:
      return "skip";
  }
  return "?";
}

bool OptimizerCheckReport::passed() const {
  return std::none_of(rows.begin(), rows.end(), [](const auto& r) { return r.verdict == CheckVerdict::fail; });
}

const OptimizerCheckRow& OptimizerCheckReport::row(const std::string& check) const {
  for (const auto& r : rows) {
    if (r.check == check) return r;
  }
  throw std::out_of_range("gacc::OptimizerCheckReport: no check named \"" + check + "\"");
}

std::string OptimizerCheckReport::table() const {
  std::ostringstream out;
  out << "gacc check_optimizer: " << optimizer << " (seed " << seed << ", " << cases << " cases)\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-10s %-8s %6s  %12s  %8s  %14s\n", "check", "verdict", "cases", "worst ratio",
                "failing", "weakest fail");
  out << line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-10s %-8s %6d  %12s  %8d  %14s\n", r.check.c_str(), to_string(r.verdict).c_str(),
                  r.cases, properties::format_ratio(r.worst_ratio).c_str(), r.failing_cases,
                  r.failing_cases > 0 ? properties::format_ratio(r.weakest_failure_ratio).c_str() : "-");
    out << line;
  }
  for (const auto& r : rows) {
    if (r.verdict != CheckVerdict::fail) continue;
    out << "\n" << r.check << " FAILS: " << r.claim << "\n"
        << "  worst: " << r.worst_detail << "\n"
        << "  counterexample (case " << r.case_index << ", " << r.shrinks << " shrinks" << properties::shrink_budget_note(r.shrink_budget_ended) << ", ratio "
        << properties::format_ratio(r.counterexample_ratio) << "): " << r.counterexample_detail << "\n"
        << "  scenario: " << r.counterexample << "\n"
        << "  reproduce: " << r.reproduce << "\n";
  }
  out << (passed() ? "every check holds\n" : "some check fails\n");
  return out.str();
}

namespace {

using torch_recipes::ZooModel;

constexpr double kFloat32UnitRoundoff = 0x1p-24;

enum Check : size_t { kGradient, kStep, kStructure, kChecks };
constexpr std::array<const char*, kChecks> kCheckNames = {"gradient", "step", "structure"};
constexpr std::array<const char*, kChecks> kClaims = {
    "the accumulated gradient handed to the optimizer equals the large batch's (the oracle's, at the run's own "
    "parameters) within its rounding bound",
    "each optimizer step, from the run's own parameters and state, equals the same optimizer's large-batch step "
    "(float64, one backward pass per window) within the gradient bound pushed through the step",
    "backward passes leave the parameters alone; after each window's one optimizer.step() the learning rates, "
    "param groups and state entries are the large batch's; parameters stay finite"};

struct Finding {
  bool judged = false;
  double ratio = 0.0;
  std::string detail;
};
using CaseFindings = std::array<Finding, kChecks>;

void record(Finding& finding, double ratio, const std::string& detail) {
  if (std::isnan(ratio)) ratio = std::numeric_limits<double>::infinity();
  if (!finding.judged || ratio > finding.ratio) {
    finding.ratio = ratio;
    finding.detail = detail;
  }
  finding.judged = true;
}

void structural(Finding& finding, const std::string& detail) {
  record(finding, std::numeric_limits<double>::infinity(), detail);
}

/// What the run handed its optimizer at one step (float32 clones): what the twins replay.
struct StepInputs {
  std::vector<torch::Tensor> params;
  std::vector<torch::Tensor> grads;
};

struct TwinStep {
  std::vector<double> params;
  std::vector<double> lrs;  ///< NaN where the options do not implement get_lr()
  size_t groups = 0;
  size_t state_entries = 0;
};

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

std::vector<double> learning_rates(const torch::optim::Optimizer& optimizer) {
  std::vector<double> lrs;
  for (const auto& group : optimizer.param_groups()) {
    try {
      lrs.push_back(group.options().get_lr());
    } catch (const c10::Error&) {
      lrs.push_back(std::numeric_limits<double>::quiet_NaN());
    }
  }
  return lrs;
}

/// A factory that returns null: the caller's mistake, thrown out of check_optimizer rather than
/// judged as the optimizer's failure.
struct NullOptimizer : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

std::unique_ptr<torch::optim::Optimizer> make(const OptimizerFactory& factory, const std::string& name,
                                              const std::vector<torch::Tensor>& params) {
  auto optimizer = factory(params);
  if (!optimizer) throw NullOptimizer("gacc::check_optimizer: the factory of \"" + name + "\" returned null");
  return optimizer;
}

/// The twin in `dtype`: replays `history` (one surrogate backward pass per window), then takes the
/// step from `params_now` at the gradient `grad_now` (Note [optimizer tolerance]).
TwinStep twin_step(const OptimizerFactory& factory, const std::string& name, const std::vector<StepInputs>& history,
                   const std::vector<torch::Tensor>& params_now, const std::vector<torch::Tensor>& grad_now,
                   torch::Dtype dtype) {
  std::vector<torch::Tensor> twin;
  for (const auto& p : params_now) twin.push_back(torch::zeros(p.sizes(), torch::dtype(dtype)).requires_grad_(true));
  auto optimizer = make(factory, name, twin);
  for (size_t j = 0; j <= history.size(); ++j) {
    const auto& params = j < history.size() ? history[j].params : params_now;
    const auto& grads = j < history.size() ? history[j].grads : grad_now;
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < twin.size(); ++i) twin[i].copy_(params[i]);
    }
    optimizer->zero_grad();
    torch::Tensor surrogate = torch::zeros({}, torch::dtype(dtype));
    for (size_t i = 0; i < twin.size(); ++i) surrogate = surrogate + (twin[i] * grads[i].to(dtype)).sum();
    surrogate.backward();
    optimizer->step();
  }
  TwinStep out;
  out.params = torch_recipes::flatten(twin);
  out.lrs = learning_rates(*optimizer);
  out.groups = optimizer->param_groups().size();
  out.state_entries = optimizer->state().size();
  return out;
}

/// `flat` as tensors shaped like `like`, in `dtype`.
std::vector<torch::Tensor> unflatten(const std::vector<double>& flat, const std::vector<torch::Tensor>& like,
                                     torch::Dtype dtype) {
  std::vector<torch::Tensor> out;
  size_t offset = 0;
  for (const auto& t : like) {
    out.push_back(torch_recipes::tensor_from(flat.data() + offset, t.sizes().vec(), dtype));
    offset += static_cast<size_t>(t.numel());
  }
  return out;
}

double clip(const Scenario& scenario, const std::vector<torch::Tensor>& params) {
  switch (scenario.clipping.kind) {
    case ClippingKind::norm:
      return torch::nn::utils::clip_grad_norm_(params, scenario.clipping.max_norm);
    case ClippingKind::value:
      torch::nn::utils::clip_grad_value_(params, scenario.clipping.clip_value);
      return 0.0;
    case ClippingKind::none:
      break;
  }
  return 0.0;
}

std::string at_step(int step, const std::string& what) { return "step " + std::to_string(step) + ", " + what; }

/// Judges one step of the run: its parameters `after` against the twins (Note [optimizer tolerance]).
/// `exact`: the float64 twin at G, G - b, G + b and at the run's gradient g; `same_precision`: the
/// float32 twin at g.
void judge_step(Finding& finding, const fixtures::ModelLayout& layout, int step, const std::vector<double>& after,
                const std::array<TwinStep, 4>& exact, const TwinStep& same_precision,
                const std::vector<double>& grad_bound) {
  double worst = -1.0;
  std::string detail;
  for (size_t i = 0; i < after.size(); ++i) {
    const double center = exact[0].params[i];
    const double spread =
        std::max(std::fabs(exact[1].params[i] - center), std::fabs(exact[2].params[i] - center));
    const double rounding =
        std::fabs(same_precision.params[i] - exact[3].params[i]) + kFloat32UnitRoundoff * std::fabs(center);
    const double tolerance = reference::kToleranceMargin * (spread + rounding);
    double ratio = std::isfinite(center) ? properties::element_ratio(after[i], center, tolerance)
                                         : std::numeric_limits<double>::infinity();
    if (std::isnan(ratio)) ratio = std::numeric_limits<double>::infinity();
    if (ratio > worst) {
      worst = ratio;
      detail = at_step(step, layout.element_name(static_cast<int64_t>(i)) + ": observed " +
                                 properties::format_number(after[i]) + ", large batch " +
                                 properties::format_number(center) + " (float64 twin), |error| " +
                                 properties::format_number(std::fabs(after[i] - center)) + ", tolerance " +
                                 properties::format_number(tolerance) + " (gradient bound " +
                                 properties::format_number(grad_bound[i]) + " through the step: " +
                                 properties::format_number(spread) + "; the step's float32 rounding " +
                                 properties::format_number(rounding) + "), ratio " +
                                 properties::format_ratio(ratio));
    }
  }
  if (worst >= 0.0) record(finding, worst, detail);
}

void judge_structure(Finding& finding, int step, const torch::optim::Optimizer& optimizer,
                     const std::vector<double>& after, const TwinStep& twin) {
  for (size_t i = 0; i < after.size(); ++i) {
    if (!std::isfinite(after[i])) {
      return structural(finding, at_step(step, "a parameter is not finite after the step (element " +
                                                   std::to_string(i) + ": " + properties::format_number(after[i]) +
                                                   ")"));
    }
  }
  if (optimizer.param_groups().size() != twin.groups) {
    return structural(finding, at_step(step, std::to_string(optimizer.param_groups().size()) +
                                                 " param groups after the step, the large batch has " +
                                                 std::to_string(twin.groups)));
  }
  const auto lrs = learning_rates(optimizer);
  for (size_t g = 0; g < lrs.size() && g < twin.lrs.size(); ++g) {
    if (std::isnan(lrs[g]) && std::isnan(twin.lrs[g])) continue;
    if (!(lrs[g] == twin.lrs[g])) {
      return structural(finding, at_step(step, "param group " + std::to_string(g) + " has learning rate " +
                                                   properties::format_number(lrs[g]) +
                                                   " after the step, the large batch " +
                                                   properties::format_number(twin.lrs[g]) +
                                                   " (a rate scheduled per backward pass?)"));
    }
  }
  if (optimizer.state().size() != twin.state_entries) {
    return structural(finding, at_step(step, std::to_string(optimizer.state().size()) +
                                                 " optimizer state entries after the step, the large batch has " +
                                                 std::to_string(twin.state_entries)));
  }
  record(finding, 0.0, at_step(step, "structure as the large batch's"));
}

/// Trains `scenario` with the correct accumulation loop and the factory's optimizer, judging every
/// step. An exception from the optimizer or the twins is a structural failure of the case.
CaseFindings run_case(const std::string& name, const OptimizerFactory& factory, const Scenario& scenario) {
  CaseFindings findings;
  try {
    const reference::Oracle oracle(scenario, {/*high_precision=*/false});
    const auto& layout = oracle.layout();
    ZooModel model(scenario.model, torch::kFloat32, fixtures::initial_weights(scenario.model, scenario.precision));
    model->train();
    const auto& params = model->ordered_parameters();
    auto optimizer = make(factory, name, params);
    std::vector<StepInputs> history;
    for (int s = 0; s < scenario.steps; ++s) {
      StepInputs inputs;
      inputs.params = clones(params);
      const auto before = torch_recipes::flatten(params);
      const int micro_count = micro_batch_count(scenario, s);
      const int64_t window_elements = fixtures::window_loss_elements(scenario, s);
      for (int k = 0; k < micro_count; ++k) {
        const auto batch = torch_recipes::to_tensors(fixtures::micro_batch(scenario, s, 0, k), torch::kFloat32);
        torch::Tensor loss;
        {
          const torch_recipes::CpuAutocast autocast(scenario.precision);
          loss = torch_recipes::summed_loss(scenario, model->forward(batch.inputs), batch.targets);
          if (scenario.loss.reduction != Reduction::sum) loss = loss / static_cast<double>(window_elements);
        }
        loss.backward();
        for (size_t i = 0; i < params.size(); ++i) {
          if (!torch::equal(params[i].detach(), inputs.params[i])) {
            structural(findings[kStructure],
                       at_step(s, "micro-batch " + std::to_string(k) + " of " + std::to_string(micro_count) + ": " +
                                      layout.parameters[i].name +
                                      " changed during backward, before optimizer.step() (an optimizer stepping "
                                      "or decaying parameters inside backward, as optimizer-in-backward does)"));
            return findings;
          }
        }
      }
      for (const auto& p : params) {  // an mlp_routed expert no example reached: its zero gradient
        if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
      }
      clip(scenario, params);
      inputs.grads.clear();
      for (const auto& p : params) inputs.grads.push_back(p.grad().detach().clone());
      const auto grad = torch_recipes::flatten(inputs.grads);

      const auto& expected = oracle.window_from(s, before, {}, oracle.initial_buffers());
      const auto comparison = properties::compare(grad, expected.grad, expected.grad_tolerance);
      record(findings[kGradient], comparison.worst_ratio,
             at_step(s, layout.element_name(comparison.worst_index) + ": " + properties::describe(comparison)));

      optimizer->step();
      const auto after = torch_recipes::flatten(params);

      std::vector<double> bound(expected.grad_tolerance.size());
      for (size_t i = 0; i < bound.size(); ++i) bound[i] = expected.grad_tolerance[i] / reference::kToleranceMargin;
      // Where the oracle cannot bound the gradient (under bf16 through a norm clip whose norm bound
      // reaches the norm itself, say), no step is pinned down: the step is not judged there.
      const bool bounded =
          std::all_of(bound.begin(), bound.end(), [](double b) { return std::isfinite(b); }) &&
          std::all_of(expected.grad.begin(), expected.grad.end(), [](double g) { return std::isfinite(g); });
      const auto run_gradient = unflatten(grad, params, torch::kFloat32);
      std::array<TwinStep, 4> exact;  // at G, G - b, G + b, and the run's own gradient
      for (int e = 0; e < (bounded ? 3 : 1); ++e) {
        const double side = e == 0 ? 0.0 : (e == 1 ? -1.0 : 1.0);
        std::vector<double> at(expected.grad);
        for (size_t i = 0; i < at.size(); ++i) at[i] += side * bound[i];
        exact[e] = twin_step(factory, name, history, inputs.params, unflatten(at, params, torch::kFloat64),
                             torch::kFloat64);
      }
      if (bounded) {
        exact[3] = twin_step(factory, name, history, inputs.params, run_gradient, torch::kFloat64);
        const auto same_precision =
            twin_step(factory, name, history, inputs.params, run_gradient, torch::kFloat32);
        judge_step(findings[kStep], layout, s, after, exact, same_precision, bound);
      }
      judge_structure(findings[kStructure], s, *optimizer, after, exact[0]);
      if (!(findings[kStructure].ratio < 1.0)) break;  // later steps would start from a broken state
      optimizer->zero_grad();
      history.push_back(std::move(inputs));
    }
  } catch (const NullOptimizer&) {
    throw;
  } catch (const std::exception& e) {
    structural(findings[kStructure], std::string("the optimizer or its run threw: ") + e.what());
  }
  return findings;
}

std::vector<Architecture> architectures(const std::vector<std::string>& names) {
  const std::vector<Architecture> offered = {Architecture::linear,         Architecture::mlp_tanh,
                                             Architecture::mlp_gelu,       Architecture::mlp_layer_norm,
                                             Architecture::mlp_group_norm, Architecture::mlp_rms_norm,
                                             Architecture::mlp_routed,     Architecture::causal_lm};
  if (names.empty()) return offered;
  std::vector<Architecture> chosen;
  for (const auto& name : names) {
    const auto it = std::find_if(offered.begin(), offered.end(), [&](Architecture a) { return to_string(a) == name; });
    if (it == offered.end()) {
      std::string known;
      for (const auto a : offered) known += (known.empty() ? "" : ", ") + to_string(a);
      throw std::invalid_argument("gacc::check_optimizer: unknown model \"" + name + "\" (known: " + known + ")");
    }
    chosen.push_back(*it);
  }
  return chosen;
}

std::vector<Precision> precisions(const std::vector<std::string>& names) {
  if (names.empty()) throw std::invalid_argument("gacc::check_optimizer: no precision given (fp32, bf16)");
  std::vector<Precision> chosen;
  for (const auto& name : names) {
    if (name == "fp32") {
      chosen.push_back(Precision::fp32);
    } else if (name == "bf16") {
      chosen.push_back(Precision::bf16);
    } else {
      throw std::invalid_argument("gacc::check_optimizer: unknown precision \"" + name + "\" (fp32, bf16)");
    }
  }
  return chosen;
}

/// The oracle is asked for gradients only: its own optimizer is plain SGD (no state) at a
/// constant rate; the optimizer judged is the factory's.
Scenario for_gradients_only(Scenario scenario) {
  scenario.optimizer = OptimizerSpec{};
  scenario.schedule = ScheduleSpec{};
  return scenario;
}

std::string reproduce_line(const std::string& name, const Scenario& scenario) {
  return "gacc::check_optimizer_on_scenario(\"" + name + "\", factory, R\"gacc(" + to_json_text(scenario) +
         ")gacc\")";
}

OptimizerCheckReport make_report(const std::string& name, uint64_t seed, int cases) {
  OptimizerCheckReport report;
  report.optimizer = name;
  report.seed = seed;
  report.cases = cases;
  for (size_t c = 0; c < kChecks; ++c) {
    OptimizerCheckRow row;
    row.check = kCheckNames[c];
    row.claim = kClaims[c];
    report.rows.push_back(row);
  }
  return report;
}

/// Records one case's finding through the property loop's accumulator (properties::add_case) and
/// shows the tally in the public row. A finding the case did not judge is not a case of the row.
void add_case(OptimizerCheckRow& row, properties::ResultRow& tally, const Finding& finding, int case_index) {
  if (!finding.judged) return;
  properties::CaseVerdict verdict;
  verdict.ratio = finding.ratio;
  verdict.detail = finding.detail;
  verdict.checks = 1;
  properties::add_case(tally, verdict, case_index);
  row.verdict = tally.verdict == properties::Verdict::fail ? CheckVerdict::fail : CheckVerdict::pass;
  row.cases = tally.cases;
  row.worst_ratio = tally.worst_ratio;
  row.worst_detail = tally.worst_detail;
  row.failing_cases = tally.unexpected_failures;
  row.weakest_failure_ratio = tally.weakest_failure_ratio;
}

}  // namespace

OptimizerCheckReport check_optimizer(const std::string& name, const OptimizerFactory& factory,
                                     const OptimizerCheckOptions& options) {
  if (!factory) throw std::invalid_argument("gacc::check_optimizer: an empty factory for \"" + name + "\"");
  if (options.cases < 1) {
    throw std::invalid_argument("gacc::check_optimizer: cases must be at least 1, got " +
                                std::to_string(options.cases));
  }
  if (options.max_shrink_evaluations < 0) {
    throw std::invalid_argument("gacc::check_optimizer: max_shrink_evaluations must not be negative, got " +
                                std::to_string(options.max_shrink_evaluations));
  }
  properties::GeneratorRange range;
  range.architectures = architectures(options.models);
  range.optimizers = {OptimizerKind::sgd};
  range.schedules = false;
  range.clipping = options.clipping;
  range.precisions = precisions(options.precisions);
  range.max_world = 1;
  // Stratified (Note [coverage]): the first cases cover every model x reduction x precision asked for.
  const auto cells = properties::stratified(range, options.seed);
  const properties::CaseGenerator generator = [&cells](int index) {
    return rc::gen::map(cells(index), &for_gradients_only);
  };

  auto report = make_report(name, options.seed, options.cases);
  std::array<std::optional<rc::Shrinkable<Scenario>>, kChecks> failures;
  std::array<Finding, kChecks> failure_findings;
  std::array<properties::ResultRow, kChecks> tallies;
  for (int i = 0; i < options.cases; ++i) {
    const auto shrinkable = properties::generated_case(generator, options.seed, i);
    const auto findings = run_case(name, factory, shrinkable.value());
    for (size_t c = 0; c < kChecks; ++c) {
      add_case(report.rows[c], tallies[c], findings[c], i);
      if (findings[c].judged && !(findings[c].ratio < 1.0) && !failures[c]) {
        failures[c] = shrinkable;
        failure_findings[c] = findings[c];
        report.rows[c].case_index = i;
      }
    }
  }
  for (size_t c = 0; c < kChecks; ++c) {
    if (!failures[c]) continue;
    auto& row = report.rows[c];
    // Note [shrinking]
    const auto shrunk = properties::shrink_greedily(
        *failures[c], failure_findings[c], options.max_shrink_evaluations, properties::ShrinkTreeCandidates{},
        [&](const rc::Shrinkable<Scenario>& candidate) -> properties::ShrinkAttempt<Finding> {
          const auto findings = run_case(name, factory, candidate.value());
          if (findings[c].judged && !(findings[c].ratio < 1.0)) return {true, findings[c]};
          return {true, std::nullopt};
        });
    const rc::Shrinkable<Scenario>& current = shrunk.point;
    const Finding& best = shrunk.finding;
    row.shrinks = shrunk.accepted;
    row.shrink_budget_ended = shrunk.budget_ended;
    row.counterexample = to_json_text(current.value());
    row.counterexample_ratio = best.ratio;
    row.counterexample_detail = best.detail;
    row.reproduce = reproduce_line(name, current.value());
  }
  return report;
}

OptimizerCheckReport check_optimizer_on_scenario(const std::string& name, const OptimizerFactory& factory,
                                                 const std::string& scenario_json) {
  if (!factory) throw std::invalid_argument("gacc::check_optimizer: an empty factory for \"" + name + "\"");
  Scenario scenario;
  try {
    scenario = for_gradients_only(parse_scenario(scenario_json));
    validate(scenario);
  } catch (const Error& e) {
    throw std::invalid_argument(std::string("gacc::check_optimizer_on_scenario: ") + e.what());
  }
  if (scenario.world_size != 1 || scenario.precision == Precision::fp16 ||
      scenario.model.arch == Architecture::mlp_batch_norm) {
    throw std::invalid_argument(
        "gacc::check_optimizer_on_scenario: one rank, fp32 or bf16, and no BatchNorm are supported (world_size " +
        std::to_string(scenario.world_size) + ", precision " + to_string(scenario.precision) + ", model " +
        to_string(scenario.model.arch) + ")");
  }
  auto report = make_report(name, 0, 1);
  const auto findings = run_case(name, factory, scenario);
  for (size_t c = 0; c < kChecks; ++c) {
    auto& row = report.rows[c];
    properties::ResultRow tally;
    add_case(row, tally, findings[c], -1);
    if (row.verdict == CheckVerdict::fail) {
      row.case_index = 0;
      row.counterexample = to_json_text(scenario);
      row.counterexample_ratio = findings[c].ratio;
      row.counterexample_detail = findings[c].detail;
      row.reproduce = reproduce_line(name, scenario);
    }
  }
  return report;
}

}  // namespace gacc
