#pragma once
/// `Property`: a claim that must hold of a recipe on every generated scenario, checked against the
/// oracle with derived tolerances.

#include <memory>
#include <string>
#include <vector>

#include "core/scenario.h"
#include "core/trace.h"
#include "reference/oracle.h"

namespace gacc::properties {

/// One property on one recipe on one scenario.
struct CaseVerdict {
  /// Worst observed error / tolerance over everything the property looked at; < 1 holds. +inf for
  /// a structural failure (wrong number of steps, missing state, non-finite values, a recipe error).
  double ratio = 0.0;
  /// Where the worst ratio was and what was compared: enough for a person to act on.
  std::string detail;
};

class Property {
 public:
  virtual ~Property() = default;
  /// Stable name (`--filter`, reports).
  virtual std::string name() const = 0;
  /// The claim, in one sentence.
  virtual std::string claim() const = 0;
  /// Whether the claim is made of this scenario at all (otherwise the case is skipped).
  virtual bool applies_to(const Scenario& scenario) const = 0;
  /// Judges a recipe's trace of `oracle.scenario()`.
  virtual CaseVerdict check(const reference::Oracle& oracle, const Trace& trace) const = 0;
};

/// Every property, in report order (an explicit list).
std::vector<std::unique_ptr<Property>> all_properties();

}  // namespace gacc::properties
