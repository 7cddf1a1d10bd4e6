#include "core/trace.h"

#include <nlohmann/json.hpp>

namespace gacc {

nlohmann::json to_json(const Trace& trace) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& step : trace.steps) {
    steps.push_back({{"grad", step.grad},
                     {"pre_clip_norm", step.pre_clip_norm},
                     {"loss", step.loss},
                     {"lr", step.lr},
                     {"loss_scale", step.loss_scale},
                     {"skipped", step.skipped},
                     {"params_after", step.params_after},
                     {"optimizer_state", step.optimizer_state},
                     {"buffers_after", step.buffers_after}});
  }
  const auto& c = trace.counters;
  return {{"steps", steps},
          {"counters",
           {{"micro_batches", c.micro_batches},
            {"optimizer_steps", c.optimizer_steps},
            {"zero_grads", c.zero_grads},
            {"all_reduces", c.all_reduces},
            {"scheduler_steps", c.scheduler_steps}}}};
}

}  // namespace gacc
