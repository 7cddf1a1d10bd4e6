// Differential mode: the splits, the case and result files, and the judge — a correct accumulation
// loop passes well below ratio 1, broken ones fail far above it.

#include <catch2/catch.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <functional>
#include <set>

#include "core/errors.h"
#include "implementations/external/differential.h"
#include "tests/support/errors.h"

namespace {

using gacc::testing::message_of;

using gacc::external::DifferentialCounters;
using gacc::external::DifferentialResult;
using gacc::external::DifferentialStep;
using gacc::external::Splits;
using gacc::external::StackTensor;

Splits uneven_splits() {
  Splits s;
  s.seed = 3;
  s.global_batch = 7;
  s.accumulation_steps = 3;
  s.windows = {{{0, 1, 2, 3}, {4}, {5, 6}}, {{7}, {8, 9, 10, 11, 12}, {13}}, {{14, 15}, {16}}};  // last: partial
  return s;
}

// ---- a small stack in LibTorch: a linear model, mean squared error, SGD with weight decay --------

struct Bugs {
  bool mean_of_means = false;         ///< each micro-batch's own mean / K
  bool partial_divided_by_k = false;  ///< each micro-batch's mean / the full window's K, even in a partial one
  bool no_zero_grad = false;          ///< gradients never zeroed
  bool divided_twice = false;         ///< the window-normalized loss divided by K once more
};

std::vector<DifferentialStep> train(const Splits& splits, bool large, torch::ScalarType dtype, const Bugs& bugs,
                                    DifferentialCounters* counters) {
  torch::manual_seed(99);
  const auto inputs = torch::randn({20, 3}).to(dtype);
  const auto targets = torch::randn({20, 2}).to(dtype);
  torch::manual_seed(static_cast<uint64_t>(splits.seed));
  auto weight = torch::randn({2, 3}).to(dtype).requires_grad_();
  auto bias = torch::randn({2}).to(dtype).requires_grad_();
  const int64_t full_k = static_cast<int64_t>(splits.windows.front().size());
  std::vector<DifferentialStep> steps;
  for (const auto& window : splits.windows) {
    std::vector<std::vector<int64_t>> micros = window;
    if (large) {
      std::vector<int64_t> all;
      for (const auto& m : window) all.insert(all.end(), m.begin(), m.end());
      micros = {all};
    }
    int64_t examples = 0;
    for (const auto& m : micros) examples += static_cast<int64_t>(m.size());
    const auto k = static_cast<int64_t>(micros.size());
    double window_loss = 0.0;
    for (const auto& m : micros) {
      const auto rows = torch::tensor(m, torch::kInt64).remainder(20);
      const auto out = inputs.index_select(0, rows).matmul(weight.t()) + bias;
      const auto squared = (out - targets.index_select(0, rows)).pow(2);
      torch::Tensor loss = squared.sum() / static_cast<double>(examples * 2);
      if (bugs.mean_of_means) loss = squared.mean() / static_cast<double>(k);
      if (bugs.partial_divided_by_k) loss = squared.mean() / static_cast<double>(large ? 1 : full_k);
      if (bugs.divided_twice) loss = loss / static_cast<double>(k);
      loss.backward();
      window_loss += loss.item<double>();
      if (counters) ++counters->micro_batches;
    }
    DifferentialStep step;
    step.loss = window_loss;
    const auto record = [](const torch::Tensor& t) {
      const auto flat = t.detach().to(torch::kFloat64).contiguous().reshape(-1);
      return StackTensor{t.sizes().vec(), std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel())};
    };
    step.grad = {record(weight.grad()), record(bias.grad())};
    {
      torch::NoGradGuard no_grad;
      for (auto* p : {&weight, &bias}) p->sub_(0.1 * (p->grad() + 1e-3 * *p));
    }
    if (counters) ++counters->optimizer_steps;
    step.params_after = {record(weight), record(bias)};
    steps.push_back(step);
    if (!bugs.no_zero_grad) {
      weight.mutable_grad().zero_();
      bias.mutable_grad().zero_();
      if (counters) ++counters->zero_grads;
    }
  }
  return steps;
}

