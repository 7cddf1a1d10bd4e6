#include "properties/gradient_equivalence.h"
#include "properties/property.h"
#include "properties/step_equivalence.h"

namespace gacc::properties {

std::vector<std::unique_ptr<Property>> all_properties() {
  std::vector<std::unique_ptr<Property>> out;
  out.push_back(std::make_unique<GradientEquivalence>());
  out.push_back(std::make_unique<StepEquivalence>());
  return out;
}

}  // namespace gacc::properties
