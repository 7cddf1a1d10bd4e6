#pragma once

#include "properties/property.h"

namespace gacc::properties {

/// Property 8: everything that counts optimizer steps advances once per optimizer step — the
/// optimizer itself, the LR scheduler (the rate at each step equals the schedule's), and the
/// optimizer's own step count (Adam's bias correction).
class SchedulesAndCounters final : public Property {
 public:
  std::string name() const override;
  std::string claim() const override;
  bool applies_to(const Scenario& scenario) const override;
  CaseVerdict check(const CaseContext& context) const override;
};

}  // namespace gacc::properties
