#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "properties/compare.h"

using namespace gacc::properties;
using Catch::Matchers::Contains;

TEST_CASE("an element's ratio is its error over its tolerance", "[compare]") {
  CHECK(element_ratio(1.5, 1.0, 1.0) == 0.5);
  CHECK(element_ratio(1.0, 1.0, 0.0) == 0.0);
  CHECK(std::isinf(element_ratio(1.0 + 1e-9, 1.0, 0.0)));
  CHECK(std::isinf(element_ratio(std::nan(""), 1.0, 1.0)));
  CHECK(std::isinf(element_ratio(std::numeric_limits<double>::infinity(), 1.0, 1e9)));
}

TEST_CASE("the comparator reports the worst element and the first bad one", "[compare]") {
  const auto c = compare({1.0, 2.0, 3.5, 4.0, 9.0}, {1.0, 2.5, 3.0, 4.0, 5.0}, {1.0, 0.25, 1.0, 1.0, 1.0});
  CHECK(c.worst_ratio == 4.0);
  CHECK(c.worst_index == 4);
  CHECK(c.observed == 9.0);
  CHECK(c.expected == 5.0);
  CHECK(c.first_bad_index == 1);
  CHECK(c.bad_count == 2);
  CHECK_THAT(describe(c), Contains("observed 9") && Contains("expected 5") && Contains("ratio 4"));
}

TEST_CASE("vectors of different lengths cannot be compared", "[compare]") {
  CHECK_THROWS_AS(compare({1.0}, {1.0, 2.0}, {1.0, 1.0}), std::invalid_argument);
  const std::vector<double> none;
  CHECK(compare(none, none, none).worst_index == -1);
}

TEST_CASE("ratios print with three significant digits, inf for structural failures", "[compare]") {
  CHECK(format_ratio(0.1234) == "0.123");
  CHECK(format_ratio(12345.0) == "1.23e+04");
  CHECK(format_ratio(0.0) == "0");
  CHECK(format_ratio(std::numeric_limits<double>::infinity()) == "inf");
}
