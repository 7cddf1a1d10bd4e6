#include "core/scenario.h"

#include <algorithm>
#include <numeric>
#include <sstream>

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
constexpr int64_t kMaxSteps = 100000;
constexpr int64_t kMaxAccumulation = 4096;
constexpr int64_t kMaxWorld = 64;

template <class Enum>
struct EnumName {
  Enum value;
  const char* name;
};

constexpr EnumName<Architecture> kArchitectures[] = {{Architecture::linear, "linear"},
                                                     {Architecture::mlp_tanh, "mlp_tanh"}};
constexpr EnumName<Reduction> kReductions[] = {{Reduction::mean, "mean"}, {Reduction::sum, "sum"}};
constexpr EnumName<OptimizerKind> kOptimizers[] = {{OptimizerKind::sgd, "sgd"}};
constexpr EnumName<Precision> kPrecisions[] = {{Precision::fp32, "fp32"}};
constexpr EnumName<LossKind> kLosses[] = {{LossKind::mse, "mse"}};

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

std::string window_path(size_t step, size_t rank) {
  return "data.windows[" + std::to_string(step) + "][" + std::to_string(rank) + "]";
}

bool exactly_representable_in_fp32(double x) { return static_cast<double>(static_cast<float>(x)) == x; }

}  // namespace

std::string to_string(Architecture arch) { return name_of(kArchitectures, arch); }
std::string to_string(Reduction reduction) { return name_of(kReductions, reduction); }
std::string to_string(OptimizerKind kind) { return name_of(kOptimizers, kind); }
std::string to_string(Precision precision) { return name_of(kPrecisions, precision); }
std::string to_string(LossKind kind) { return name_of(kLosses, kind); }
std::vector<std::string> all_architectures() { return names(kArchitectures); }
std::vector<std::string> all_optimizers() { return names(kOptimizers); }
std::vector<std::string> all_losses() {
  std::vector<std::string> out;
  for (const auto& loss : names(kLosses)) {
    for (const auto& reduction : names(kReductions)) out.push_back(loss + " (" + reduction + ")");
  }
  return out;
}

