#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/errors.h"
#include "core/scenario.h"
#include "core/scenario_rules.h"

namespace gacc {
namespace {

using namespace scenario_rules;

[[noreturn]] void invalid(const std::string& field, const std::string& why) {
  throw InputError("scenario." + field + ": " + why);
}

/// The shortest decimal that reads back as x: 0.1, 1000, 1e+38.
std::string number_text(double x) {
  char text[32];
  if (std::isfinite(x) && std::floor(x) == x && std::fabs(x) < 1e15) {
    std::snprintf(text, sizeof text, "%.0f", x);
    return text;
  }
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, x);
    if (std::strtod(text, nullptr) == x) break;
  }
  return text;
}

void check_range(const std::string& field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    invalid(field, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                       std::to_string(value));
  }
}

/// Checks min < value < max, or with `closed` ends included.
void check_real(const std::string& field, double value, double min, bool min_closed, double max,
                bool max_closed) {
  const bool ok = std::isfinite(value) && (min_closed ? value >= min : value > min) &&
                  (max_closed ? value <= max : value < max);
  if (!ok) {
    invalid(field, std::string("must be in ") + (min_closed ? "[" : "(") + number_text(min) + ", " +
                       number_text(max) + (max_closed ? "]" : ")") + ", got " + number_text(value));
  }
}

std::string window_path(size_t step, size_t rank) {
  return "data.windows[" + std::to_string(step) + "][" + std::to_string(rank) + "]";
}

void validate_model(const ModelSpec& m) {
  const std::string arch = to_string(m.arch);
  if (m.arch == Architecture::causal_lm) {
    check_range("model.vocab_size", m.vocab_size, 2, kMaxVocab);
    check_range("model.d_model", m.d_model, 1, kMaxDim);
    check_range("model.max_seq_len", m.max_seq_len, 1, kMaxSeqLen);
    if (m.input_dim || m.hidden_dim || m.output_dim) {
      invalid("model", "input_dim, hidden_dim and output_dim do not apply to arch causal_lm");
    }
    if (2 * m.vocab_size * m.d_model + 4 * m.d_model * m.d_model > kMaxWeights) {
      invalid("model", "has more than " + std::to_string(kMaxWeights) + " weights");
    }
  } else {
    check_range("model.input_dim", m.input_dim, 1, kMaxDim);
    check_range("model.output_dim", m.output_dim, 1, kMaxDim);
    if (has_hidden_layer(m.arch)) {
      check_range("model.hidden_dim", m.hidden_dim, 1, kMaxDim);
    } else if (m.hidden_dim != 0) {
      invalid("model.hidden_dim", "does not apply to arch " + arch);
    }
    if (m.vocab_size || m.d_model || m.max_seq_len) {
      invalid("model", "vocab_size, d_model and max_seq_len apply to arch causal_lm only");
    }
    const int64_t hidden = std::max<int64_t>(m.hidden_dim, 1);
    const int64_t output_layers = m.arch == Architecture::mlp_routed ? 2 : 1;  // mlp_routed: two experts
    if (m.input_dim * hidden + output_layers * hidden * m.output_dim > kMaxWeights) {
      invalid("model", "has more than " + std::to_string(kMaxWeights) + " weights");
    }
  }
  if (m.arch == Architecture::mlp_group_norm) {
    check_range("model.groups", m.groups, 1, m.hidden_dim);
    if (m.hidden_dim % m.groups != 0) {
      invalid("model.groups", std::to_string(m.groups) + " groups do not divide hidden_dim " +
                                  std::to_string(m.hidden_dim));
    }
  } else if (m.groups != 0) {
    invalid("model.groups", "applies to arch mlp_group_norm only");
  }
  if (has_norm(m.arch)) check_real("model.norm_eps", m.norm_eps, 0.0, false, 1.0, true);
  if (m.arch == Architecture::mlp_batch_norm) {
    check_real("model.batch_norm_momentum", m.batch_norm_momentum, 0.0, true, 1.0, true);
  }
}