DifferentialResult run_stack(const Splits& splits, const Bugs& accumulated_bugs, const Bugs& shared_bugs = {}) {
  Bugs accumulated = accumulated_bugs;
  accumulated.no_zero_grad = accumulated.no_zero_grad || shared_bugs.no_zero_grad;
  DifferentialResult r;
  r.names = {"fc.weight", "fc.bias"};
  r.accumulated = train(splits, false, torch::kFloat64, accumulated, &r.counters);
  r.large_batch = train(splits, true, torch::kFloat64, shared_bugs, nullptr);
  r.large_batch_fp32 = train(splits, true, torch::kFloat32, shared_bugs, nullptr);
  return r;
}

double ratio_of(const std::vector<gacc::external::DifferentialCheck>& checks, const std::string& name) {
  for (const auto& c : checks) {
    if (c.name == name) return c.ratio;
  }
  FAIL("no check " << name);
  return 0.0;
}

}  // namespace

TEST_CASE("generated splits reach K 1 to 6, uneven and partial windows, and are valid", "[external][differential]") {
  std::set<size_t> ks;
  bool uneven = false, partial = false;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const Splits s = gacc::external::generate_splits(seed);
    REQUIRE_NOTHROW(gacc::external::validate(s));
    REQUIRE(s.steps() >= 1);
    REQUIRE(s.steps() <= gacc::external::kMaxDifferentialSteps);
    ks.insert(static_cast<size_t>(s.accumulation_steps));
    // K micro-batches in every window but the last, which holds 1 to K.
    for (int w = 0; w < s.steps(); ++w) {
      const auto micros = static_cast<int64_t>(s.windows[static_cast<size_t>(w)].size());
      REQUIRE((w + 1 < s.steps() ? micros == s.accumulation_steps : micros <= s.accumulation_steps));
    }
    for (const auto& window : s.windows) {
      for (const auto& micro : window) uneven = uneven || micro.size() != window.front().size();
      size_t examples = 0;
      for (const auto& micro : window) examples += micro.size();
      partial = partial || static_cast<int64_t>(examples) < s.global_batch;
    }
    REQUIRE(gacc::external::generate_splits(seed) == s);  // reproducible
  }
  CHECK(ks == std::set<size_t>{1, 2, 3, 4, 5, 6});
  CHECK(uneven);
  CHECK(partial);
}

