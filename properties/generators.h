#pragma once
/// RapidCheck generators for scenarios, all in one place. They reach the corners that break
/// accumulation — K = 1, micro-batches of one example, uneven splits, a partial last window,
/// sequences of length 1, all-padding rows and micro-batches without a counted token, ignored
/// targets, active clipping, overflowing fp16, W up to 8 ranks with uneven shares, every model,
/// optimizer and schedule of the zoo — and shrink towards
/// small, readable counterexamples: K = 1, one step, size-1 micro-batches, the linear model with one
/// input, plain SGD at a constant rate, seeds 0.
///
/// Every part is an independent argument of one `apply`, so each shrinks on its own without
/// redrawing the others. Choices use sizedElement (gen::element does not shrink).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <ostream>
#include <vector>

#include <rapidcheck.h>

#include "core/scenario.h"

namespace gacc::properties {

constexpr int kMaxGeneratedK = 4;
constexpr int kMaxGeneratedWorld = 8;
constexpr int kMaxGeneratedSteps = 3;
constexpr int kMaxGeneratedSequence = 5;
/// The fewest values a generated normalization (LayerNorm group, BatchNorm micro-batch) spans.
constexpr int kMinNormGroup = 3;

/// Which parts of the zoo a generator draws from.
struct GeneratorRange {
  std::vector<Architecture> architectures;
  std::vector<OptimizerKind> optimizers;
  bool schedules = true;
  bool clipping = true;
  std::vector<Precision> precisions = {Precision::fp32};
  int max_world = 1;  ///< data-parallel ranks: 1, or drawn from 1, 2, 3, 4, 8 up to this
};

/// Everything the oracle handles on one rank: fp32, bf16 autocast, fp16 autocast with dynamic loss
/// scaling.
inline GeneratorRange whole_zoo() {
  return {{Architecture::linear, Architecture::mlp_tanh, Architecture::mlp_gelu, Architecture::mlp_layer_norm,
           Architecture::mlp_group_norm, Architecture::mlp_rms_norm, Architecture::mlp_batch_norm,
           Architecture::mlp_routed, Architecture::causal_lm},
          {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw},
          true,
          true,
          {Precision::fp32, Precision::bf16, Precision::fp16},
          kMaxGeneratedWorld};
}

/// How many shares of the draws an architecture gets (one, but for two): the language model, where
/// the token-count pitfalls and properties exist (token normalization, per-rank token counts); and
/// the routed MLP, where parameters go unused (a data-parallel pitfall needs them).
inline int draw_shares(Architecture arch) {
  if (arch == Architecture::causal_lm) return 3;
  if (arch == Architecture::mlp_routed) return 2;
  return 1;
}

/// Model: dimensions small enough to judge thousands of cases.
inline rc::Gen<ModelSpec> model_specs(const std::vector<Architecture>& architectures) {
  std::vector<Architecture> draws;  // in the given order, so that shrinking still heads for the first
  for (const auto arch : architectures) {
    draws.insert(draws.end(), static_cast<size_t>(draw_shares(arch)), arch);
  }
  return rc::gen::apply(
      [](Architecture arch, int input, int hidden, int output, int group_choice, int vocab, int d_model, int max_len,
         double eps, uint32_t seed) {
        ModelSpec m;
        m.arch = arch;
        m.init_seed = seed;
        // Normalizing over one or two values is degenerate: the output no longer depends on the
        // input (x_hat = +-1), its gradient vanishes through a catastrophic cancellation in ATen's
        // formula, and the rounding bound, though valid, dwarfs everything a pitfall changes. Every
        // LayerNorm or GroupNorm group gets kMinNormGroup features, RMSNorm two.
        const bool grouped = arch == Architecture::mlp_layer_norm || arch == Architecture::mlp_group_norm;
        if (arch == Architecture::causal_lm) {
          m.vocab_size = vocab;
          m.d_model = d_model + kMinNormGroup - 1;
          m.max_seq_len = max_len;
        } else {
          m.input_dim = input;
          m.output_dim = output;
          if (arch != Architecture::linear) m.hidden_dim = hidden;
          if (grouped) m.hidden_dim = std::max(hidden, kMinNormGroup);
          if (arch == Architecture::mlp_rms_norm) m.hidden_dim = std::max(hidden, 2);
        }
        if (arch == Architecture::mlp_group_norm) {
          std::vector<int> groups;
          for (int g = 1; kMinNormGroup * g <= m.hidden_dim; ++g) {
            if (m.hidden_dim % g == 0) groups.push_back(g);
          }
          m.groups = groups[static_cast<size_t>(group_choice) % groups.size()];
        }
        m.norm_eps = eps;
        return m;
      },
      rc::gen::sizedElementOf(draws), rc::gen::inRange(1, 5), rc::gen::inRange(1, 7), rc::gen::inRange(1, 4),
      rc::gen::inRange(0, 4), rc::gen::inRange(2, 9), rc::gen::inRange(1, 5),
      rc::gen::inRange(1, kMaxGeneratedSequence + 1), rc::gen::sizedElement(1e-5, 1e-3), rc::gen::arbitrary<uint32_t>());
}

/// The data for W ranks, K micro-batches and S steps: rank r splits its share into the K sizes
/// base[r .. r+K-1] (uneven within a rank and across ranks), rotated by `rotations[s]` in window s,
/// and, if `partial`, a last window that keeps fewer micro-batches on every rank (or, for K = 1,
/// fewer examples). Token models get a length per example from `lengths` (cycled), with at least
/// one token in every window.
inline DataSpec make_data(const ModelSpec& model, int world, int k, int steps, std::vector<int> base,
                          const std::vector<int>& rotations, bool partial, int kept, const std::vector<int>& lengths,
                          double ignored_fraction, uint32_t seed) {
  DataSpec d;
  d.seed = seed;
  const bool batch_norm = model.arch == Architecture::mlp_batch_norm;
  if (batch_norm) {
    for (auto& m : base) m = std::max(m, kMinNormGroup);  // see model_specs on degenerate norms
  }
  const auto size_of = [&](int rank, int i) { return static_cast<int64_t>(base[static_cast<size_t>(rank + i)]); };
  d.global_batch = 0;
  for (int r = 0; r < world; ++r) {
    for (int i = 0; i < k; ++i) d.global_batch += size_of(r, i);
  }
  for (int s = 0; s < steps; ++s) {
    std::vector<std::vector<int64_t>> window;
    for (int r = 0; r < world; ++r) {
      std::vector<int64_t> sizes;
      for (int i = 0; i < k; ++i) sizes.push_back(size_of(r, (i + rotations[s]) % k));
      if (s + 1 == steps && partial) {
        if (k > 1) {
          sizes.resize(static_cast<size_t>(1 + kept % (k - 1)));  // 1..K-1 micro-batches
        } else if (sizes[0] > (batch_norm ? kMinNormGroup : 1)) {
          const int64_t smallest = batch_norm ? kMinNormGroup : 1;
          sizes[0] = smallest + (kept + r) % (sizes[0] - smallest);  // one smaller micro-batch
        }
      }
      window.push_back(std::move(sizes));
    }
    d.windows.push_back(std::move(window));
  }
  if (model.arch == Architecture::causal_lm) {
    d.ignored_fraction = ignored_fraction;
    int64_t example = 0;
    for (const auto& window : d.windows) {
      const int64_t first = example;
      int64_t tokens = 0;
      for (const auto& rank : window) {
        for (auto m : rank) {
          for (int64_t i = 0; i < m; ++i, ++example) {
            const int64_t length =
                std::min<int64_t>(lengths[static_cast<size_t>(example) % lengths.size()], model.max_seq_len);
            d.sequence_lengths.push_back(length);
            tokens += length;
          }
        }
      }
      if (tokens == 0) d.sequence_lengths[static_cast<size_t>(first)] = 1;
    }
  }
  return d;
}

/// World sizes up to `max_world`: one rank in three draws of seven (what single-process recipes
/// run), then every world from 2 to 8, two ranks twice as often (cheap on a small machine).
inline rc::Gen<int> world_sizes(int max_world) {
  std::vector<int> worlds;
  for (int w : {1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8}) {
    if (w <= max_world) worlds.push_back(w);
  }
  return rc::gen::sizedElementOf(worlds);
}

/// Optimizer hyperparameters: SGD with every option, Adam and AdamW with PyTorch's defaults or
/// coarser ones (eps large enough to matter), amsgrad, L2 or decoupled weight decay.
inline rc::Gen<OptimizerSpec> optimizer_specs(const std::vector<OptimizerKind>& kinds) {
  return rc::gen::apply(
      [](OptimizerKind kind, int lr_steps, double momentum, double dampening, bool nesterov, double weight_decay,
         int betas, double eps, bool amsgrad) {
        OptimizerSpec o;
        o.kind = kind;
        o.weight_decay = weight_decay;
        if (kind == OptimizerKind::sgd) {
          o.lr = lr_steps / 256.0;
          o.momentum = momentum;
          o.dampening = dampening;
          o.nesterov = nesterov && momentum > 0.0 && dampening == 0.0;
        } else {
          o.lr = lr_steps / 1024.0;
          o.beta1 = betas == 0 ? 0.9 : 0.5;
          o.beta2 = betas == 0 ? 0.999 : 0.75;
          o.eps = eps;
          o.amsgrad = amsgrad;
        }
        return o;
      },
      rc::gen::sizedElementOf(kinds), rc::gen::inRange(1, 33), rc::gen::sizedElement(0.0, 0.5, 0.875, 0.9375),
      rc::gen::sizedElement(0.0, 0.25, 0.5), rc::gen::arbitrary<bool>(), rc::gen::sizedElement(0.0, 1.0 / 128, 0.1),
      rc::gen::inRange(0, 2), rc::gen::sizedElement(1e-8, 1e-3), rc::gen::arbitrary<bool>());
}

/// Schedules stepped over a handful of steps, so that each changes the rate within the scenario.
inline rc::Gen<ScheduleSpec> schedule_specs(bool enabled) {
  return rc::gen::apply(
      [enabled](ScheduleKind kind, int length, double factor) {
        ScheduleSpec s;
        s.kind = enabled ? kind : ScheduleKind::constant;
        s.step_size = length;
        s.gamma = factor;
        s.warmup_steps = length;
        s.start_factor = factor;
        s.t_max = length;
        s.eta_min = 0.0;
        return s;
      },
      rc::gen::sizedElement(ScheduleKind::constant, ScheduleKind::step, ScheduleKind::linear_warmup, ScheduleKind::cosine),
      rc::gen::inRange(1, 4), rc::gen::sizedElement(0.5, 0.25));
}

/// Clipping thresholds around typical gradient norms of the zoo, so that clipping is often active.
inline rc::Gen<ClippingSpec> clipping_specs(bool enabled) {
  return rc::gen::apply(
      [enabled](ClippingKind kind, double threshold) {
        ClippingSpec c;
        c.kind = enabled ? kind : ClippingKind::none;
        c.max_norm = threshold;
        c.clip_value = threshold / 4;
        return c;
      },
      rc::gen::sizedElement(ClippingKind::none, ClippingKind::norm, ClippingKind::value),
      rc::gen::sizedElement(0.25, 0.0625, 4.0));
}

/// A precision policy and, for fp16, GradScaler's parameters.
struct PrecisionSpec {
  Precision precision = Precision::fp32;
  LossScaleSpec loss_scale;
};

/// fp16's loss scales reach both sides of overflow in the zoo: the default 2^16 (rarely overflows),
/// 2^22 and 2^28 (overflow from the first window: the scale backs off, step after step), and 1
/// (no overflow, fp16's gradual underflow at full strength); growth every window or two makes the
/// scale climb into overflow within a scenario.
inline rc::Gen<PrecisionSpec> precision_specs(const std::vector<Precision>& precisions) {
  return rc::gen::apply(
      [](Precision precision, double init_scale, double growth, double backoff, int64_t interval) {
        PrecisionSpec p;
        p.precision = precision;
        if (precision == Precision::fp16) p.loss_scale = {init_scale, growth, backoff, interval};
        return p;
      },
      rc::gen::sizedElementOf(precisions), rc::gen::sizedElement(65536.0, 0x1p22, 0x1p28, 1.0),
      rc::gen::sizedElement(2.0, 4.0), rc::gen::sizedElement(0.5, 0.25), rc::gen::sizedElement(int64_t{2000}, int64_t{1}, int64_t{2}));
}

/// The norm-clipping threshold of a stratum with clipping: below the zoo's gradient norms.
constexpr double kForcedClipNorm = 1.0 / 64;

/// Makes window 0's last micro-batch on rank 0 hold no counted token (every sequence empty), keeping
/// a token in its first micro-batch (a window with no token has no token mean to judge).
inline void empty_last_micro_batch(Scenario& sc) {
  const auto& sizes = sc.data.windows[0][0];
  if (sizes.size() < 2) return;
  int64_t first = 0;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) first += sizes[i];
  for (int64_t i = first; i < first + sizes.back(); ++i) sc.data.sequence_lengths[static_cast<size_t>(i)] = 0;
  if (sc.data.sequence_lengths[0] == 0) sc.data.sequence_lengths[0] = 1;
}

