#include <map>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include "core/errors.h"
#include "properties/generators.h"

using namespace gacc;

namespace {

std::vector<Scenario> sample(int n, uint64_t seed) {
  std::vector<Scenario> out;
  const auto gen = properties::scenarios();
  for (int i = 0; i < n; ++i) out.push_back(gen(rc::Random(seed + i), rc::kNominalSize).value());
  return out;
}

bool uneven(const Scenario& sc) {
  for (const auto& window : sc.data.windows) {
    for (const auto& rank : window) {
      for (auto m : rank) {
        if (m != rank.front()) return true;
      }
    }
  }
  return false;
}

bool partial(const Scenario& sc) { return window_examples(sc, sc.steps - 1) < sc.data.global_batch; }

}  // namespace

TEST_CASE("every generated scenario is valid and survives JSON", "[generators]") {
  rc::prop("generated scenarios validate and round-trip", [](const Scenario& sc) {
    validate(sc);
    RC_ASSERT(to_json_text(parse_scenario(to_json_text(sc))) == to_json_text(sc));
  });
}

TEST_CASE("the generator reaches the corners", "[generators]") {
  std::map<std::string, int> seen;
  for (const auto& sc : sample(1000, 7)) {
    seen["K = 1"] += sc.accumulation_steps == 1;
    bool size_one = false;
    for (const auto& w : sc.data.windows) {
      for (auto m : w[0]) size_one = size_one || m == 1;
    }
    seen["a micro-batch of one example"] += size_one;
    seen["uneven split"] += uneven(sc);
    seen["partial last window"] += partial(sc);
    seen["several steps"] += sc.steps > 1;
    seen["sum reduction"] += sc.loss.reduction == Reduction::sum;
    for (const auto& arch : all_architectures()) seen["arch " + arch] += to_string(sc.model.arch) == arch;
    for (const auto& kind : all_optimizers()) seen["optimizer " + kind] += to_string(sc.optimizer.kind) == kind;
    for (const auto& kind : all_schedules()) seen["schedule " + kind] += to_string(sc.schedule.kind) == kind;
    for (const auto& kind : all_clippings()) seen["clipping " + kind] += to_string(sc.clipping.kind) == kind;
    seen["nesterov"] += sc.optimizer.nesterov;
    seen["dampened momentum"] += sc.optimizer.dampening > 0 && sc.optimizer.momentum > 0;
    seen["weight decay"] += sc.optimizer.weight_decay > 0;
    seen["amsgrad"] += sc.optimizer.kind != OptimizerKind::sgd && sc.optimizer.amsgrad;
    if (is_token_model(sc.model)) {
      bool length_one = false, all_padding_row = false, no_token_micro_batch = false;
      for (auto length : sc.data.sequence_lengths) {
        length_one = length_one || length == 1;
        all_padding_row = all_padding_row || length == 0;
      }
      for (int s = 0; s < sc.steps; ++s) {
        for (int k = 0; k < micro_batch_count(sc, s); ++k) {
          int64_t tokens = 0;
          const int64_t first = first_example(sc, s, 0, k);
          for (int64_t i = first; i < first + sc.data.windows[s][0][k]; ++i) tokens += sc.data.sequence_lengths[i];
          no_token_micro_batch = no_token_micro_batch || tokens == 0;
        }
      }
      seen["sequence of length 1"] += length_one;
      seen["all-padding row"] += all_padding_row;
      seen["micro-batch without a token"] += no_token_micro_batch;
      seen["ignored targets"] += sc.data.ignored_fraction > 0;
    }
  }
  for (const auto& [corner, count] : seen) {
    INFO(corner << ": " << count << " of 1000");
    CHECK(count >= 10);
  }
  CHECK(seen.size() >= 30);
}

TEST_CASE("shrinking leads to a small, readable scenario", "[generators]") {
  // Shrink a scenario that needs K >= 3 and an uneven split as far as it goes.
  const auto gen = properties::scenarios();
  const auto fails = [](const Scenario& sc) { return sc.accumulation_steps >= 3 && uneven(sc); };
  uint64_t seed = 0;
  auto shrinkable = gen(rc::Random(seed), rc::kNominalSize);
  while (!fails(shrinkable.value())) shrinkable = gen(rc::Random(++seed), rc::kNominalSize);
  for (bool progressed = true; progressed;) {
    progressed = false;
    auto shrinks = shrinkable.shrinks();
    while (auto next = shrinks.next()) {
      if (fails((*next).value())) {
        shrinkable = *next;
        progressed = true;
        break;
      }
    }
  }
  const Scenario minimal = shrinkable.value();
  INFO(to_json_text(minimal));
  CHECK(minimal.accumulation_steps == 3);
  CHECK(minimal.steps == 1);
  CHECK(minimal.model.arch == Architecture::linear);
  CHECK(minimal.model.input_dim == 1);
  CHECK(minimal.model.output_dim == 1);
  CHECK(minimal.data.global_batch == 4);  // sizes {2, 1, 1} in some rotation
  CHECK(minimal.optimizer.momentum == 0.0);
  CHECK(minimal.optimizer.weight_decay == 0.0);
  CHECK(minimal.data.seed == 0);
  CHECK(minimal.model.init_seed == 0);
}