TEST_CASE("splits JSON round-trips and bad splits name the field", "[external][differential]") {
  const Splits s = uneven_splits();
  CHECK(gacc::external::parse_splits(gacc::external::to_json_text(s)) == s);
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[[0,1],[1]]]})"); }),
             Catch::Contains("splits.windows[0][1][0]: example index 1 appears twice"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[[0,-1]]]})"); }),
             Catch::Contains("splits.windows[0][0][1]: example index -1 is negative"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[]]})"); }),
             Catch::Contains("splits.windows[0]: holds no micro-batch"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[[0]]],"turbo":1})"); }),
             Catch::Contains("unknown key: splits.turbo"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[["a"]]]})"); }),
             Catch::Contains("splits.windows[0][0][0]: not an integer"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"global_batch":1,"windows":[[[0,1]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 2 examples, more than global_batch 1"));
  // K: every window but the last holds K micro-batches (what Trainer, accelerate and Lightning can
  // run); without the key it is the most micro-batches a window holds.
  CHECK(gacc::external::parse_splits(R"({"windows":[[[0],[1]],[[2]]]})").accumulation_steps == 2);
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"windows":[[[0]],[[1],[2]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 1 micro-batches; every window but the last holds "
                             "accumulation_steps (2), the last 1 to 2"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"accumulation_steps":1,"windows":[[[0],[1]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 2 micro-batches"));
  CHECK_THAT(message_of([] { gacc::external::parse_splits(R"({"accumulation_steps":0,"windows":[[[0]]]})"); }),
             Catch::Contains("splits.accumulation_steps: 0 is not at least 1"));
  // Shrinking only ever makes splits smaller, every candidate is valid (K kept in every window but
  // the last), and K itself shrinks.
  bool smaller_k = false;
  for (const auto& candidate : gacc::external::shrink_candidates(s)) {
    REQUIRE_NOTHROW(gacc::external::validate(candidate));
    CHECK(candidate.micro_batches() <= s.micro_batches());
    CHECK_FALSE(candidate == s);
    smaller_k = smaller_k || candidate.accumulation_steps < s.accumulation_steps;
  }
  CHECK(smaller_k);
}

TEST_CASE("a differential case round-trips, and a bad one names the key", "[external][differential]") {
  const Splits s = uneven_splits();
  const auto bytes = gacc::external::encode_differential_case(s);
  CHECK(gacc::external::decode_differential_case(bytes, "case.pt") == s);

  const auto edited = [&bytes](const std::function<void(c10::impl::GenericDict&)>& edit) {
    auto dict = torch::pickle_load(bytes).toGenericDict();
    edit(dict);
    return torch::pickle_save(c10::IValue(dict));
  };
  const auto decode = [](const std::vector<char>& b) {
    return [b] { gacc::external::decode_differential_case(b, "case.pt"); };
  };
  const auto decode_without_k = [&edited](const std::vector<char>&) {
    return gacc::external::decode_differential_case(edited([](auto& d) { (void)d.erase("accumulation_steps"); }), "case.pt");
  };
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert_or_assign("format", std::string("gacc-case")); }))),
             Catch::Contains("case.format: \"gacc-case\", expected \"gacc-differential-case\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert_or_assign("version", int64_t{2}); }))),
             Catch::Contains("case.version: 2"));
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert_or_assign("steps", int64_t{2}); }))),
             Catch::Contains("case.windows: holds 3 entries, expected 2"));
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert_or_assign("accumulation_steps", int64_t{2}); }))),
             Catch::Contains("case.windows[0]: holds 3 micro-batches; every window but the last holds "
                             "accumulation_steps (2)"));
  CHECK(decode_without_k(bytes) == s);  // a file written before the key: K from the windows
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert("extra", int64_t{1}); }))),
             Catch::Contains("case: has an unknown key \"extra\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               auto windows = d.at("windows").toList();
               auto window = windows.get(0).toList();
               window.set(1, torch::tensor({4.0}));
             }))),
             Catch::Contains("case.windows[0][1]: dtype Float, expected int64"));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               auto windows = d.at("windows").toList();
               auto window = windows.get(1).toList();
               window.set(2, torch::tensor({7}, torch::kInt64));
             }))),
             Catch::Contains("case.windows[1][2][0]: example index 7 appears twice"));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               auto dtypes = d.at("dtypes").toGenericDict();
               dtypes.insert_or_assign("large_batch", std::string("float32"));
             }))),
             Catch::Contains("case.dtypes.large_batch: \"float32\", expected \"float64\""));
  CHECK_THAT(message_of(decode({'P', 'K', 3, 4, 0})), Catch::Contains("case.pt: not a file torch.save"));
}

TEST_CASE("a correct accumulation loop passes every differential check well below 1", "[external][differential]") {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Splits s = seed == 0 ? uneven_splits() : gacc::external::generate_splits(seed);
    const auto result = run_stack(s, {});
    // Through the file and back: what gacc reads is what the stack wrote.
    const auto read = gacc::external::decode_differential_result(gacc::external::encode_differential_result(result), s,
                                                                 "result.pt");
    const auto checks = gacc::external::judge_differential(s, read);
    INFO("splits " << gacc::external::to_json_text(s));
    for (const auto& c : checks) {
      INFO(c.name << ": " << c.detail);
      CHECK(c.ratio < 0.5);
    }
    CHECK_FALSE(gacc::external::any_failed(checks));
  }
  // The detail shows the tolerance's derivation.
  const auto checks = gacc::external::judge_differential(uneven_splits(), run_stack(uneven_splits(), {}));
  CHECK_THAT(checks.front().detail, Catch::Contains("2 x (2 x noise64"));
  CHECK_THAT(checks.front().detail, Catch::Contains("noise64 = 2^-29 x"));
}