// Note [coverage]
// ~~~~~~~~~~~~~~~
// A property can only judge what is drawn. Drawn independently, the cells the properties tell apart
// (architecture x loss reduction x precision: 9 x 2 x 3 = 54) come up by chance, and a short run
// often misses the one a bug lives in (a token-count bug needs the language model with a token mean
// in a precision where the check can look). So a run's cases are stratified. A pass lists every
// cell of the range once per draw share of its architecture (the language model three times, the
// routed MLP twice: more bugs live there; 72 entries for the whole zoo), in a seed-dependent order
// (a fresh one for every pass): case i is entry i mod P of its pass, so the first P cases of any run
// cover every cell, and every later pass covers them again. On top, each case is given about half
// of the triggers that make accumulation bugs show — norm clipping at a threshold below the zoo's
// gradient norms, a partial last window, a micro-batch without a counted token (language model),
// W > 1 (where ranks are allowed; without it the case has one rank), an fp16 loss scale that
// overflows at once (fp16) — each on half of the entries it applies to, in the order they come up,
// in a pattern of its own (a Walsh function: two triggers on the same entries meet in all four
// combinations within 8 of them, so that W > 1 is drawn with and without an fp16 overflow), the
// other half on the next pass; so every trigger meets every architecture within a pass or two.
// Everything else (dimensions, split sizes, optimizer, schedule, seeds) is drawn as before, and
// shrinking keeps the case in its cell and its triggers: a bf16 language-model counterexample
// stays one. Reports say, per property, which cells and triggers it judged (Stratum, runner.h).