void validate_windows(const Scenario& sc) {
  const auto& d = sc.data;
  check_range("data.global_batch", d.global_batch, 1, kMaxGlobalBatch);
  if (d.windows.size() != static_cast<size_t>(sc.steps)) {
    invalid("data.windows", "has " + std::to_string(d.windows.size()) + " windows, but steps is " +
                                std::to_string(sc.steps));
  }
  const bool batch_norm = sc.model.arch == Architecture::mlp_batch_norm;
  int64_t total = 0;
  for (size_t s = 0; s < d.windows.size(); ++s) {
    const bool last = s + 1 == d.windows.size();
    const auto& window = d.windows[s];
    if (window.size() != static_cast<size_t>(sc.world_size)) {
      invalid("data.windows[" + std::to_string(s) + "]",
              "has " + std::to_string(window.size()) + " ranks, but world_size is " +
                  std::to_string(sc.world_size));
    }
    int64_t examples = 0;
    for (size_t r = 0; r < window.size(); ++r) {
      const auto& micro = window[r];
      const size_t k = micro.size();
      if (k != window[0].size()) {
        invalid(window_path(s, r), "has " + std::to_string(k) + " micro-batches, but rank 0 has " +
                                       std::to_string(window[0].size()) +
                                       " (every rank takes the same number)");
      }
      if (k < 1 || k > static_cast<size_t>(sc.accumulation_steps) ||
          (!last && k != static_cast<size_t>(sc.accumulation_steps))) {
        invalid(window_path(s, r),
                "has " + std::to_string(k) + " micro-batches, but accumulation_steps is " +
                    std::to_string(sc.accumulation_steps) +
                    (last ? " (the last window may hold fewer, at least 1)" : ""));
      }
      for (size_t i = 0; i < k; ++i) {
        const std::string at = window_path(s, r) + "[" + std::to_string(i) + "]";
        if (micro[i] < 1 || micro[i] > d.global_batch) {
          invalid(at, "micro-batch size must be in [1, global_batch = " + std::to_string(d.global_batch) +
                          "], got " + std::to_string(micro[i]));
        }
        if (batch_norm && micro[i] < 2) {
          invalid(at, "a BatchNorm micro-batch needs at least 2 examples (training-mode BatchNorm "
                      "has no variance over one)");
        }
        examples += micro[i];
      }
    }
    if (last ? examples > d.global_batch : examples != d.global_batch) {
      invalid("data.windows[" + std::to_string(s) + "]",
              "micro-batch sizes sum to " + std::to_string(examples) + ", but global_batch is " +
                  std::to_string(d.global_batch) +
                  (last ? " (the last window may hold fewer, not more)" : ""));
    }
    total += examples;
    if (total > kMaxTotalExamples) {
      invalid("data.windows", "hold more than " + std::to_string(kMaxTotalExamples) + " examples");
    }
  }
}

void validate_sequences(const Scenario& sc) {
  const auto& d = sc.data;
  if (!is_token_model(sc.model)) {
    if (!d.sequence_lengths.empty()) invalid("data.sequence_lengths", "applies to arch causal_lm only");
    if (d.ignored_fraction != 0.0) invalid("data.ignored_fraction", "applies to arch causal_lm only");
    return;
  }
  const int64_t total = total_examples(sc);
  if (static_cast<int64_t>(d.sequence_lengths.size()) != total) {
    invalid("data.sequence_lengths", "has " + std::to_string(d.sequence_lengths.size()) +
                                         " lengths, but the windows hold " + std::to_string(total) +
                                         " examples (one length each)");
  }
  int64_t tokens = 0;
  for (size_t i = 0; i < d.sequence_lengths.size(); ++i) {
    check_range("data.sequence_lengths[" + std::to_string(i) + "]", d.sequence_lengths[i], 0,
                sc.model.max_seq_len);
    tokens += d.sequence_lengths[i];
  }
  if (tokens > kMaxTotalTokens) invalid("data.sequence_lengths", "hold too many tokens");
  check_real("data.ignored_fraction", d.ignored_fraction, 0.0, true, 1.0, false);
  for (int s = 0; s < sc.steps; ++s) {
    const int64_t first = first_example(sc, s, 0, 0);
    int64_t window_tokens = 0;
    for (int64_t i = first; i < first + window_examples(sc, s); ++i) window_tokens += d.sequence_lengths[i];
    if (window_tokens == 0) {
      invalid("data.sequence_lengths", "the window of step " + std::to_string(s) +
                                           " holds no token: its token-mean loss is undefined");
    }
  }
}

