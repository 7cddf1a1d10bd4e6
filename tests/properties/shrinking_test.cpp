// Note [shrinking]: the one greedy loop every failure is shrunk with.
#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include "properties/shrinking.h"

using namespace gacc::properties;

namespace {

/// Candidates of n: n - 1 and n / 2, smaller first when they differ.
const auto halve_or_decrement = [](const int& n, const auto& visit) {
  std::vector<int> candidates;
  if (n / 2 < n - 1) candidates.push_back(n / 2);
  if (n > 0) candidates.push_back(n - 1);
  for (int c : candidates) {
    if (visit(c)) return;
  }
};

/// "Fails" at and above `threshold`, finding its own value; odd numbers cannot be judged when
/// `odd_unjudgeable`.
auto fails_from(int threshold, bool odd_unjudgeable = false) {
  return [=](const int& n) -> ShrinkAttempt<int> {
    if (odd_unjudgeable && n % 2 == 1) return {};
    return {true, n >= threshold ? std::optional<int>(n) : std::nullopt};
  };
}

}  // namespace

TEST_CASE("shrinking ends at a local minimum, and says the budget did not end it", "[shrinking]") {
  const auto shrunk = shrink_greedily(100, 100, 1000, halve_or_decrement, fails_from(7));
  CHECK(shrunk.point == 7);
  CHECK(shrunk.finding == 7);
  CHECK_FALSE(shrunk.budget_ended);
  CHECK(shrunk.accepted > 0);
  CHECK(shrunk.evaluations >= shrunk.accepted);
}

TEST_CASE("a spent budget stops shrinking and says so", "[shrinking]") {
  const auto shrunk = shrink_greedily(100, 100, 3, halve_or_decrement, fails_from(7));
  CHECK(shrunk.evaluations == 3);
  CHECK(shrunk.budget_ended);
  CHECK(shrunk.point > 7);  // a smaller counterexample exists
  CHECK(shrunk.point < 100);
  CHECK_THAT(shrink_budget_note(true), Catch::Contains("--shrinks"));
  CHECK(std::string(shrink_budget_note(false)).empty());
}

TEST_CASE("candidates that cannot be judged are passed over without spending the budget", "[shrinking]") {
  // From 40: 20, 10 accepted (even); 5 and 9 cannot be judged; 8 is judged and does not fail.
  const auto shrunk = shrink_greedily(40, 40, 1000, halve_or_decrement, fails_from(10, true));
  CHECK(shrunk.point == 10);
  CHECK_FALSE(shrunk.budget_ended);
  const auto none = shrink_greedily(41, 41, 0, halve_or_decrement, fails_from(1));
  CHECK(none.point == 41);
  CHECK(none.budget_ended);  // a zero budget with candidates left
  const auto minimal = shrink_greedily(0, 0, 0, halve_or_decrement, fails_from(0));
  CHECK_FALSE(minimal.budget_ended);  // no candidate at all: minimal, not cut short
}