/// The cell and triggers a case is drawn in (Note [coverage]).
struct Stratum {
  Architecture arch = Architecture::linear;
  bool summed = false;  ///< Reduction::sum, else the model's mean (mean or token_mean)
  Precision precision = Precision::fp32;
  bool clipping = false;     ///< norm clipping at a threshold below the zoo's gradient norms
  bool partial = false;      ///< a partial last window
  bool token_free = false;   ///< a micro-batch without a counted token (language model, K >= 2)
  bool multi_rank = false;   ///< W >= 2
  bool overflow = false;     ///< fp16 at a loss scale that overflows from the first window
};

/// A cell's name in reports: "causal_lm x token_mean x bf16".
std::string cell_name(Architecture arch, Reduction reduction, Precision precision);
/// The cell a scenario belongs to.
std::string cell_of(const Scenario& scenario);
/// The names of a range's cells, in strata_cells' order.
std::vector<std::string> cell_names(const GeneratorRange& range);

/// The cells of a range, in a canonical order: architecture x {mean, sum} x precision.
std::vector<Stratum> strata_cells(const GeneratorRange& range);

/// Cases in one stratified pass: the first this many cases of a run draw every cell (Note [coverage]).
int pass_length(const GeneratorRange& range);

/// The stratum of case `index` of a run under `seed` (Note [coverage]).
Stratum stratum_of_case(const GeneratorRange& range, uint64_t seed, int index);

