#pragma once
/// What core/'s scenario files share and no one else needs: the limits a scenario must keep, the
/// structure each architecture implies, and enum names read back (scenario.cpp defines them;
/// scenario_validation.cpp and scenario_json.cpp use them).

#include <cstdint>
#include <string>

#include "core/scenario.h"

namespace gacc::scenario_rules {

/// Limits that keep a hostile or mistyped scenario from allocating the machine away.
inline constexpr int64_t kMaxDim = 4096;
inline constexpr int64_t kMaxWeights = int64_t{1} << 24;
inline constexpr int64_t kMaxGlobalBatch = int64_t{1} << 20;
inline constexpr int64_t kMaxTotalExamples = int64_t{1} << 22;
inline constexpr int64_t kMaxTotalTokens = int64_t{1} << 24;
inline constexpr int64_t kMaxSteps = 100000;
inline constexpr int64_t kMaxAccumulation = 4096;
inline constexpr int64_t kMaxWorld = 64;
inline constexpr int64_t kMaxVocab = 65536;
inline constexpr int64_t kMaxSeqLen = 4096;
inline constexpr int64_t kMaxInterval = int64_t{1} << 40;

/// Whether the architecture has a hidden layer (hidden_dim), a normalization (norm_eps).
bool has_hidden_layer(Architecture arch);
bool has_norm(Architecture arch);
/// The loss the architecture trains with, and that loss's default reduction.
LossKind loss_of(Architecture arch);
Reduction default_reduction(LossKind kind);

/// The enum value named `text`; InputError naming `path` and the choices otherwise. Instantiated
/// (in scenario.cpp) for the enums below.
template <class Enum>
Enum from_name(const std::string& text, const std::string& path);
extern template Architecture from_name(const std::string&, const std::string&);
extern template LossKind from_name(const std::string&, const std::string&);
extern template Reduction from_name(const std::string&, const std::string&);
extern template OptimizerKind from_name(const std::string&, const std::string&);
extern template ScheduleKind from_name(const std::string&, const std::string&);
extern template ClippingKind from_name(const std::string&, const std::string&);
extern template Precision from_name(const std::string&, const std::string&);

}  // namespace gacc::scenario_rules
