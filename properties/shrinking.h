#pragma once
/// Greedy shrinking, the one loop every failing check is shrunk with (Note [shrinking]).

#include <optional>
#include <utility>

namespace gacc::properties {

// Note [shrinking]
// ~~~~~~~~~~~~~~~~
// A failing case is shrunk greedily: of the current case's smaller candidates, in the order their
// generator gives them, the first that still fails is taken, and its candidates are tried next,
// until none of them fails (the counterexample is then locally minimal) or the budget of
// evaluations is spent (a smaller one may exist: the report says so, and a larger --shrinks goes
// on). A candidate the check cannot judge (the property does not apply to it, the stack cannot run
// it) is passed over without spending the budget. RapidCheck's shrink trees (gacc run, pitfalls,
// the C++ optimizer API) and the differential splits' candidates go through this loop.

/// What a judge says of one candidate: whether it was evaluated (counts against the budget), and
/// what it found where it still fails.
template <class Finding>
struct ShrinkAttempt {
  bool evaluated = false;
  std::optional<Finding> failing;
};

/// Where shrinking ended.
template <class Point, class Finding>
struct Shrunk {
  Point point;
  Finding finding;
  int evaluations = 0;        ///< candidates evaluated
  int accepted = 0;           ///< smaller candidates that still failed
  bool budget_ended = false;  ///< stopped by the budget, with candidates left untried
};

/// Shrinks `start` (which fails with `finding`). `for_each_candidate(point, visit)` calls
/// `visit(candidate)` for each smaller candidate of `point` until it returns true;
/// `judge(candidate)` returns a ShrinkAttempt<Finding>.
template <class Point, class Finding, class ForEachCandidate, class Judge>
Shrunk<Point, Finding> shrink_greedily(Point start, Finding finding, int budget, ForEachCandidate&& for_each_candidate,
                                       Judge&& judge) {
  Shrunk<Point, Finding> out{std::move(start), std::move(finding)};
  bool progressed = true;
  while (progressed && !out.budget_ended) {
    progressed = false;
    for_each_candidate(out.point, [&](const Point& candidate) {
      if (out.evaluations >= budget) {
        out.budget_ended = true;
        return true;
      }
      ShrinkAttempt<Finding> attempt = judge(candidate);
      if (!attempt.evaluated) return false;
      ++out.evaluations;
      if (!attempt.failing) return false;
      out.point = candidate;
      out.finding = std::move(*attempt.failing);
      ++out.accepted;
      progressed = true;
      return true;
    });
  }
  return out;
}

/// The candidates of a RapidCheck shrink tree (rc::Shrinkable), for shrink_greedily.
struct ShrinkTreeCandidates {
  template <class Shrinkable, class Visit>
  void operator()(const Shrinkable& point, Visit&& visit) const {
    auto candidates = point.shrinks();
    while (auto candidate = candidates.next()) {
      if (visit(*candidate)) return;
    }
  }
};

/// The sentence a report adds where the budget ended shrinking (empty where it did not).
inline const char* shrink_budget_note(bool budget_ended) {
  return budget_ended ? "; stopped by the shrink budget (--shrinks): a smaller counterexample may exist" : "";
}

}  // namespace gacc::properties