void validate(const Scenario& sc) {
  const auto& m = sc.model;
  auto check_dim = [](const char* field, int64_t value) {
    if (value < 1 || value > kMaxDim) {
      invalid(field, "must be in [1, " + std::to_string(kMaxDim) + "], got " + std::to_string(value));
    }
  };
  check_dim("model.input_dim", m.input_dim);
  check_dim("model.output_dim", m.output_dim);
  if (m.arch == Architecture::linear) {
    if (m.hidden_dim != 0) invalid("model.hidden_dim", "does not apply to arch linear");
  } else {
    check_dim("model.hidden_dim", m.hidden_dim);
  }
  const int64_t hidden = std::max<int64_t>(m.hidden_dim, 1);
  if (m.input_dim * hidden + hidden * m.output_dim > kMaxWeights) {
    invalid("model", "has more than " + std::to_string(kMaxWeights) + " weights");
  }

  if (sc.world_size < 1 || sc.world_size > kMaxWorld) {
    invalid("world_size", "must be in [1, " + std::to_string(kMaxWorld) + "], got " +
                              std::to_string(sc.world_size));
  }
  if (sc.accumulation_steps < 1 || sc.accumulation_steps > kMaxAccumulation) {
    invalid("accumulation_steps", "must be in [1, " + std::to_string(kMaxAccumulation) +
                                      "], got " + std::to_string(sc.accumulation_steps));
  }
  if (sc.steps < 1 || sc.steps > kMaxSteps) {
    invalid("steps", "must be in [1, " + std::to_string(kMaxSteps) + "], got " +
                         std::to_string(sc.steps));
  }
  const auto& d = sc.data;
  if (d.global_batch < 1 || d.global_batch > kMaxGlobalBatch) {
    invalid("data.global_batch", "must be in [1, " + std::to_string(kMaxGlobalBatch) + "], got " +
                                     std::to_string(d.global_batch));
  }
  if (d.windows.size() != static_cast<size_t>(sc.steps)) {
    invalid("data.windows", "has " + std::to_string(d.windows.size()) + " windows, but steps is " +
                                std::to_string(sc.steps));
  }
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
        if (micro[i] < 1 || micro[i] > d.global_batch) {
          invalid(window_path(s, r) + "[" + std::to_string(i) + "]",
                  "micro-batch size must be in [1, global_batch = " +
                      std::to_string(d.global_batch) + "], got " + std::to_string(micro[i]));
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

  const auto& o = sc.optimizer;
  if (!(o.lr > 0.0) || o.lr > 1e3) invalid("optimizer.lr", "must be in (0, 1000]");
  if (!(o.momentum >= 0.0 && o.momentum < 1.0)) invalid("optimizer.momentum", "must be in [0, 1)");
  if (!(o.dampening >= 0.0 && o.dampening <= 1.0)) invalid("optimizer.dampening", "must be in [0, 1]");
  if (!(o.weight_decay >= 0.0 && o.weight_decay <= 1e3)) {
    invalid("optimizer.weight_decay", "must be in [0, 1000]");
  }
  if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
    invalid("optimizer.nesterov", "needs momentum > 0 and dampening = 0 (as torch.optim.SGD)");
  }
  const std::pair<const char*, double> hyper[] = {{"optimizer.lr", o.lr},
                                                  {"optimizer.momentum", o.momentum},
                                                  {"optimizer.dampening", o.dampening},
                                                  {"optimizer.weight_decay", o.weight_decay}};
  for (const auto& [field, value] : hyper) {
    // An fp32 recipe rounds hyperparameters to fp32; the oracle must see the same numbers.
    if (!exactly_representable_in_fp32(value)) {
      std::ostringstream why;
      why.precision(17);
      why << "must be exactly representable in fp32 (say " << static_cast<double>(static_cast<float>(value))
          << "), got " << value;
      invalid(field, why.str());
    }
  }
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
  sc.model.arch = parse_enum(kArchitectures, model.string("arch"), model.path_of("arch"));
  sc.model.input_dim = model.integer("input_dim", 1, kMaxDim);
  sc.model.hidden_dim = model.integer_or("hidden_dim", 0, 0, kMaxDim);
  sc.model.output_dim = model.integer("output_dim", 1, kMaxDim);
  sc.model.init_seed = model.seed("init_seed");
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
  data.finish();

  if (top.has("loss")) {
    JsonObjectReader loss(top.at("loss"), top.path_of("loss"));
    sc.loss.kind = parse_enum(kLosses, loss.string_or("kind", "mse"), loss.path_of("kind"));
    sc.loss.reduction = parse_enum(kReductions, loss.string_or("reduction", "mean"),
                                   loss.path_of("reduction"));
    loss.finish();
  }

  JsonObjectReader opt(top.at("optimizer"), top.path_of("optimizer"));
  sc.optimizer.kind = parse_enum(kOptimizers, opt.string("kind"), opt.path_of("kind"));
  sc.optimizer.lr = opt.number("lr", 0.0, 1e3);
  sc.optimizer.momentum = opt.number_or("momentum", 0.0, 0.0, 1.0);
  sc.optimizer.dampening = opt.number_or("dampening", 0.0, 0.0, 1.0);
  sc.optimizer.weight_decay = opt.number_or("weight_decay", 0.0, 0.0, 1e3);
  sc.optimizer.nesterov = opt.boolean_or("nesterov", false);
  opt.finish();

  sc.precision = parse_enum(kPrecisions, top.string_or("precision", "fp32"), top.path_of("precision"));
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
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(std::string("scenario: malformed JSON: ") + e.what());
  }
  return scenario_from_json(json);
}

nlohmann::json to_json(const Scenario& sc) {
  nlohmann::json model = {{"arch", to_string(sc.model.arch)},
                          {"input_dim", sc.model.input_dim},
                          {"output_dim", sc.model.output_dim},
                          {"init_seed", sc.model.init_seed}};
  if (sc.model.arch != Architecture::linear) model["hidden_dim"] = sc.model.hidden_dim;
  return {
      {"model", model},
      {"data",
       {{"seed", sc.data.seed}, {"global_batch", sc.data.global_batch}, {"windows", sc.data.windows}}},
      {"loss", {{"kind", to_string(sc.loss.kind)}, {"reduction", to_string(sc.loss.reduction)}}},
      {"optimizer",
       {{"kind", to_string(sc.optimizer.kind)},
        {"lr", sc.optimizer.lr},
        {"momentum", sc.optimizer.momentum},
        {"dampening", sc.optimizer.dampening},
        {"weight_decay", sc.optimizer.weight_decay},
        {"nesterov", sc.optimizer.nesterov}}},
      {"precision", to_string(sc.precision)},
      {"world_size", sc.world_size},
      {"accumulation_steps", sc.accumulation_steps},
      {"steps", sc.steps},
  };
}

std::string to_json_text(const Scenario& sc) { return to_json(sc).dump(); }

}  // namespace gacc
