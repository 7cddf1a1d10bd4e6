#pragma once
/// `Property`: a claim that must hold of a recipe on every generated scenario, checked against the
/// oracle with derived tolerances.

#include <functional>
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
  /// The ratio measures a documented non-equivalence (BatchNorm against the large batch): a
  /// failure here is expected of a correct recipe, and still shows a pitfall.
  bool expected = false;
  /// Comparisons made, and those among them that did not look (Note [looked], properties/compare.h).
  int checks = 0;
  int checks_not_judged = 0;
  /// What the case showed of the recipe's legitimate choices ("the scheduler holds on steps
  /// GradScaler skipped"): reports count them per recipe.
  std::vector<std::string> notes = {};
  /// For a failure, the known bug its numbers fit (Note [diagnosis], properties/diagnosis.h); the
  /// runner fills it in.
  std::string diagnosis = {};

  /// Whether the case was judged: it failed (found something), or every check it made looked.
  bool judged() const { return !(ratio < 1.0) || (checks > 0 && checks_not_judged == 0); }
};

/// What a property sees of one recipe on one scenario.
struct CaseContext {
  const reference::Oracle& oracle;
  const Trace& trace;
  /// Runs the same recipe on another scenario (a re-split of this one); throws what the recipe
  /// throws.
  std::function<Trace(const Scenario&)> rerun;
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
  /// Judges a recipe's trace of `context.oracle.scenario()`.
  virtual CaseVerdict check(const CaseContext& context) const = 0;
  /// Whether check() reruns the recipe (context.rerun): such a property cannot judge a trace alone
  /// (`gacc case verify` leaves it out).
  virtual bool reruns() const { return false; }
};

/// A property assembled from its parts: how each property file builds its Property.
class PropertyOf final : public Property {
 public:
  using Applies = std::function<bool(const Scenario&)>;
  using Check = std::function<CaseVerdict(const CaseContext&)>;
  PropertyOf(std::string name, std::string claim, Applies applies, Check check, bool reruns = false)
      : name_(std::move(name)),
        claim_(std::move(claim)),
        applies_(std::move(applies)),
        check_(std::move(check)),
        reruns_(reruns) {}
  std::string name() const override { return name_; }
  std::string claim() const override { return claim_; }
  bool applies_to(const Scenario& scenario) const override { return applies_(scenario); }
  CaseVerdict check(const CaseContext& context) const override { return check_(context); }
  bool reruns() const override { return reruns_; }

 private:
  std::string name_, claim_;
  Applies applies_;
  Check check_;
  bool reruns_;
};

/// Every property, in report order (an explicit list).
std::vector<std::unique_ptr<Property>> all_properties();

}  // namespace gacc::properties
