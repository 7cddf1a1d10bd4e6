#include "properties/differential.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "core/errors.h"
#include "core/floating_point.h"
#include "core/json_reader.h"
#include "core/signatures.h"
#include "properties/compare.h"
#include "properties/shrinking.h"
#include "reference/bounded.h"

namespace gacc::properties {

// ---- the generator -------------------------------------------------------------------------

Splits generate_splits(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto draw = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Splits splits;
  const int k = draw(1, kMaxDifferentialK);
  const int steps = draw(1, kMaxDifferentialSteps);
  const int batch = draw(k, k * kMaxDifferentialMicroSize);
  const bool partial = draw(0, 2) == 0;
  splits.global_batch = batch;
  splits.accumulation_steps = k;
  int64_t next = 0;
  for (int s = 0; s < steps; ++s) {
    // A composition of the batch into k positive sizes: k - 1 distinct cuts among 1..batch-1.
    std::vector<int> cuts(static_cast<size_t>(batch - 1));
    for (int i = 0; i < batch - 1; ++i) cuts[static_cast<size_t>(i)] = i + 1;
    std::shuffle(cuts.begin(), cuts.end(), rng);
    cuts.resize(static_cast<size_t>(k - 1));
    cuts.push_back(0);
    cuts.push_back(batch);
    std::sort(cuts.begin(), cuts.end());
    std::vector<int> sizes;
    for (size_t i = 1; i < cuts.size(); ++i) sizes.push_back(cuts[i] - cuts[i - 1]);
    if (partial && s == steps - 1) {
      if (k > 1) {
        sizes.resize(static_cast<size_t>(draw(1, k - 1)));
      } else if (batch > 1) {
        sizes[0] = draw(1, batch - 1);
      }
    }
    auto& window = splits.windows.emplace_back();
    for (const int size : sizes) {
      auto& micro = window.emplace_back();
      for (int i = 0; i < size; ++i) micro.push_back(next++);
    }
  }
  splits.seed = rng() & 0x7fffffffu;
  return splits;
}

Splits generated_splits(uint64_t seed, int index) { return generate_splits(case_seed(seed, index)); }

std::vector<Splits> shrink_candidates(const Splits& splits) {
  std::vector<Splits> out;
  const auto with_global_batch = [](Splits s) {
    int64_t largest = 1;
    for (const auto& window : s.windows) {
      int64_t examples = 0;
      for (const auto& micro : window) examples += static_cast<int64_t>(micro.size());
      largest = std::max(largest, examples);
    }
    s.global_batch = largest;
    return s;
  };
  const int steps = splits.steps();
  if (steps > 1) {
    Splits last = splits;  // the last step dropped
    last.windows.pop_back();
    out.push_back(with_global_batch(last));
    Splits first = splits;  // the first dropped
    first.windows.erase(first.windows.begin());
    out.push_back(with_global_batch(first));
  }
  const auto k = static_cast<size_t>(splits.accumulation_steps);
  // K - 1: in every window that holds them, micro-batches m and m + 1 merged, or m dropped (a
  // partial last window holding m or fewer keeps its own).
  for (size_t m = 0; m + 1 < k; ++m) {
    Splits merged = splits;
    merged.accumulation_steps -= 1;
    for (auto& w : merged.windows) {
      if (w.size() <= m + 1) continue;
      w[m].insert(w[m].end(), w[m + 1].begin(), w[m + 1].end());
      w.erase(w.begin() + static_cast<std::ptrdiff_t>(m + 1));
    }
    out.push_back(with_global_batch(merged));
  }
  for (size_t m = 0; k > 1 && m < k; ++m) {
    Splits dropped = splits;
    dropped.accumulation_steps -= 1;
    for (auto& w : dropped.windows) {
      if (w.size() > m && w.size() > 1) w.erase(w.begin() + static_cast<std::ptrdiff_t>(m));
    }
    out.push_back(with_global_batch(dropped));
  }
  // A shorter last window.
  const auto& tail = splits.windows.back();
  for (size_t m = 0; tail.size() > 1 && m < tail.size(); ++m) {
    Splits shorter = splits;
    auto& w = shorter.windows.back();
    w.erase(w.begin() + static_cast<std::ptrdiff_t>(m));
    out.push_back(with_global_batch(shorter));
  }
  for (int s = 0; s < steps; ++s) {
    const auto& window = splits.windows[static_cast<size_t>(s)];
    for (size_t m = 0; m < window.size(); ++m) {  // one example fewer
      if (window[m].size() < 2) continue;
      Splits fewer = splits;
      fewer.windows[static_cast<size_t>(s)][m].pop_back();
      out.push_back(with_global_batch(fewer));
    }
  }
  return out;
}

// ---- judging -------------------------------------------------------------------------------

namespace {

/// Unit roundoffs of float64 and float32; noise measured in float32 is scaled to float64 by their
/// ratio, 2^-29.
constexpr double kU64 = 0x1p-53;
constexpr double kU32 = 0x1p-24;
constexpr double kNoiseScale = kU64 / kU32;
/// The float32 variant must agree with the float64 one within this fraction of the quantity's
/// scale to count as rounding noise (float32 rounding is 2^-24; 2^14 of headroom for cancellation).
constexpr double kProbeFraction = 0x1p-10;

std::string number_text(double x) {
  std::ostringstream out;
  out.precision(6);
  out << x;
  return out.str();
}

std::string index_text(const std::vector<int64_t>& shape, size_t flat) {
  if (shape.empty()) return "";
  std::vector<int64_t> index(shape.size());
  auto rest = static_cast<int64_t>(flat);
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] > 0 ? rest % shape[d] : 0;
    rest = shape[d] > 0 ? rest / shape[d] : 0;
  }
  std::string out = "[";
  for (size_t d = 0; d < index.size(); ++d) out += (d ? ", " : "") + std::to_string(index[d]);
  return out + "]";
}

