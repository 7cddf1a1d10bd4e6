#include "core/scenario.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_reader.h"

namespace gacc {
namespace {

// Limits that keep a hostile or mistyped scenario from allocating the machine away.
constexpr int64_t kMaxDim = 4096;
constexpr int64_t kMaxWeights = int64_t{1} << 24;
constexpr int64_t kMaxGlobalBatch = int64_t{1} << 20;
constexpr int64_t kMaxTotalExamples = int64_t{1} << 22;
constexpr int64_t kMaxTotalTokens = int64_t{1} << 24;
constexpr int64_t kMaxSteps = 100000;
constexpr int64_t kMaxAccumulation = 4096;
constexpr int64_t kMaxWorld = 64;
constexpr int64_t kMaxVocab = 65536;
constexpr int64_t kMaxSeqLen = 4096;
constexpr int64_t kMaxInterval = int64_t{1} << 40;

template <class Enum>
struct EnumName {
  Enum value;
  const char* name;
};

constexpr EnumName<Architecture> kArchitectures[] = {
    {Architecture::linear, "linear"},
    {Architecture::mlp_tanh, "mlp_tanh"},
    {Architecture::mlp_gelu, "mlp_gelu"},
    {Architecture::mlp_layer_norm, "mlp_layer_norm"},
    {Architecture::mlp_group_norm, "mlp_group_norm"},
    {Architecture::mlp_rms_norm, "mlp_rms_norm"},
    {Architecture::mlp_batch_norm, "mlp_batch_norm"},
    {Architecture::mlp_routed, "mlp_routed"},
    {Architecture::causal_lm, "causal_lm"}};
constexpr EnumName<LossKind> kLosses[] = {{LossKind::mse, "mse"}, {LossKind::cross_entropy, "cross_entropy"}};
constexpr EnumName<Reduction> kReductions[] = {
    {Reduction::mean, "mean"}, {Reduction::sum, "sum"}, {Reduction::token_mean, "token_mean"}};
constexpr EnumName<OptimizerKind> kOptimizers[] = {
    {OptimizerKind::sgd, "sgd"}, {OptimizerKind::adam, "adam"}, {OptimizerKind::adamw, "adamw"}};
constexpr EnumName<ScheduleKind> kSchedules[] = {{ScheduleKind::constant, "constant"},
                                                 {ScheduleKind::step, "step"},
                                                 {ScheduleKind::linear_warmup, "linear_warmup"},
                                                 {ScheduleKind::cosine, "cosine"}};
constexpr EnumName<ClippingKind> kClippings[] = {
    {ClippingKind::none, "none"}, {ClippingKind::norm, "norm"}, {ClippingKind::value, "value"}};
constexpr EnumName<Precision> kPrecisions[] = {
    {Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}, {Precision::fp16, "fp16"}};

template <class Enum, size_t N>
std::string name_of(const EnumName<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

template <class Enum, size_t N>
Enum parse_enum(const EnumName<Enum> (&table)[N], const std::string& text, const std::string& path) {
  std::string choices;
  for (const auto& entry : table) {
    if (text == entry.name) return entry.value;
    choices += (choices.empty() ? "" : ", ") + std::string(entry.name);
  }
  throw InputError(path + " must be one of " + choices + ", got \"" + text + "\"");
}

template <class Enum, size_t N>
std::vector<std::string> names(const EnumName<Enum> (&table)[N]) {
  std::vector<std::string> out;
  for (const auto& entry : table) out.emplace_back(entry.name);
  return out;
}

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

bool has_hidden_layer(Architecture arch) { return arch != Architecture::linear && arch != Architecture::causal_lm; }

bool has_norm(Architecture arch) {
  return arch == Architecture::mlp_layer_norm || arch == Architecture::mlp_group_norm ||
         arch == Architecture::mlp_rms_norm || arch == Architecture::mlp_batch_norm ||
         arch == Architecture::causal_lm;
}

LossKind loss_of(Architecture arch) {
  return arch == Architecture::causal_lm ? LossKind::cross_entropy : LossKind::mse;
}

Reduction default_reduction(LossKind kind) {
  return kind == LossKind::cross_entropy ? Reduction::token_mean : Reduction::mean;
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

std::string to_string(Architecture arch) { return name_of(kArchitectures, arch); }
std::string to_string(LossKind kind) { return name_of(kLosses, kind); }
std::string to_string(Reduction reduction) { return name_of(kReductions, reduction); }
std::string to_string(OptimizerKind kind) { return name_of(kOptimizers, kind); }
std::string to_string(ScheduleKind kind) { return name_of(kSchedules, kind); }
std::string to_string(ClippingKind kind) { return name_of(kClippings, kind); }
std::string to_string(Precision precision) { return name_of(kPrecisions, precision); }
std::vector<std::string> all_architectures() { return names(kArchitectures); }
std::vector<std::string> all_losses() {
  return {"mse (mean)", "mse (sum)", "cross_entropy (token_mean)", "cross_entropy (sum)"};
}
std::vector<std::string> all_optimizers() { return names(kOptimizers); }
std::vector<std::string> all_schedules() { return names(kSchedules); }
std::vector<std::string> all_clippings() { return names(kClippings); }
std::vector<std::string> all_precisions() { return names(kPrecisions); }

bool is_token_model(const ModelSpec& model) { return model.arch == Architecture::causal_lm; }
bool is_batch_coupled(const ModelSpec& model) { return model.arch == Architecture::mlp_batch_norm; }

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

int micro_batch_count(const Scenario& sc, int step) {
  return static_cast<int>(sc.data.windows.at(static_cast<size_t>(step)).at(0).size());
}

int64_t window_examples(const Scenario& sc, int step) {
  int64_t n = 0;
  for (const auto& rank : sc.data.windows.at(static_cast<size_t>(step))) {
    n = std::accumulate(rank.begin(), rank.end(), n);
  }
  return n;
}

int64_t total_examples(const Scenario& sc) {
  int64_t n = 0;
  for (int s = 0; s < static_cast<int>(sc.data.windows.size()); ++s) n += window_examples(sc, s);
  return n;
}

int64_t first_example(const Scenario& sc, int step, int rank, int micro) {
  int64_t index = 0;
  for (int s = 0; s < step; ++s) index += window_examples(sc, s);
  const auto& window = sc.data.windows.at(static_cast<size_t>(step));
  for (int r = 0; r < rank; ++r) {
    index = std::accumulate(window.at(r).begin(), window.at(r).end(), index);
  }
  const auto& sizes = window.at(static_cast<size_t>(rank));
  return std::accumulate(sizes.begin(), sizes.begin() + micro, index);
}

Scenario scenario_from_json(const nlohmann::json& json) {
  Scenario sc;
  JsonObjectReader top(json, "scenario");

  JsonObjectReader model(top.at("model"), top.path_of("model"));
  auto& m = sc.model;
  m.arch = parse_enum(kArchitectures, model.string("arch"), model.path_of("arch"));
  const std::string to_arch = "to arch " + to_string(m.arch);
  if (is_token_model(m)) {
    for (const char* key : {"input_dim", "hidden_dim", "output_dim"}) model.forbid(key, to_arch);
    m.vocab_size = model.integer("vocab_size", 2, kMaxVocab);
    m.d_model = model.integer("d_model", 1, kMaxDim);
    m.max_seq_len = model.integer("max_seq_len", 1, kMaxSeqLen);
  } else {
    for (const char* key : {"vocab_size", "d_model", "max_seq_len"}) model.forbid(key, to_arch);
    m.input_dim = model.integer("input_dim", 1, kMaxDim);
    if (has_hidden_layer(m.arch)) {
      m.hidden_dim = model.integer("hidden_dim", 1, kMaxDim);
    } else {
      model.forbid("hidden_dim", to_arch);
    }
    m.output_dim = model.integer("output_dim", 1, kMaxDim);
  }
  if (m.arch == Architecture::mlp_group_norm) {
    m.groups = model.integer("groups", 1, kMaxDim);
  } else {
    model.forbid("groups", to_arch);
  }
  if (has_norm(m.arch)) {
    m.norm_eps = model.number_or("norm_eps", m.norm_eps, 0.0, 1.0);
  } else {
    model.forbid("norm_eps", to_arch);
  }
  if (m.arch == Architecture::mlp_batch_norm) {
    m.batch_norm_momentum = model.number_or("batch_norm_momentum", m.batch_norm_momentum, 0.0, 1.0);
  } else {
    model.forbid("batch_norm_momentum", to_arch);
  }
  m.init_seed = model.seed("init_seed");
  model.finish();

  JsonObjectReader data(top.at("data"), top.path_of("data"));
  sc.data.seed = data.seed("seed");
  sc.data.global_batch = data.integer("global_batch", 1, kMaxGlobalBatch);
  const auto& windows = data.at("windows");
  const std::string windows_path = data.path_of("windows");
  if (!windows.is_array()) throw InputError(windows_path + " must be an array of windows");
  if (windows.size() > static_cast<size_t>(kMaxSteps)) {
    throw InputError(windows_path + " holds more than " + std::to_string(kMaxSteps) + " windows");
  }
  for (size_t s = 0; s < windows.size(); ++s) {
    const std::string ws = windows_path + "[" + std::to_string(s) + "]";
    if (!windows[s].is_array()) throw InputError(ws + " must be an array with one list per rank");
    if (windows[s].size() > static_cast<size_t>(kMaxWorld)) {
      throw InputError(ws + " holds more than " + std::to_string(kMaxWorld) + " ranks");
    }
    auto& window = sc.data.windows.emplace_back();
    for (size_t r = 0; r < windows[s].size(); ++r) {
      const std::string rs = ws + "[" + std::to_string(r) + "]";
      const auto& sizes = windows[s][r];
      if (!sizes.is_array()) throw InputError(rs + " must be an array of micro-batch sizes");
      if (sizes.size() > static_cast<size_t>(kMaxAccumulation)) {
        throw InputError(rs + " holds more than " + std::to_string(kMaxAccumulation) + " micro-batches");
      }
      auto& rank = window.emplace_back();
      for (size_t i = 0; i < sizes.size(); ++i) {
        rank.push_back(json_integer(sizes[i], rs + "[" + std::to_string(i) + "]", 1, kMaxGlobalBatch));
      }
    }
  }
  if (is_token_model(m)) {
    const auto& lengths = data.at("sequence_lengths");
    const std::string lengths_path = data.path_of("sequence_lengths");
    if (!lengths.is_array()) throw InputError(lengths_path + " must be an array of lengths");
    if (lengths.size() > static_cast<size_t>(kMaxTotalExamples)) {
      throw InputError(lengths_path + " holds more than " + std::to_string(kMaxTotalExamples) + " lengths");
    }
    for (size_t i = 0; i < lengths.size(); ++i) {
      sc.data.sequence_lengths.push_back(
          json_integer(lengths[i], lengths_path + "[" + std::to_string(i) + "]", 0, kMaxSeqLen));
    }
    sc.data.ignored_fraction = data.number_or("ignored_fraction", 0.0, 0.0, 1.0);
  } else {
    data.forbid("sequence_lengths", to_arch);
    data.forbid("ignored_fraction", to_arch);
  }
  data.finish();

  sc.loss.kind = loss_of(m.arch);
  sc.loss.reduction = default_reduction(sc.loss.kind);
  if (top.has("loss")) {
    JsonObjectReader loss(top.at("loss"), top.path_of("loss"));
    sc.loss.kind = parse_enum(kLosses, loss.string_or("kind", to_string(sc.loss.kind)), loss.path_of("kind"));
    sc.loss.reduction = parse_enum(kReductions, loss.string_or("reduction", to_string(default_reduction(sc.loss.kind))),
                                   loss.path_of("reduction"));
    loss.finish();
  }

  JsonObjectReader opt(top.at("optimizer"), top.path_of("optimizer"));
  auto& o = sc.optimizer;
  o.kind = parse_enum(kOptimizers, opt.string("kind"), opt.path_of("kind"));
  const std::string to_optimizer = "to optimizer " + to_string(o.kind);
  o.lr = opt.number("lr", 0.0, 1e3);
  o.weight_decay = opt.number_or("weight_decay", 0.0, 0.0, 1e3);
  if (o.kind == OptimizerKind::sgd) {
    for (const char* key : {"beta1", "beta2", "eps", "amsgrad"}) opt.forbid(key, to_optimizer);
    o.momentum = opt.number_or("momentum", 0.0, 0.0, 1.0);
    o.dampening = opt.number_or("dampening", 0.0, 0.0, 1.0);
    o.nesterov = opt.boolean_or("nesterov", false);
  } else {
    for (const char* key : {"momentum", "dampening", "nesterov"}) opt.forbid(key, to_optimizer);
    o.beta1 = opt.number_or("beta1", o.beta1, 0.0, 1.0);
    o.beta2 = opt.number_or("beta2", o.beta2, 0.0, 1.0);
    o.eps = opt.number_or("eps", o.eps, 0.0, 1.0);
    o.amsgrad = opt.boolean_or("amsgrad", false);
  }
  opt.finish();

  if (top.has("schedule")) {
    JsonObjectReader sched(top.at("schedule"), top.path_of("schedule"));
    auto& s = sc.schedule;
    s.kind = parse_enum(kSchedules, sched.string("kind"), sched.path_of("kind"));
    const std::string to_schedule = "to schedule " + to_string(s.kind);
    auto only = [&](ScheduleKind kind, std::initializer_list<const char*> keys) {
      if (s.kind != kind) {
        for (const char* key : keys) sched.forbid(key, to_schedule);
      }
    };
    only(ScheduleKind::step, {"step_size", "gamma"});
    only(ScheduleKind::linear_warmup, {"warmup_steps", "start_factor"});
    only(ScheduleKind::cosine, {"t_max", "eta_min"});
    if (s.kind == ScheduleKind::step) {
      s.step_size = sched.integer("step_size", 1, kMaxSteps);
      s.gamma = sched.number_or("gamma", s.gamma, 0.0, 1e3);
    } else if (s.kind == ScheduleKind::linear_warmup) {
      s.warmup_steps = sched.integer("warmup_steps", 1, kMaxSteps);
      s.start_factor = sched.number_or("start_factor", s.start_factor, 0.0, 1.0);
    } else if (s.kind == ScheduleKind::cosine) {
      s.t_max = sched.integer("t_max", 1, kMaxSteps);
      s.eta_min = sched.number_or("eta_min", 0.0, 0.0, 1e3);
    }
    sched.finish();
  }

  if (top.has("clipping")) {
    JsonObjectReader clip(top.at("clipping"), top.path_of("clipping"));
    auto& c = sc.clipping;
    c.kind = parse_enum(kClippings, clip.string("kind"), clip.path_of("kind"));
    const std::string to_clipping = "to clipping " + to_string(c.kind);
    if (c.kind == ClippingKind::norm) {
      clip.forbid("clip_value", to_clipping);
      c.max_norm = clip.number("max_norm", 0.0, 1e30);
    } else if (c.kind == ClippingKind::value) {
      clip.forbid("max_norm", to_clipping);
      c.clip_value = clip.number("clip_value", 0.0, 1e30);
    } else {
      clip.forbid("max_norm", to_clipping);
      clip.forbid("clip_value", to_clipping);
    }
    clip.finish();
  }

  sc.precision = parse_enum(kPrecisions, top.string_or("precision", "fp32"), top.path_of("precision"));
  if (sc.precision == Precision::fp16) {
    if (top.has("loss_scale")) {
      JsonObjectReader ls(top.at("loss_scale"), top.path_of("loss_scale"));
      auto& l = sc.loss_scale;
      l.init_scale = ls.number_or("init_scale", l.init_scale, 0.0, 1e38);
      l.growth_factor = ls.number_or("growth_factor", l.growth_factor, 0.0, 1e6);
      l.backoff_factor = ls.number_or("backoff_factor", l.backoff_factor, 0.0, 1.0);
      l.growth_interval = ls.integer_or("growth_interval", l.growth_interval, 1, kMaxInterval);
      ls.finish();
    }
  } else {
    top.forbid("loss_scale", "to precision " + to_string(sc.precision) + " (fp16 only)");
  }
  sc.world_size = static_cast<int>(top.integer_or("world_size", 1, 1, kMaxWorld));
  sc.accumulation_steps = static_cast<int>(top.integer("accumulation_steps", 1, kMaxAccumulation));
  sc.steps = static_cast<int>(top.integer("steps", 1, kMaxSteps));
  top.finish();

  validate(sc);
  return sc;
}

Scenario parse_scenario(std::string_view text) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number beyond double's range (1e999): found by fuzzing.
    throw InputError(std::string("scenario: malformed JSON: ") + e.what());
  }
  return scenario_from_json(json);
}

nlohmann::json to_json(const Scenario& sc) {
  const auto& m = sc.model;
  nlohmann::json model = {{"arch", to_string(m.arch)}, {"init_seed", m.init_seed}};
  if (is_token_model(m)) {
    model["vocab_size"] = m.vocab_size;
    model["d_model"] = m.d_model;
    model["max_seq_len"] = m.max_seq_len;
  } else {
    model["input_dim"] = m.input_dim;
    model["output_dim"] = m.output_dim;
    if (has_hidden_layer(m.arch)) model["hidden_dim"] = m.hidden_dim;
  }
  if (m.arch == Architecture::mlp_group_norm) model["groups"] = m.groups;
  if (has_norm(m.arch)) model["norm_eps"] = m.norm_eps;
  if (m.arch == Architecture::mlp_batch_norm) model["batch_norm_momentum"] = m.batch_norm_momentum;

  nlohmann::json data = {{"seed", sc.data.seed}, {"global_batch", sc.data.global_batch}, {"windows", sc.data.windows}};
  if (is_token_model(m)) {
    data["sequence_lengths"] = sc.data.sequence_lengths;
    data["ignored_fraction"] = sc.data.ignored_fraction;
  }

  const auto& o = sc.optimizer;
  nlohmann::json optimizer = {{"kind", to_string(o.kind)}, {"lr", o.lr}, {"weight_decay", o.weight_decay}};
  if (o.kind == OptimizerKind::sgd) {
    optimizer["momentum"] = o.momentum;
    optimizer["dampening"] = o.dampening;
    optimizer["nesterov"] = o.nesterov;
  } else {
    optimizer["beta1"] = o.beta1;
    optimizer["beta2"] = o.beta2;
    optimizer["eps"] = o.eps;
    optimizer["amsgrad"] = o.amsgrad;
  }

  nlohmann::json out = {
      {"model", model},
      {"data", data},
      {"loss", {{"kind", to_string(sc.loss.kind)}, {"reduction", to_string(sc.loss.reduction)}}},
      {"optimizer", optimizer},
      {"precision", to_string(sc.precision)},
      {"world_size", sc.world_size},
      {"accumulation_steps", sc.accumulation_steps},
      {"steps", sc.steps},
  };
  const auto& s = sc.schedule;
  if (s.kind != ScheduleKind::constant) {
    nlohmann::json schedule = {{"kind", to_string(s.kind)}};
    if (s.kind == ScheduleKind::step) {
      schedule["step_size"] = s.step_size;
      schedule["gamma"] = s.gamma;
    } else if (s.kind == ScheduleKind::linear_warmup) {
      schedule["warmup_steps"] = s.warmup_steps;
      schedule["start_factor"] = s.start_factor;
    } else {
      schedule["t_max"] = s.t_max;
      schedule["eta_min"] = s.eta_min;
    }
    out["schedule"] = schedule;
  }
  if (sc.clipping.kind != ClippingKind::none) {
    nlohmann::json clipping = {{"kind", to_string(sc.clipping.kind)}};
    if (sc.clipping.kind == ClippingKind::norm) clipping["max_norm"] = sc.clipping.max_norm;
    if (sc.clipping.kind == ClippingKind::value) clipping["clip_value"] = sc.clipping.clip_value;
    out["clipping"] = clipping;
  }
  if (sc.precision == Precision::fp16) {
    const auto& l = sc.loss_scale;
    out["loss_scale"] = {{"init_scale", l.init_scale},
                         {"growth_factor", l.growth_factor},
                         {"backoff_factor", l.backoff_factor},
                         {"growth_interval", l.growth_interval}};
  }
  return out;
}

std::string to_json_text(const Scenario& sc) { return to_json(sc).dump(); }

}  // namespace gacc
