#pragma once
/// The one comparator: observed against expected, element by element, each against its own derived
/// tolerance (Note [tolerance], reference/bounded.h). Reports the worst ratio and where it is.

#include <cstdint>
#include <string>
#include <vector>

namespace gacc::properties {

/// Result of comparing observed values to expected ones under per-element tolerances.
struct Comparison {
  double worst_ratio = 0.0;  ///< max |observed - expected| / tolerance; +inf for a non-finite value
  int64_t worst_index = -1;  ///< element of the worst ratio (-1 when there are no elements)
  double observed = 0.0;     ///< at worst_index
  double expected = 0.0;
  double tolerance = 0.0;
  int64_t first_bad_index = -1;  ///< first element with ratio >= 1
  int64_t bad_count = 0;         ///< elements with ratio >= 1
};

/// Whether a comparison could see a difference the size of what it checks (Note [looked]).
struct Resolution {
  bool looked = true;
  /// The share of the expected values' squared mass on elements whose tolerance is below their own
  /// magnitude (1 for an exact check).
  double resolved_share = 1.0;
};

// Note [looked]
// ~~~~~~~~~~~~~
// A check looked only if a wrong answer the size of the truth would fail it. Elementwise, an element
// is resolved when its tolerance is finite and below its own expected magnitude (observing zero, or
// twice the value, there fails). A comparison looked when its resolved elements carry at least half
// of the expected values' squared mass, or when every tolerance is zero (an exact check): so a
// tolerance that is infinite, or past the quantity it bounds, over most of a gradient does not
// judge it, while one element the analysis cannot pin down (an Adam step on a gradient within
// rounding of zero, whose sign decides a whole lr) does not void the others. A check that did not
// look is "not judged", never "pass"; a comparison that fails (ratio >= 1) found something and counts
// as judged. Verdicts count judged and not-judged checks apart; a case is judged when every check it
// made looked (reports count cases both ways, and a property that judged no case says so).

/// Whether comparing against `expected` under `tolerance` looked (Note [looked]).
Resolution resolution(const std::vector<double>& expected, const std::vector<double>& tolerance);

/// Ratio of one element: |observed - expected| / tolerance; 0 when equal; +inf when observed is not
/// finite, or differs where the tolerance is zero.
double element_ratio(double observed, double expected, double tolerance);

/// Compares equal-length vectors; throws std::invalid_argument on a length mismatch.
Comparison compare(const std::vector<double>& observed, const std::vector<double>& expected,
                   const std::vector<double>& tolerance);
Comparison compare(double observed, double expected, double tolerance);

/// "observed 0.25, expected 0.125, |error| 0.125, tolerance 3.1e-08, ratio 4.0e+06".
std::string describe(const Comparison& comparison);

/// A number as messages print it: the shortest "%g" that reads back as the same double
/// ("65536", "0.1", "1.5e+20").
std::string format_number(double value);

/// A ratio as printed in tables: 3 significant digits, "inf" for a structural failure.
std::string format_ratio(double ratio);

}  // namespace gacc::properties
