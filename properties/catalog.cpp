#include "properties/batch_norm.h"
#include "properties/clipping.h"
#include "properties/gradient_equivalence.h"
#include "properties/property.h"
#include "properties/schedules_and_counters.h"
#include "properties/split_invariance.h"
#include "properties/step_equivalence.h"
#include "properties/token_normalization.h"

namespace gacc::properties {

std::vector<std::unique_ptr<Property>> all_properties() {
  std::vector<std::unique_ptr<Property>> out;
  out.push_back(std::make_unique<GradientEquivalence>());
  out.push_back(std::make_unique<StepEquivalence>());
  out.push_back(std::make_unique<SplitInvariance>());
  out.push_back(std::make_unique<BatchNormSemantics>());
  out.push_back(std::make_unique<TokenNormalization>());
  out.push_back(std::make_unique<ClippingAfterWindow>());
  out.push_back(std::make_unique<SchedulesAndCounters>());
  return out;
}

}  // namespace gacc::properties
