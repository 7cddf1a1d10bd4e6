#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 5: a token-mean loss over variable-length sequences is normalized by the total counted
/// tokens of the whole window (across micro-batches and ranks), not per micro-batch: the gradient
/// and loss equal the large batch's token mean.
class TokenNormalization final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
