// Property 5: token normalization across the window.

#include "fixtures/fixtures.h"
#include "properties/catalog.h"
#include "properties/trace_checks.h"

namespace gacc::properties {

namespace {

// Property 5: a token-mean loss over variable-length sequences is normalized by the total counted
// tokens of the whole window (across micro-batches and ranks), not per micro-batch: the gradient
// and loss equal the large batch's token mean.
bool applies(const Scenario& scenario) { return scenario.loss.reduction == Reduction::token_mean; }

CaseVerdict check(const CaseContext& context) {
  const auto& oracle = context.oracle;
  Judgement judgement(oracle);
  check_gradients(oracle, context.trace, judgement);
  CaseVerdict verdict = judgement.verdict();
  // Name the token counts: the information a person needs to see why a per-micro-batch mean differs.
  const auto& sc = oracle.scenario();
  std::string counts;
  for (int s = 0; s < sc.steps; ++s) {
    counts += (s ? "; " : "") + std::string("window ") + std::to_string(s) + ":";
    for (int k = 0; k < micro_batch_count(sc, s); ++k) {
      counts += " " + std::to_string(fixtures::micro_batch(sc, s, 0, k).counted_targets());
    }
  }
  verdict.detail += " [counted tokens per micro-batch: " + counts + "]";
  return verdict;
}

}  // namespace

std::unique_ptr<Property> token_normalization() {
  return std::make_unique<PropertyOf>(
      "token-normalization",
      "A token-mean loss divides by the counted tokens of the whole window, across micro-batches and "
      "ranks: gradient and loss equal the large batch's token mean.",
      applies, check);
}

}  // namespace gacc::properties
