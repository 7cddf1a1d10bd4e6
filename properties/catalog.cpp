#include "properties/catalog.h"

namespace gacc::properties {

std::vector<std::unique_ptr<Property>> all_properties() {
  std::vector<std::unique_ptr<Property>> out;
  for (auto make : {gradient_equivalence, step_equivalence, split_invariance, batch_norm_semantics,
                    token_normalization, clipping_after_window, mixed_precision, schedules_and_counters,
                    data_parallel}) {
    out.push_back(make());
  }
  return out;
}

}  // namespace gacc::properties
