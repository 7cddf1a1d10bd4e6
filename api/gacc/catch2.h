#pragma once
/// gacc's optimizer checks as Catch2 assertions (Catch2 v2 or v3). Include it before your Catch2
/// header, or instead of it: it includes LibTorch, then Catch2 (see the note on CHECK below).
///
///   TEST_CASE("my Lion accumulates like the large batch") {
///     GACC_CHECK_OPTIMIZER("lion", make_lion);                     // every check must hold
///     GACC_CHECK_OPTIMIZER("lion", make_lion, options);            // with OptimizerCheckOptions
///   }
///   TEST_CASE("the broken Lion is caught") {
///     GACC_CHECK_OPTIMIZER_FAILS("lion-broken", make_broken, options);   // some check must fail
///   }
///
/// Each check is one Catch2 assertion, with the verdict, worst ratio, worst element and, on a
/// failure, the shrunk counterexample and the line that reruns it as its message.

// LibTorch before Catch2: c10 (c10/util/logging_is_not_google_glog.h) defines a CHECK macro of its
// own, a glog-style check that is no Catch2 assertion. Whichever header comes last owns CHECK, so
// in a test that includes both, LibTorch (or this header) must come first. The assertions below
// use Catch2's internal macros, which LibTorch does not define, so they stay Catch2's in any order.
#include <cstdio>
#include <string>

#include "gacc/check_optimizer.h"

#if defined(__has_include)
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif
#else
#include <catch2/catch.hpp>
#endif

#define GACC_CATCH2_CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)
#define GACC_CATCH2_INFO(message) INTERNAL_CATCH_INFO("INFO", message)

namespace gacc::catch2 {

/// A ratio with 3 significant digits ("0.412", "4.1e+03", "inf").
inline std::string format_ratio(double ratio) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", ratio);
  return text;
}

/// What a row says, for a Catch2 message.
inline std::string describe(const OptimizerCheckReport& report, const OptimizerCheckRow& row) {
  std::string text = "gacc " + report.optimizer + ": " + row.check + " " + to_string(row.verdict) + " over " +
                     std::to_string(row.cases) + " cases (seed " + std::to_string(report.seed) +
                     "), worst ratio " + format_ratio(row.worst_ratio) + "\n  claim: " + row.claim +
                     "\n  worst: " + row.worst_detail;
  if (row.verdict == CheckVerdict::fail) {
    text += "\n  counterexample (case " + std::to_string(row.case_index) + ", " + std::to_string(row.shrinks) +
            " shrinks, ratio " + format_ratio(row.counterexample_ratio) + "): " + row.counterexample_detail +
            "\n  scenario: " + row.counterexample + "\n  reproduce: " + row.reproduce;
  }
  return text;
}

/// One Catch2 assertion per check: it must not fail.
inline void check_every_row(const OptimizerCheckReport& report) {
  for (const auto& row : report.rows) {
    GACC_CATCH2_INFO(describe(report, row));
    GACC_CATCH2_CHECK(row.verdict != CheckVerdict::fail);
  }
}

/// One Catch2 assertion: some check must fail (a broken optimizer is caught); the table is its
/// message.
inline void check_some_row_fails(const OptimizerCheckReport& report) {
  GACC_CATCH2_INFO(report.table());
  GACC_CATCH2_CHECK(report.passed() == false);
}

}  // namespace gacc::catch2

/// GACC_CHECK_OPTIMIZER(name, factory[, options]): runs gacc::check_optimizer and asserts, check by
/// check, that none fails.
#define GACC_CHECK_OPTIMIZER(...) ::gacc::catch2::check_every_row(::gacc::check_optimizer(__VA_ARGS__))

/// GACC_CHECK_OPTIMIZER_FAILS(name, factory[, options]): asserts that some check fails — for a
/// deliberately broken optimizer, proving the checks can see its bug.
#define GACC_CHECK_OPTIMIZER_FAILS(...) ::gacc::catch2::check_some_row_fails(::gacc::check_optimizer(__VA_ARGS__))

/// GACC_CHECK_OPTIMIZER_SCENARIO(name, factory, scenario_json): one scenario, as a report's
/// reproduce line gives it.
#define GACC_CHECK_OPTIMIZER_SCENARIO(...) \
  ::gacc::catch2::check_every_row(::gacc::check_optimizer_on_scenario(__VA_ARGS__))
