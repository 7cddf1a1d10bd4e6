#pragma once
/// Dynamic loss scaling with torch.amp.GradScaler's semantics (LibTorch has no C++ GradScaler; this
/// is the oracle's, and recipes carry their own). The scale is an fp32 tensor in PyTorch, so every
/// scale is rounded to fp32.

#include <cstdint>

#include "core/scenario.h"

namespace gacc::reference {

struct LossScaleState {
  double scale = 65536.0;      ///< fp32 value
  int64_t growth_tracker = 0;  ///< consecutive optimizer steps without a non-finite gradient
};

/// The state before the first step: init_scale rounded to fp32, tracker 0.
LossScaleState initial_loss_scale(const LossScaleSpec& spec);

/// GradScaler.update() after one optimizer step (once per step, never per micro-batch):
///   found_inf: scale *= backoff_factor, tracker = 0 (the step was skipped);
///   otherwise: tracker += 1, and when it reaches growth_interval, scale *= growth_factor (kept only
///   if finite) and tracker = 0.
LossScaleState update_loss_scale(const LossScaleSpec& spec, LossScaleState state, bool found_inf);

}  // namespace gacc::reference
