#pragma once
/// `Trace`: what a recipe (or the oracle) observed at each optimizer step. Plain doubles: every
/// recipe's numbers convert to double exactly (fp32, bf16, fp16 all embed in double).

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace gacc {

/// Optimizer state tensors by name ("momentum_buffer", ...), each flattened over every parameter
/// in the canonical order of fixtures' model layout. Empty before the first step.
using OptimizerState = std::map<std::string, std::vector<double>>;

struct StepRecord {
  /// The gradient handed to the optimizer: after unscaling and after clipping, flattened in the
  /// canonical parameter order.
  std::vector<double> grad;
  /// Global L2 norm of the gradient before clipping.
  double pre_clip_norm = 0.0;
  /// The window's loss as the recipe computed it (the large-batch loss it stands for).
  double loss = 0.0;
  /// Learning rate the optimizer used at this step.
  double lr = 0.0;
  /// Loss scale in force for this window (1 without loss scaling).
  double loss_scale = 1.0;
  /// True when the step was skipped (non-finite gradient under dynamic loss scaling).
  bool skipped = false;
  /// Parameters after the step, canonical order.
  std::vector<double> params_after;
  /// Optimizer state after the step.
  OptimizerState optimizer_state;
  /// Model buffers after the window (BatchNorm's running statistics), canonical order; empty for
  /// models without buffers.
  std::vector<double> buffers_after;
};

/// How often the recipe did each thing, over the whole scenario.
struct Counters {
  int64_t micro_batches = 0;         ///< forward/backward passes
  int64_t optimizer_steps = 0;       ///< optimizer.step() calls
  int64_t zero_grads = 0;            ///< zero_grad() calls
  int64_t all_reduces = 0;           ///< gradient collectives
  int64_t scheduler_steps = 0;       ///< LR scheduler steps
  int64_t all_reduce_bytes = 0;      ///< payload of the gradient collectives, as one rank sends it
  int64_t metadata_collectives = 0;  ///< collectives of counts and flags (token counts, found_inf)
};

struct Trace {
  std::vector<StepRecord> steps;
  Counters counters;
  /// Data parallel: where another rank's parameters, optimizer state or buffers differ from rank
  /// 0's (the trace is rank 0's); empty when every replica agrees, and on one rank.
  std::string replica_divergence;
};

nlohmann::json to_json(const Trace& trace);
/// The inverse of to_json (null reads back as NaN: JSON has no non-finite numbers). Throws
/// InputError naming the key on anything else.
Trace trace_from_json(const nlohmann::json& json);

}  // namespace gacc
