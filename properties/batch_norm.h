#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 4, BatchNorm: accumulation with BatchNorm in training mode is NOT large-batch training
/// — each micro-batch is normalized with its own statistics — but it must be exactly "ghost"
/// BatchNorm over virtual batches of the micro-batch size (running statistics updated once per
/// micro-batch). The ghost check must hold; the measured deviation from the large batch is the
/// documented non-equivalence (an expected failure), reported with the running statistics' update
/// count. (LayerNorm, GroupNorm and RMSNorm are per-example: the equivalence properties cover them.)
class BatchNormSemantics final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
