// Differential mode's files: the case and result files round-trip, and a bad one names the key.

#include <catch2/catch.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <functional>

#include "core/errors.h"
#include "implementations/external/differential.h"
#include "tests/support/differential_stack.h"
#include "tests/support/errors.h"
#include "tests/support/splits.h"

namespace {

using gacc::Splits;
using gacc::testing::message_of;
using gacc::testing::run_stack;
using gacc::testing::uneven_splits;

}  // namespace

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

TEST_CASE("a differential result reads with any number of accumulated steps: their count is a verdict, not an error",
          "[external][differential]") {
  const Splits s = uneven_splits();  // 3 windows
  auto r = run_stack(s, {});
  r.accumulated.pop_back();
  const auto read = gacc::external::decode_differential_result(gacc::external::encode_differential_result(r), s, "r.pt");
  CHECK(read.accumulated.size() == 2);
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
