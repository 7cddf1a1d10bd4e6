#include "core/scenario.h"

#include <numeric>

#include "core/errors.h"
#include "core/scenario_rules.h"

namespace gacc {
namespace {

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

/// Each enum's table, by overload.
constexpr const auto& table_of(Architecture) { return kArchitectures; }
constexpr const auto& table_of(LossKind) { return kLosses; }
constexpr const auto& table_of(Reduction) { return kReductions; }
constexpr const auto& table_of(OptimizerKind) { return kOptimizers; }
constexpr const auto& table_of(ScheduleKind) { return kSchedules; }
constexpr const auto& table_of(ClippingKind) { return kClippings; }
constexpr const auto& table_of(Precision) { return kPrecisions; }

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

}  // namespace

namespace scenario_rules {

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

template <class Enum>
Enum from_name(const std::string& text, const std::string& path) {
  return parse_enum(table_of(Enum{}), text, path);
}

template Architecture from_name(const std::string&, const std::string&);
template LossKind from_name(const std::string&, const std::string&);
template Reduction from_name(const std::string&, const std::string&);
template OptimizerKind from_name(const std::string&, const std::string&);
template ScheduleKind from_name(const std::string&, const std::string&);
template ClippingKind from_name(const std::string&, const std::string&);
template Precision from_name(const std::string&, const std::string&);

}  // namespace scenario_rules

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

}  // namespace gacc
