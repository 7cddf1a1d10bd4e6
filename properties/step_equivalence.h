#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 2: over S steps, parameters and optimizer state equal large-batch training — step by
/// step from the recipe's own state, and along the whole trajectory from the initial weights. The
/// gradient is checked before each step too (an optimizer such as Adam hides a mis-scaled one).
class StepEquivalence final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
