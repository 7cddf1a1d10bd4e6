#include <cmath>
#include <limits>
#include <cstdlib>

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

TEST_CASE("numbers in messages are short and read back exactly", "[compare]") {
  using gacc::properties::format_number;
  CHECK(format_number(65536.0) == "65536");
  CHECK(format_number(0.1) == "0.1");
  CHECK(format_number(0x1p28) == "268435456");
  CHECK(format_number(1.0 / 3.0) == "0.3333333333333333");  // 16 digits suffice
  CHECK(std::strtod(format_number(1e-300 / 7).c_str(), nullptr) == 1e-300 / 7);
  CHECK(format_number(HUGE_VAL) == "inf");
}
