#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 6: clipping happens once, after the whole window (and after unscaling): the pre-clip
/// norm equals the large batch's, and the clipped gradient handed to the optimizer equals the
/// large batch's clipped gradient. Applies where clipping is configured (the generators make it
/// active).
class ClippingAfterWindow final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