TEST_CASE("broken accumulation loops fail far above 1", "[external][differential]") {
  const Splits s = uneven_splits();
  SECTION("mean of per-micro-batch means with uneven micro-batches") {
    Bugs bugs;
    bugs.mean_of_means = true;
    const auto checks = gacc::external::judge_differential(s, run_stack(s, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    CHECK(ratio_of(checks, "differential-losses") > 1e6);
    CHECK(ratio_of(checks, "differential-params") > 1e6);
  }
  SECTION("a partial last window divided by the full window's K") {
    Splits even;
    even.seed = 5;
    even.global_batch = 6;
    even.accumulation_steps = 3;
    even.windows = {{{0, 1}, {2, 3}, {4, 5}}, {{6, 7}, {8, 9}}};  // even sizes: only the partial window is wrong
    Bugs bugs;
    bugs.partial_divided_by_k = true;
    const auto checks = gacc::external::judge_differential(even, run_stack(even, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    INFO(checks.front().detail);
    CHECK_THAT(checks.front().detail, Catch::StartsWith("step 1 "));
    // The same loop on full windows only is right.
    even.windows.pop_back();
    CHECK_FALSE(gacc::external::any_failed(gacc::external::judge_differential(even, run_stack(even, bugs))));
  }
  SECTION("a missing zero_grad in the accumulation loop alone") {
    Bugs bugs;
    bugs.no_zero_grad = true;
    const auto checks = gacc::external::judge_differential(s, run_stack(s, bugs));
    CHECK(ratio_of(checks, "differential-gradients") > 1e6);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
  }
  SECTION("a missing zero_grad in every run: the gradients agree, the counters do not") {
    Bugs bugs;
    bugs.no_zero_grad = true;
    const auto checks = gacc::external::judge_differential(s, run_stack(s, {}, bugs));
    CHECK(ratio_of(checks, "differential-gradients") < 1.0);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
    CHECK_THAT(checks[3].detail, Catch::Contains("zero_grad() calls: 0 over 3 windows"));
  }
}

TEST_CASE("scaled, biased and miscounted traces fail; a wrong float32 run cannot loosen the tolerance",
          "[external][differential]") {
  const Splits s = uneven_splits();
  const auto correct = run_stack(s, {});
  SECTION("a gradient scaled by 1 + 1e-9") {
    auto r = correct;
    for (auto& v : r.accumulated[1].grad[0].values) v *= 1.0 + 1e-9;
    CHECK(ratio_of(gacc::external::judge_differential(s, r), "differential-gradients") > 1.0);
  }
  SECTION("a parameter biased by 1e-10") {
    auto r = correct;
    r.accumulated[2].params_after[1].values[0] += 1e-10;
    CHECK(ratio_of(gacc::external::judge_differential(s, r), "differential-params") > 1.0);
  }
  SECTION("a loss off by one part in 1e9") {
    auto r = correct;
    r.accumulated[0].loss *= 1.0 + 1e-9;
    CHECK(ratio_of(gacc::external::judge_differential(s, r), "differential-losses") > 1.0);
  }
  SECTION("an optimizer step too many, a micro-batch too few") {
    auto r = correct;
    r.counters.optimizer_steps += 1;
    r.counters.micro_batches -= 1;
    const auto checks = gacc::external::judge_differential(s, r);
    CHECK(std::isinf(ratio_of(checks, "differential-counters")));
    CHECK_THAT(checks[3].detail, Catch::Contains("optimizer.step() calls: 4 over 3 windows"));
    CHECK_THAT(checks[3].detail, Catch::Contains("micro-batches: 7, but the case holds 8"));
  }
  SECTION("a float32 run that is not rounding noise") {
    auto r = correct;
    for (auto& v : r.large_batch_fp32[0].grad[0].values) v *= 1.1;
    const auto checks = gacc::external::judge_differential(s, r);
    CHECK(ratio_of(checks, "differential-fp32-probe") > 1.0);
  }
}

TEST_CASE("float64 runs that compute in float32 are refused with the cause and the fix, not flagged",
          "[external][differential]") {
  // Hugging Face Llama casts RMSNorm, rotary embeddings, softmax and logits to float32 even in a
  // float64 model: its "float64" runs are float32 ones, their noise measures as 0, and a correct stack
  // would be flagged at ratios of 1e7. gacc says why instead (exit 3).
  const Splits s = uneven_splits();
  const auto correct = run_stack(s, {});
  const auto to_float32 = [](std::vector<gacc::external::DifferentialStep>& run) {
    for (auto& step : run) {
      step.loss = static_cast<float>(step.loss);
      for (auto* tensors : {&step.grad, &step.params_after}) {
        for (auto& t : *tensors) {
          for (auto& v : t.values) v = static_cast<float>(v);
        }
      }
    }
  };
  SECTION("every value of the float64 runs a float32 number") {
    auto r = correct;
    to_float32(r.accumulated);
    to_float32(r.large_batch);
    CHECK_THROWS_WITH(gacc::external::judge_differential(s, r),
                      Catch::Contains("is a float32 number: they were computed in float32, not float64") &&
                          Catch::Contains("model.double()") && Catch::Contains("RMSNorm"));
  }
  SECTION("the float64 large batch equal to the float32 one while the accumulated run differs") {
    auto r = correct;
    r.large_batch = r.large_batch_fp32;
    CHECK_THROWS_AS(gacc::external::judge_differential(s, r), gacc::InputError);
    CHECK_THROWS_WITH(gacc::external::judge_differential(s, r), Catch::Contains("a measured noise of 0"));
  }
  SECTION("only the loss computed in float32 (a loss function that casts the logits)") {
    auto r = correct;
    for (size_t i = 0; i < r.large_batch.size(); ++i) {
      r.large_batch[i].loss = static_cast<float>(r.large_batch[i].loss);
      r.large_batch_fp32[i].loss = r.large_batch[i].loss;
      r.accumulated[i].loss = r.large_batch[i].loss * (1 + 1e-12);  // float64 summation: not bit-equal
    }
    CHECK_THROWS_AS(gacc::external::judge_differential(s, r), gacc::InputError);
    CHECK_THROWS_WITH(gacc::external::judge_differential(s, r),
                      Catch::Contains("the float64 loss was computed in float32") && Catch::Contains("logits.float()"));
  }
}

TEST_CASE("a wrong step count in differential mode is a verdict with its diagnosis, judged on the steps that exist",
          "[external][differential]") {
  const Splits s = uneven_splits();  // 3 windows, the last partial
  const auto name_of = [](const gacc::external::DifferentialCheck& c) { return c.name; };
  SECTION("the partial last window never stepped") {
    auto r = run_stack(s, {});
    r.accumulated.pop_back();
    --r.counters.optimizer_steps;
    const auto checks = gacc::external::judge_differential(s, r);
    CHECK(ratio_of(checks, "differential-counters") == std::numeric_limits<double>::infinity());
    CHECK_THAT(checks[3].detail, Catch::Contains("steps in the accumulated run: 2 over 3 windows (the first 2 compared)"));
    CHECK_THAT(checks[3].diagnosis, Catch::Contains("a step count off by one: 2 optimizer steps reported over 3 windows"));
    CHECK(ratio_of(checks, "differential-gradients") < 1.0);  // the steps that exist are right
    CHECK(name_of(checks[0]) == "differential-gradients");
  }
  SECTION("the last window stepped on every micro-batch") {
    auto r = run_stack(s, {});
    r.accumulated.push_back(r.accumulated.back());
    r.accumulated.push_back(r.accumulated.back());
    const auto checks = gacc::external::judge_differential(s, r);
    CHECK(checks[3].failed());
    CHECK_THAT(checks[3].diagnosis, Catch::Contains("5 optimizer steps over 3 windows: some window stepped before its "
                                                    "last micro-batch"));
  }
  SECTION("no step at all") {
    auto r = run_stack(s, {});
    r.accumulated.clear();
    const auto checks = gacc::external::judge_differential(s, r);
    CHECK(checks[3].failed());
    CHECK_THAT(checks[3].detail, Catch::Contains("steps in the accumulated run: 0 over 3 windows"));
  }
  SECTION("and in the result file: any number of accumulated steps reads, the large batch's must match") {
    auto r = run_stack(s, {});
    r.accumulated.pop_back();
    const auto read = gacc::external::decode_differential_result(gacc::external::encode_differential_result(r), s, "r.pt");
    CHECK(read.accumulated.size() == 2);
  }
}

TEST_CASE("a differential failure names its signature: the loss divided by K twice", "[external][differential]") {
  const Splits s = uneven_splits();
  Bugs bugs;
  bugs.divided_twice = true;
  const auto checks = gacc::external::judge_differential(s, run_stack(s, bugs));
  CHECK(ratio_of(checks, "differential-gradients") > 1e6);
  CHECK_THAT(checks[0].diagnosis, Catch::Contains("the gradient is 1/K = 1/3 of the large batch's: divided by K once "
                                                  "too often"));
  Bugs mean_of_means;  // uneven micro-batches: no factor fits, and none is named
  mean_of_means.mean_of_means = true;
  CHECK(gacc::external::judge_differential(s, run_stack(s, mean_of_means))[0].diagnosis.empty());
  CHECK(gacc::external::judge_differential(s, run_stack(s, {}))[0].diagnosis.empty());
}

TEST_CASE("a bad differential result names the key", "[external][differential]") {
  const Splits s = uneven_splits();
  const auto bytes = gacc::external::encode_differential_result(run_stack(s, {}));
  const auto edited = [&bytes](const std::function<void(c10::impl::GenericDict&)>& edit) {
    auto dict = torch::pickle_load(bytes).toGenericDict();
    edit(dict);
    return torch::pickle_save(c10::IValue(dict));
  };
  const auto decode = [&s](const std::vector<char>& b) {
    return [b, s] { gacc::external::decode_differential_result(b, s, "result.pt"); };
  };
  const auto grad_of = [](c10::impl::GenericDict& d, const std::string& variant, size_t step) {
    return d.at(variant).toGenericDict().at("steps").toList().get(step).toGenericDict().at("grad").toGenericDict();
  };
  CHECK_THAT(message_of(decode(edited([&](auto& d) {
               grad_of(d, "large_batch", 1).insert_or_assign("fc.weight", torch::zeros({3}, torch::kFloat64));
             }))),
             Catch::Contains("result.large_batch.steps[1].grad[\"fc.weight\"]: shape [3], expected [2, 3]"));
  CHECK_THAT(message_of(decode(edited([&](auto& d) {
               grad_of(d, "accumulated", 0).insert_or_assign("fc.bias", torch::zeros({2}, torch::kFloat32));
             }))),
             Catch::Contains("result.accumulated.steps[0].grad[\"fc.bias\"]: dtype Float, expected float64"));
  CHECK_THAT(message_of(decode(edited([&](auto& d) {
               grad_of(d, "large_batch_fp32", 2).insert("fc.extra", torch::zeros({1}, torch::kFloat32));
             }))),
             Catch::Contains("result.large_batch_fp32.steps[2].grad: has an entry \"fc.extra\""));
  CHECK_THAT(message_of(decode(edited([&](auto& d) { (void)grad_of(d, "large_batch", 0).erase("fc.bias"); }))),
             Catch::Contains("result.large_batch.steps[0].grad: has no entry \"fc.bias\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) { (void)d.erase("large_batch_fp32"); }))),
             Catch::Contains("result: has no key \"large_batch_fp32\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               d.at("large_batch").toGenericDict().at("steps").toList().pop_back();
             }))),
             Catch::Contains("result.large_batch.steps: holds 2 entries, expected 3"));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               (void)d.at("accumulated").toGenericDict().at("counters").toGenericDict().erase("zero_grads");
             }))),
             Catch::Contains("result.accumulated.counters: has no key \"zero_grads\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) {
               d.at("accumulated").toGenericDict().at("steps").toList().get(0).toGenericDict().insert("lr", 0.1);
             }))),
             Catch::Contains("result.accumulated.steps[0]: has an unknown key \"lr\""));
  CHECK_THAT(message_of(decode(edited([](auto& d) { d.insert_or_assign("format", std::string("gacc-result")); }))),
             Catch::Contains("result.format: \"gacc-result\", expected \"gacc-differential-result\""));
}