void validate_optimizer(const OptimizerSpec& o) {
  check_real("optimizer.lr", o.lr, 0.0, false, 1e3, true);
  check_real("optimizer.weight_decay", o.weight_decay, 0.0, true, 1e3, true);
  if (o.kind == OptimizerKind::sgd) {
    check_real("optimizer.momentum", o.momentum, 0.0, true, 1.0, false);
    check_real("optimizer.dampening", o.dampening, 0.0, true, 1.0, true);
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
      invalid("optimizer.nesterov", "needs momentum > 0 and dampening = 0 (as torch.optim.SGD)");
    }
  } else {
    check_real("optimizer.beta1", o.beta1, 0.0, true, 1.0, false);
    check_real("optimizer.beta2", o.beta2, 0.0, true, 1.0, false);
    check_real("optimizer.eps", o.eps, 0.0, false, 1.0, true);
  }
}

/// The largest learning rate the schedule reaches in `steps` optimizer steps.
double peak_learning_rate(const ScheduleSpec& s, double lr, int steps) {
  if (s.kind == ScheduleKind::step && s.gamma > 1.0) {
    return lr * std::pow(s.gamma, static_cast<double>((steps - 1) / s.step_size));
  }
  return lr;  // the other schedules never exceed the base rate
}

void validate_schedule(const ScheduleSpec& s, double lr) {
  switch (s.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      check_range("schedule.step_size", s.step_size, 1, kMaxSteps);
      check_real("schedule.gamma", s.gamma, 0.0, false, 1e3, true);
      break;
    case ScheduleKind::linear_warmup:
      check_range("schedule.warmup_steps", s.warmup_steps, 1, kMaxSteps);
      check_real("schedule.start_factor", s.start_factor, 0.0, false, 1.0, true);
      break;
    case ScheduleKind::cosine:
      check_range("schedule.t_max", s.t_max, 1, kMaxSteps);
      check_real("schedule.eta_min", s.eta_min, 0.0, true, lr, true);
      break;
  }
}

void validate_precision(const Scenario& sc) {
  if (sc.clipping.kind == ClippingKind::norm) check_real("clipping.max_norm", sc.clipping.max_norm, 0.0, false, 1e30, true);
  if (sc.clipping.kind == ClippingKind::value) {
    check_real("clipping.clip_value", sc.clipping.clip_value, 0.0, false, 1e30, true);
  }
  if (sc.precision == Precision::fp16) {
    const auto& l = sc.loss_scale;
    check_real("loss_scale.init_scale", l.init_scale, 0.0, false, 1e38, true);
    check_real("loss_scale.growth_factor", l.growth_factor, 1.0, false, 1e6, true);
    check_real("loss_scale.backoff_factor", l.backoff_factor, 0.0, false, 1.0, false);
    check_range("loss_scale.growth_interval", l.growth_interval, 1, kMaxInterval);
  }
}

}  // namespace

void validate(const Scenario& sc) {
  validate_model(sc.model);
  check_range("world_size", sc.world_size, 1, kMaxWorld);
  check_range("accumulation_steps", sc.accumulation_steps, 1, kMaxAccumulation);
  check_range("steps", sc.steps, 1, kMaxSteps);
  validate_windows(sc);
  validate_sequences(sc);
  if (sc.loss.kind != loss_of(sc.model.arch)) {
    invalid("loss.kind", "arch " + to_string(sc.model.arch) + " trains with " +
                             to_string(loss_of(sc.model.arch)) + ", not " + to_string(sc.loss.kind));
  }
  const bool token = sc.loss.kind == LossKind::cross_entropy;
  const bool reduction_fits = sc.loss.reduction == Reduction::sum ||
                              sc.loss.reduction == (token ? Reduction::token_mean : Reduction::mean);
  if (!reduction_fits) {
    invalid("loss.reduction", to_string(sc.loss.kind) + " reduces by " +
                                  (token ? "token_mean or sum" : "mean or sum") + ", not " +
                                  to_string(sc.loss.reduction));
  }
  validate_optimizer(sc.optimizer);
  validate_schedule(sc.schedule, sc.optimizer.lr);
  const double peak = peak_learning_rate(sc.schedule, sc.optimizer.lr, sc.steps);
  if (!(peak <= 1e3)) {
    invalid("schedule", "the learning rate reaches " + number_text(peak) + " (at most 1000)");
  }
  if (sc.optimizer.kind == OptimizerKind::adamw && peak * sc.optimizer.weight_decay >= 1.0) {
    invalid("optimizer.weight_decay", "lr * weight_decay reaches " + number_text(peak * sc.optimizer.weight_decay) +
                                          "; it must stay below 1 (AdamW multiplies the weights by "
                                          "1 - lr * weight_decay)");
  }
  validate_precision(sc);
}

}  // namespace gacc
