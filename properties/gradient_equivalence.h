#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 1: at every step, the gradient the optimizer is handed (and its norm, and the window's
/// loss) equals the large-batch one at the recipe's own parameters, within the derived tolerance.
class GradientEquivalence final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