/// The worst of one check over a case.
struct Worst {
  double ratio = 0.0;
  std::string detail = "nothing compared";
  void offer(double r, const std::function<std::string()>& describe) {
    if (std::isnan(r)) r = std::numeric_limits<double>::infinity();
    if (r > ratio || detail == "nothing compared") {
      ratio = r;
      detail = describe();
    }
  }
};

/// max_i |fp32_i - lb_i| over a tensor (infinite if either is not finite).
double measured_noise(const std::vector<double>& fp32, const std::vector<double>& lb) {
  double noise = 0.0;
  for (size_t i = 0; i < lb.size(); ++i) {
    const double d = std::fabs(fp32[i] - lb[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    noise = std::max(noise, d);
  }
  return noise;
}

/// Judges accumulated against large_batch over one tensor (or a loss: one element) of step `s`.
void judge_tensor(Worst& worst, const std::string& what, const std::string& noise_of, int s, int k,
                  const std::vector<int64_t>& shape, const std::vector<double>& acc, const std::vector<double>& lb,
                  double noise32) {
  const double noise64 = kNoiseScale * noise32;
  for (size_t i = 0; i < acc.size(); ++i) {
    const double error = std::fabs(acc[i] - lb[i]);
    const double summation = (k + 1) * kU64 * (std::fabs(acc[i]) + std::fabs(lb[i]));
    const double tolerance = reference::kToleranceMargin * (2.0 * noise64 + summation);
    double ratio;
    if (!std::isfinite(acc[i]) || !std::isfinite(lb[i]) || !std::isfinite(noise64)) {
      ratio = std::numeric_limits<double>::infinity();
    } else if (tolerance == 0.0) {
      ratio = error == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
    } else {
      ratio = error / tolerance;
    }
    worst.offer(ratio, [&] {
      std::ostringstream out;
      out.precision(17);
      out << "step " << s << " " << what << index_text(shape, i) << ": accumulated " << acc[i] << ", large batch "
          << lb[i];
      out.precision(3);
      out << ", error " << error << ", tolerance " << tolerance << " = " << reference::kToleranceMargin
          << " x (2 x noise64 " << noise64 << " + (K+1 = " << (k + 1) << ") u64 (|acc| + |lb|) " << summation
          << "); noise64 = 2^-29 x " << noise32 << " = max |large_batch_fp32 - large_batch| over " << noise_of;
      return out.str();
    });
  }
}

/// The probe: the float32 variant within 2^-10 of the quantity's scale at each step.
void probe(Worst& worst, const std::string& what, int s, const std::vector<const std::vector<double>*>& lb,
           const std::vector<const std::vector<double>*>& fp32) {
  double noise = 0.0, scale = 0.0;
  for (size_t t = 0; t < lb.size(); ++t) {
    noise = std::max(noise, measured_noise(*fp32[t], *lb[t]));
    for (const double v : *lb[t]) scale = std::max(scale, std::fabs(v));
  }
  const double limit = kProbeFraction * scale;
  const double ratio = noise == 0.0 ? 0.0 : limit > 0.0 ? noise / limit : std::numeric_limits<double>::infinity();
  worst.offer(ratio, [&] {
    return "step " + std::to_string(s) + " " + what + ": max |large_batch_fp32 - large_batch| " + number_text(noise) +
           ", limit 2^-10 x max |large_batch| " + number_text(scale) + " = " + number_text(limit) +
           (ratio < 1.0 ? "" : " — the float32 run is not the float64 run's rounding noise, so it cannot "
                               "calibrate the tolerances");
  });
}

}  // namespace

std::vector<std::string> differential_check_names() {
  return {"differential-gradients", "differential-losses", "differential-params", "differential-counters",
          "differential-fp32-probe"};
}

namespace {

/// What to do when the float64 runs are not float64 inside (the premise of differential mode).
constexpr const char* kFloat64Fix =
    ": differential mode measures float32 rounding against float64 runs, so the float64 runs must compute "
    "in float64 throughout. Build the model and its data in float64 (model.double(), float64 inputs) and "
    "look for layers that cast to float32 inside whatever the input dtype (Hugging Face Llama's RMSNorm, "
    "rotary embeddings, softmax and logits do: patch them to keep the input dtype for this check)";

/// Refuses a result whose float64 runs are float32 computations in disguise (InputError, exit 3):
/// every value of both is a float32 number, or at some step the float32 large batch equals the
/// float64 one exactly while the accumulated run differs from it (a noise of 0 would collapse every
/// tolerance and flag a correct stack).
void check_float64_premise(const DifferentialResult& result) {
  int64_t values = 0, float32_values = 0;
  const auto count = [&](double v) {
    if (v == 0.0 || !std::isfinite(v)) return;
    ++values;
    float32_values += representable(kFp32, v);
  };
  for (const auto* run : {&result.accumulated, &result.large_batch}) {
    for (const auto& step : *run) {
      count(step.loss);
      for (const auto* tensors : {&step.grad, &step.params_after}) {
        for (const auto& t : *tensors) {
          for (double v : t.values) count(v);
        }
      }
    }
  }
  // A float64 computation lands on a float32 number with probability 2^-29 per value.
  if (values >= 8 && float32_values == values) {
    throw InputError("result: every one of the " + std::to_string(values) +
                     " nonzero values of the accumulated and large_batch runs is a float32 number: they were "
                     "computed in float32, not float64" + std::string(kFloat64Fix));
  }
  const auto compared = std::min(result.accumulated.size(), result.large_batch.size());
  for (size_t s = 0; s < compared; ++s) {
    const auto& acc = result.accumulated[s];
    const auto& lb = result.large_batch[s];
    const auto& fp32 = result.large_batch_fp32[s];
    double noise = 0.0, difference = 0.0;
    for (size_t t = 0; t < result.names.size(); ++t) {
      noise = std::max(noise, measured_noise(fp32.grad[t].values, lb.grad[t].values));
      difference = std::max(difference, measured_noise(acc.grad[t].values, lb.grad[t].values));
    }
    if (noise == 0.0 && difference > 0.0) {
      throw InputError("result: at step " + std::to_string(s) +
                       " the large_batch_fp32 gradient equals the float64 large_batch's exactly (a measured noise "
                       "of 0) while the accumulated gradient differs from it by " + number_text(difference) +
                       ": the float64 large batch was computed in float32" + std::string(kFloat64Fix));
    }
    // The loss alone can be cast (a loss function that takes float32 logits: transformers'
    // ForCausalLMLoss calls logits.float()).
    if (fp32.loss == lb.loss && acc.loss != lb.loss && std::isfinite(acc.loss) && representable(kFp32, lb.loss)) {
      throw InputError("result: at step " + std::to_string(s) +
                       " the large_batch_fp32 loss equals the float64 large_batch's exactly (a measured noise of 0) "
                       "while the accumulated loss differs from it by " + number_text(std::fabs(acc.loss - lb.loss)) +
                       ": the float64 loss was computed in float32 (a loss function that casts its inputs: "
                       "transformers' ForCausalLMLoss calls logits.float())" + std::string(kFloat64Fix));
    }
  }
}

/// The signature of a failing accumulated run (Note [diagnosis], core/signatures.h): a step count
/// that is not the windows', or the first window's gradient K or 1/K times the large batch's
/// (within twice the tolerance the gradient was judged by, scaled as the hypothesis is); empty when
/// none fits.
std::string diagnose_differential(const Splits& splits, const DifferentialResult& result) {
  if (auto s = step_count_signature(static_cast<int64_t>(result.accumulated.size()), splits.steps()); !s.empty()) {
    return s;
  }
  const auto& acc = result.accumulated.front();
  const auto& lb = result.large_batch.front();
  const auto& fp32 = result.large_batch_fp32.front();
  const int k = static_cast<int>(splits.windows.front().size());
  double noise32 = 0.0;
  for (size_t t = 0; t < result.names.size(); ++t) {
    noise32 = std::max(noise32, measured_noise(fp32.grad[t].values, lb.grad[t].values));
  }
  const double noise64 = kNoiseScale * noise32;
  for (const auto& [factor, text] : gradient_factor_signatures(k, 1)) {
    bool fits = true;
    for (size_t t = 0; fits && t < result.names.size(); ++t) {
      for (size_t i = 0; fits && i < lb.grad[t].values.size(); ++i) {
        const double hypothesis = factor * lb.grad[t].values[i], observed = acc.grad[t].values[i];
        const double summation = (k + 1) * kU64 * (std::fabs(observed) + std::fabs(hypothesis));
        const double tolerance = 2.0 * reference::kToleranceMargin * (2.0 * noise64 * factor + summation);
        fits = std::fabs(observed - hypothesis) <= tolerance;
      }
    }
    if (fits) return "the gradient is " + text;
  }
  return {};
}

}  // namespace

std::vector<DifferentialCheck> judge_differential(const Splits& splits, const DifferentialResult& result) {
  const int steps = splits.steps();
  if (static_cast<int>(result.large_batch.size()) != steps || static_cast<int>(result.large_batch_fp32.size()) != steps) {
    throw InputError("result: the large batch runs hold " + std::to_string(result.large_batch.size()) + " and " +
                     std::to_string(result.large_batch_fp32.size()) + " steps for " + std::to_string(steps) +
                     " windows");
  }
  check_float64_premise(result);
  // A step count that is not the windows' is a verdict (the counters check), judged on the steps
  // that exist: the first min(steps, reported) are compared.
  const int reported = static_cast<int>(result.accumulated.size());
  const int compared = std::min(steps, reported);
  Worst grads, losses, params, noise;
  for (int s = 0; s < steps; ++s) {
    const auto& lb = result.large_batch[static_cast<size_t>(s)];
    const auto& fp32 = result.large_batch_fp32[static_cast<size_t>(s)];
    std::vector<const std::vector<double>*> lb_grads, fp32_grads, lb_params, fp32_params;
    for (size_t t = 0; t < result.names.size(); ++t) {
      lb_grads.push_back(&lb.grad[t].values);
      fp32_grads.push_back(&fp32.grad[t].values);
      lb_params.push_back(&lb.params_after[t].values);
      fp32_params.push_back(&fp32.params_after[t].values);
    }
    const std::vector<double> lb_loss{lb.loss}, fp32_loss{fp32.loss};
    probe(noise, "grad", s, lb_grads, fp32_grads);
    probe(noise, "params_after", s, lb_params, fp32_params);
    probe(noise, "loss", s, {&lb_loss}, {&fp32_loss});
  }
  for (int s = 0; s < compared; ++s) {
    const auto& acc = result.accumulated[static_cast<size_t>(s)];
    const auto& lb = result.large_batch[static_cast<size_t>(s)];
    const auto& fp32 = result.large_batch_fp32[static_cast<size_t>(s)];
    const int k = static_cast<int>(splits.windows[static_cast<size_t>(s)].size());
    // The noise is measured over the step's whole gradient (and whole parameters): one backward
    // pass computes every parameter's gradient, and a maximum over all of them is a steadier
    // estimate of its rounding than one over a tensor of a few elements (a bias).
    double grad_noise = 0.0, params_noise = 0.0;
    for (size_t t = 0; t < result.names.size(); ++t) {
      grad_noise = std::max(grad_noise, measured_noise(fp32.grad[t].values, lb.grad[t].values));
      params_noise = std::max(params_noise, measured_noise(fp32.params_after[t].values, lb.params_after[t].values));
    }
    for (size_t t = 0; t < result.names.size(); ++t) {
      const std::string& name = result.names[t];
      judge_tensor(grads, "grad" + quoted_entry(name), "the step's grad", s, k, acc.grad[t].shape,
                   acc.grad[t].values, lb.grad[t].values, grad_noise);
      judge_tensor(params, "params_after" + quoted_entry(name), "the step's params_after", s, k,
                   acc.params_after[t].shape, acc.params_after[t].values, lb.params_after[t].values,
                   params_noise);
    }
    const std::vector<double> acc_loss{acc.loss}, lb_loss{lb.loss}, fp32_loss{fp32.loss};
    judge_tensor(losses, "loss", "the loss", s, k, {}, acc_loss, lb_loss, measured_noise(fp32_loss, lb_loss));
  }

  // Counters: one optimizer step per window, every micro-batch once, gradients zeroed once per
  // window (a zero_grad before the first window too is fine).
  std::vector<std::string> problems;
  if (reported != steps) {
    problems.push_back("steps in the accumulated run: " + std::to_string(reported) + " over " + std::to_string(steps) +
                       " windows (the first " + std::to_string(compared) + " compared)");
  }
  const auto& c = result.counters;
  if (c.optimizer_steps != steps) {
    problems.push_back("optimizer.step() calls: " + std::to_string(c.optimizer_steps) + " over " +
                       std::to_string(steps) + " windows; one per window makes " + std::to_string(steps));
  }
  if (c.micro_batches != splits.micro_batches()) {
    problems.push_back("micro-batches: " + std::to_string(c.micro_batches) + ", but the case holds " +
                       std::to_string(splits.micro_batches()));
  }
  if (c.zero_grads != steps && c.zero_grads != steps + 1) {
    problems.push_back("zero_grad() calls: " + std::to_string(c.zero_grads) + " over " + std::to_string(steps) +
                       " windows; once per window makes " + std::to_string(steps) + " (or " +
                       std::to_string(steps + 1) + " with one before the first)");
  }
  std::string counters_detail;
  for (const auto& p : problems) counters_detail += (counters_detail.empty() ? "" : "; ") + p;
  if (problems.empty()) {
    counters_detail = std::to_string(c.optimizer_steps) + " optimizer steps, " + std::to_string(c.micro_batches) +
                      " micro-batches, " + std::to_string(c.zero_grads) + " zero_grad() calls over " +
                      std::to_string(steps) + " windows";
  }

  const auto names = differential_check_names();
  std::vector<DifferentialCheck> checks = {
      {names[0], "the accumulated gradient handed to the optimizer equals the large batch's", grads.ratio,
       grads.detail},
      {names[1], "the accumulated window loss equals the large batch's", losses.ratio, losses.detail},
      {names[2], "the parameters after each accumulated step equal the large batch's", params.ratio, params.detail},
      {names[3], "one optimizer step and one zero_grad per window, every micro-batch once",
       problems.empty() ? 0.0 : std::numeric_limits<double>::infinity(), counters_detail},
      {names[4], "the float32 large batch differs from the float64 one by rounding noise only", noise.ratio,
       noise.detail},
  };
  if (any_failed(checks) && !checks[4].failed()) {
    const std::string diagnosis = diagnose_differential(splits, result);
    for (size_t i = 0; i < 4; ++i) {
      if (checks[i].failed()) checks[i].diagnosis = diagnosis;
    }
  }
  return checks;
}

bool any_failed(const std::vector<DifferentialCheck>& checks) {
  return std::any_of(checks.begin(), checks.end(), [](const DifferentialCheck& c) { return c.failed(); });
}

// ---- the loop ------------------------------------------------------------------------------

namespace {

/// The report rows of differential mode, one per check, for `recipe` (none judged yet).
RunReport differential_report(const std::string& recipe, uint64_t seed, int cases) {
  RunReport report;
  report.seed = seed;
  report.cases = cases;
  for (const auto& name : differential_check_names()) {
    ResultRow row;
    row.property = name;
    row.recipe = recipe;
    row.kind = RecipeKind::correct;
    row.verdict = Verdict::skip;
    report.rows.push_back(row);
  }
  return report;
}

/// Adds one judged case to the report's rows (in differential_check_names' order), and to its
/// case_verdicts where the report records them.
void add_differential_case(RunReport& report, const std::vector<DifferentialCheck>& checks, int index,
                           bool label_case) {
  CaseVerdicts* recorded = nullptr;
  if (report.records_case_verdicts) {
    recorded = &report.case_verdicts.emplace_back();
    recorded->index = index;
  }
  double worst = 0.0;
  for (size_t i = 0; i < checks.size(); ++i) {
    auto& row = report.rows.at(i);
    const auto& check = checks[i];
    CaseVerdict verdict;
    verdict.ratio = check.ratio;
    verdict.detail = check.detail;
    // One judged check: its tolerance is the stack's own measured noise (premise checked).
    verdict.checks = 1;
    verdict.diagnosis = check.diagnosis;
    add_case(row, verdict, label_case ? index : -1);
    worst = std::max(worst, check.ratio);
    if (recorded) {
      recorded->checks.push_back({row.property, row.recipe, check.failed() ? "fail" : "pass", check.ratio});
    }
  }
  report.case_ratios[report.rows.front().recipe].push_back({index, worst});
}

/// A failing differential case, shrunk (Note [shrinking]): its splits, their checks, and how the
/// shrinking went (each evaluation is a run of the stack).
struct ShrunkSplits {
  Shrunk<Splits, std::vector<DifferentialCheck>> shrunk;
  int case_index = 0;
};

/// A candidate the stack cannot run is passed over.
ShrunkSplits shrink_splits(const RunStack& run_stack, const Splits& splits,
                           const std::vector<DifferentialCheck>& checks, int budget, int index) {
  using Checks = std::vector<DifferentialCheck>;
  const auto candidates = [](const Splits& point, const auto& visit) {
    for (const auto& candidate : shrink_candidates(point)) {
      if (visit(candidate)) return;
    }
  };
  const auto judge = [&run_stack](const Splits& candidate) -> ShrinkAttempt<Checks> {
    Checks candidate_checks;
    try {
      candidate_checks = judge_differential(candidate, run_stack(candidate));
    } catch (const InputError&) {
      return {true, std::nullopt};
    } catch (const EnvironmentError&) {
      return {true, std::nullopt};
    }
    if (!any_failed(candidate_checks)) return {true, std::nullopt};
    return {true, std::move(candidate_checks)};
  };
  auto shrunk = shrink_greedily(splits, checks, budget, candidates, judge);
  return {std::move(shrunk), index};
}

}  // namespace

RunReport judge_differential_case(const Splits& splits, const DifferentialResult& result) {
  auto report = differential_report("result", 0, 1);
  add_differential_case(report, judge_differential(splits, result), 0, false);
  return report;
}

RunReport run_differential(const std::string& recipe, const RunStack& run_stack,
                           const DifferentialRunOptions& options) {
  auto report = differential_report(recipe, options.seed, options.cases);
  report.records_case_verdicts = true;
  std::optional<ShrunkSplits> shrunk;
  for (int i = 0; i < options.cases; ++i) {
    const auto splits = generated_splits(options.seed, i);
    const auto checks = judge_differential(splits, run_stack(splits));
    add_differential_case(report, checks, i, true);
    if (any_failed(checks) && !shrunk) {
      shrunk = shrink_splits(run_stack, splits, checks, options.max_shrink_evaluations, i);
    }
    if (options.progress) options.progress(i + 1, options.cases);
  }
  if (shrunk) {
    // The rows that failed carry the shrunk counterexample and how to rerun it (the JSON and JUnit
    // reports too).
    const auto& [splits, checks, reruns, accepted, budget_ended] = shrunk->shrunk;
    const std::string rerun = options.reproducer ? "\n  " + options.reproducer(splits) : "";
    for (size_t i = 0; i < report.rows.size(); ++i) {
      auto& row = report.rows[i];
      if (row.verdict != Verdict::fail || i >= checks.size()) continue;
      row.worst_detail += "\n  counterexample (case " + std::to_string(shrunk->case_index) + " shrunk " +
                          std::to_string(accepted) + " times in " + std::to_string(reruns) + " reruns" +
                          shrink_budget_note(budget_ended) + ", ratio " + format_ratio(checks[i].ratio) +
                          "): splits " + to_json_text(splits) + "\n    " + checks[i].detail + rerun;
    }
  }
  return report;
}

}  // namespace gacc::properties
