#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 3: the recipe run with every window as one micro-batch (K = 1: the recipe's own large
/// batch) and run with the scenario's split agree within the two runs' derived tolerances — step
/// 0's gradient and loss, and the parameters, state and buffers along the whole trajectory. Needs
/// no model knowledge beyond the tolerances, so it also judges stacks the oracle cannot model.
class SplitInvariance final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

/// The scenario with each window's micro-batches merged into one (K = 1), per rank.
Scenario unsplit(const Scenario& scenario);

}  // namespace gacc::properties
