#include "reference/loss_scale.h"

#include <cmath>

#include "core/floating_point.h"

namespace gacc::reference {

LossScaleState initial_loss_scale(const LossScaleSpec& spec) { return {round_to(kFp32, spec.init_scale), 0}; }

LossScaleState update_loss_scale(const LossScaleSpec& spec, LossScaleState state, bool found_inf) {
  if (found_inf) {
    state.scale = round_to(kFp32, state.scale * spec.backoff_factor);
    state.growth_tracker = 0;
    return state;
  }
  const int64_t successful = state.growth_tracker + 1;
  if (successful == spec.growth_interval) {
    const double grown = round_to(kFp32, state.scale * spec.growth_factor);
    if (std::isfinite(grown)) state.scale = grown;
    state.growth_tracker = 0;
  } else {
    state.growth_tracker = successful;
  }
  return state;
}

}  // namespace gacc::reference
