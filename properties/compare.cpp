#include "properties/compare.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace gacc::properties {

double element_ratio(double observed, double expected, double tolerance) {
  if (!std::isfinite(observed)) return std::numeric_limits<double>::infinity();
  const double error = std::fabs(observed - expected);
  if (error == 0.0) return 0.0;
  if (!(tolerance > 0.0)) return std::numeric_limits<double>::infinity();
  return error / tolerance;
}

Comparison compare(const std::vector<double>& observed, const std::vector<double>& expected,
                   const std::vector<double>& tolerance) {
  if (observed.size() != expected.size() || tolerance.size() != expected.size()) {
    throw std::invalid_argument("compare: " + std::to_string(observed.size()) + " observed, " +
                                std::to_string(expected.size()) + " expected, " +
                                std::to_string(tolerance.size()) + " tolerances");
  }
  Comparison c;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double r = element_ratio(observed[i], expected[i], tolerance[i]);
    if (r >= 1.0) {
      if (c.first_bad_index < 0) c.first_bad_index = static_cast<int64_t>(i);
      ++c.bad_count;
    }
    if (c.worst_index < 0 || r > c.worst_ratio) {
      c.worst_ratio = r;
      c.worst_index = static_cast<int64_t>(i);
      c.observed = observed[i];
      c.expected = expected[i];
      c.tolerance = tolerance[i];
    }
  }
  return c;
}

Resolution resolution(const std::vector<double>& expected, const std::vector<double>& tolerance) {
  Resolution r;
  double total = 0.0, resolved = 0.0;
  bool exact = true;
  for (size_t i = 0; i < expected.size() && i < tolerance.size(); ++i) {
    const double mass = expected[i] * expected[i];
    total += mass;
    if (std::isfinite(tolerance[i]) && tolerance[i] < std::fabs(expected[i])) resolved += mass;
    exact = exact && tolerance[i] == 0.0;
  }
  if (exact) return r;
  r.resolved_share = total > 0.0 ? resolved / total : 0.0;
  r.looked = r.resolved_share >= 0.5;
  return r;
}

Comparison compare(double observed, double expected, double tolerance) {
  return compare(std::vector<double>{observed}, std::vector<double>{expected},
                 std::vector<double>{tolerance});
}

std::string describe(const Comparison& c) {
  char text[200];
  std::snprintf(text, sizeof text, "observed %.9g, expected %.9g, |error| %.3g, tolerance %.3g, ratio %s",
                c.observed, c.expected, std::fabs(c.observed - c.expected), c.tolerance,
                format_ratio(c.worst_ratio).c_str());
  return text;
}

std::string format_number(double value) {
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

std::string format_ratio(double ratio) {
  if (std::isinf(ratio)) return "inf";
  if (std::isnan(ratio)) return "nan";
  char text[32];
  std::snprintf(text, sizeof text, ratio != 0.0 && (ratio < 1e-3 || ratio >= 1e4) ? "%.2e" : "%.3g", ratio);
  return text;
}

}  // namespace gacc::properties
