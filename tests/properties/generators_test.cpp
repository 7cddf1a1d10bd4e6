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
  int k1 = 0, m1 = 0, uneven_splits = 0, partial_windows = 0, nesterov = 0, sums = 0, mlps = 0,
      decay = 0, dampened = 0, multi_step = 0;
  for (const auto& sc : sample(400, 7)) {
    k1 += sc.accumulation_steps == 1;
    for (const auto& w : sc.data.windows) {
      for (auto m : w[0]) m1 += m == 1;
    }
    uneven_splits += uneven(sc);
    partial_windows += partial(sc);
    nesterov += sc.optimizer.nesterov;
    sums += sc.loss.reduction == Reduction::sum;
    mlps += sc.model.arch == Architecture::mlp_tanh;
    decay += sc.optimizer.weight_decay > 0;
    dampened += sc.optimizer.dampening > 0 && sc.optimizer.momentum > 0;
    multi_step += sc.steps > 1;
  }
  for (int count : {k1, m1, uneven_splits, partial_windows, nesterov, sums, mlps, decay, dampened, multi_step}) {
    CHECK(count >= 20);
  }
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