/// Scenarios of a run, by case index (a stratified run draws each case in its own stratum).
using CaseGenerator = std::function<rc::Gen<Scenario>(int index)>;

rc::Gen<Scenario> scenarios_in(const GeneratorRange& range, const Stratum* stratum);

/// Whole scenarios on W ranks (W up to the range's max_world), K in 1..4, S in 1..3, in the range's
/// precisions, every part drawn independently.
inline rc::Gen<Scenario> scenarios(const GeneratorRange& range) { return scenarios_in(range, nullptr); }

/// A run's stratified scenarios (Note [coverage]).
CaseGenerator stratified(const GeneratorRange& range, uint64_t seed);

/// Scenarios in `stratum` when given (see Stratum), else drawn independently.
inline rc::Gen<Scenario> scenarios_in(const GeneratorRange& full_range, const Stratum* stratum) {
  GeneratorRange range = full_range;
  if (stratum) {
    range.architectures = {stratum->arch};
    range.precisions = {stratum->precision};
  }
  const std::optional<Stratum> forced = stratum ? std::optional<Stratum>(*stratum) : std::nullopt;
  const int max_world = range.max_world;
  return rc::gen::apply(
      [forced, max_world](int world, int k, int steps, ModelSpec model, std::vector<int> base, std::vector<int> rotations,
                          bool partial, int kept, std::vector<int> lengths, double ignored, uint32_t data_seed, bool sum,
                          OptimizerSpec optimizer, ScheduleSpec schedule, ClippingSpec clipping, PrecisionSpec precision) {
        if (forced) {
          sum = forced->summed;
          partial = partial || forced->partial;
          world = forced->multi_rank && max_world >= 2 ? std::max(world, 2) : 1;
          if (forced->token_free && is_token_model(model)) {
            k = std::max(k, 2);
            if (partial) steps = std::max(steps, 2);  // window 0 keeps all K micro-batches
          }
          if (forced->clipping) {
            clipping.kind = ClippingKind::norm;
            clipping.max_norm = kForcedClipNorm;
          }
          if (forced->overflow && precision.precision == Precision::fp16) precision.loss_scale.init_scale = 0x1p28;
        }
        Scenario sc;
        sc.precision = precision.precision;
        sc.loss_scale = precision.loss_scale;
        sc.model = model;
        sc.data = make_data(model, world, k, steps, base, rotations, partial, kept, lengths, ignored, data_seed);
        sc.loss.kind = is_token_model(model) ? LossKind::cross_entropy : LossKind::mse;
        sc.loss.reduction = sum ? Reduction::sum : (is_token_model(model) ? Reduction::token_mean : Reduction::mean);
        sc.optimizer = optimizer;
        sc.schedule = schedule;
        sc.clipping = clipping;
        sc.world_size = world;
        sc.accumulation_steps = k;
        sc.steps = steps;
        if (forced && forced->token_free && is_token_model(model)) empty_last_micro_batch(sc);
        return sc;
      },
      world_sizes(range.max_world), rc::gen::inRange(1, kMaxGeneratedK + 1), rc::gen::inRange(1, kMaxGeneratedSteps + 1),
      model_specs(range.architectures),
      rc::gen::container<std::vector<int>>(kMaxGeneratedK + kMaxGeneratedWorld - 1, rc::gen::inRange(1, 5)),
      rc::gen::container<std::vector<int>>(kMaxGeneratedSteps, rc::gen::inRange(0, kMaxGeneratedK)),
      rc::gen::map(rc::gen::inRange(0, 4), [](int i) { return i == 3; }), rc::gen::inRange(0, 8),
      rc::gen::container<std::vector<int>>(
          7, rc::gen::map(rc::gen::inRange(0, kMaxGeneratedSequence + 1),
                          [](int v) { return v == kMaxGeneratedSequence ? 0 : v + 1; })),  // 0: all padding
      rc::gen::sizedElement(0.0, 0.25, 0.75), rc::gen::arbitrary<uint32_t>(),
      rc::gen::map(rc::gen::inRange(0, 3), [](int i) { return i == 2; }), optimizer_specs(range.optimizers),
      schedule_specs(range.schedules), clipping_specs(range.clipping), precision_specs(range.precisions));
}

/// The default scenarios: the whole zoo.
inline rc::Gen<Scenario> scenarios() { return scenarios(whole_zoo()); }

}  // namespace gacc::properties

namespace gacc {

/// RapidCheck prints a scenario as its JSON (a reproduce line for `gacc repro`).
inline void showValue(const Scenario& scenario, std::ostream& os) { os << to_json_text(scenario); }

}  // namespace gacc

namespace rc {

template <>
struct Arbitrary<gacc::Scenario> {
  static Gen<gacc::Scenario> arbitrary() { return gacc::properties::scenarios(); }
};

}  // namespace rc
