// Case and result files: what a stack outside gacc reads and writes.

#include <catch2/catch.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "implementations/external/case_file.h"
#include "implementations/torch/training_loop.h"
#include "properties/generators.h"
#include "tests/support/errors.h"

namespace {

using gacc::testing::message_of;

using gacc::Scenario;
using gacc::external::decode_case;
using gacc::external::decode_result;
using gacc::external::encode_case;
using gacc::external::encode_result;

Scenario generated(uint64_t seed, int max_world = 3) {
  auto range = gacc::properties::whole_zoo();
  range.max_world = max_world;
  return gacc::properties::scenarios(range)(rc::Random(seed), rc::kNominalSize).value();
}

c10::impl::GenericDict as_dict(const std::vector<char>& bytes) { return torch::pickle_load(bytes).toGenericDict(); }

c10::IValue entry(const c10::impl::GenericDict& dict, const std::string& key) { return dict.at(c10::IValue(key)); }

std::vector<char> rewritten(const std::vector<char>& bytes, const std::function<void(c10::impl::GenericDict&)>& edit) {
  auto dict = as_dict(bytes);
  edit(dict);
  return torch::pickle_save(c10::IValue(dict));
}

}  // namespace

TEST_CASE("a case file reads back as its scenario, for every model, precision and world size", "[cpu]") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const Scenario scenario = generated(seed);
    CAPTURE(gacc::to_json_text(scenario));
    const Scenario read = decode_case(encode_case(scenario), "case.pt");
    CHECK(gacc::to_json_text(read) == gacc::to_json_text(scenario));
  }
}

TEST_CASE("a case file holds the initial weights and every micro-batch, shaped as documented", "[cpu]") {
  const auto scenario = gacc::parse_scenario(
      R"({"model": {"arch": "mlp_tanh", "input_dim": 3, "hidden_dim": 4, "output_dim": 2, "init_seed": 7},
          "data": {"seed": 11, "global_batch": 6, "windows": [[[1, 3, 2]], [[4, 1]]]},
          "loss": {"kind": "mse", "reduction": "mean"}, "optimizer": {"kind": "sgd", "lr": 0.125},
          "precision": "fp32", "accumulation_steps": 3, "steps": 2})");
  const auto dict = as_dict(encode_case(scenario));
  CHECK(entry(dict, "format").toStringRef() == "gacc-case");
  CHECK(entry(dict, "version").toInt() == 1);
  const auto names = entry(dict, "parameter_names").toListRef();
  REQUIRE(names.size() == 4);
  CHECK(names[0].toStringRef() == "fc1.weight");
  const auto weight = entry(entry(dict, "parameters").toGenericDict(), "fc1.weight").toTensor();
  CHECK(weight.sizes() == c10::IntArrayRef({4, 3}));
  CHECK(weight.scalar_type() == torch::kFloat32);
  const auto batches = entry(dict, "batches").toListRef();
  REQUIRE(batches.size() == 2);
  const auto window0 = batches[0].toListRef().at(0).toListRef();
  REQUIRE(window0.size() == 3);
  CHECK(entry(window0[1].toGenericDict(), "inputs").toTensor().sizes() == c10::IntArrayRef({3, 3}));
  CHECK(entry(window0[1].toGenericDict(), "targets").toTensor().sizes() == c10::IntArrayRef({3, 2}));
  CHECK(batches[1].toListRef().at(0).toListRef().size() == 2);  // the partial last window
}

TEST_CASE("a result file carries a LibTorch recipe's trace exactly", "[cpu]") {
  const gacc::torch_recipes::TorchTrainingLoop loop;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    const Scenario scenario = generated(seed, 1);
    CAPTURE(gacc::to_json_text(scenario));
    const auto trace = loop.run(scenario);
    const auto read = decode_result(encode_result(trace, scenario), scenario, "result.pt");
    REQUIRE(read.steps.size() == trace.steps.size());
    for (size_t s = 0; s < trace.steps.size(); ++s) {
      const auto& a = trace.steps[s];
      const auto& b = read.steps[s];
      // Bit for bit, NaN included (a skipped fp16 step's gradient).
      CHECK(gacc::to_json(trace)["steps"][s].dump() == gacc::to_json(read)["steps"][s].dump());
      CHECK(a.skipped == b.skipped);
    }
    CHECK(read.counters.micro_batches == trace.counters.micro_batches);
    CHECK(read.counters.optimizer_steps == trace.counters.optimizer_steps);
    CHECK(read.counters.zero_grads == trace.counters.zero_grads);
    CHECK(read.counters.scheduler_steps == trace.counters.scheduler_steps);
  }
}

TEST_CASE("a bad case or result file is refused with the key's path", "[cpu]") {
  const auto scenario = gacc::parse_scenario(
      R"({"model": {"arch": "linear", "input_dim": 2, "output_dim": 1, "init_seed": 3},
          "data": {"seed": 5, "global_batch": 3, "windows": [[[2, 1]], [[1, 2]]]},
          "loss": {"kind": "mse", "reduction": "sum"}, "optimizer": {"kind": "adam", "lr": 0.01},
          "precision": "fp32", "accumulation_steps": 2, "steps": 2})");
  const auto case_bytes = encode_case(scenario);
  const gacc::torch_recipes::TorchTrainingLoop loop;
  const auto result_bytes = encode_result(loop.run(scenario), scenario);
  const auto read_case = [&](const std::vector<char>& bytes) { return [&, bytes] { decode_case(bytes, "c.pt"); }; };
  const auto read_result = [&](const std::vector<char>& bytes) {
    return [&, bytes] { decode_result(bytes, scenario, "r.pt"); };
  };

  SECTION("empty, truncated and garbage files") {
    CHECK_THAT(message_of(read_case({})), Catch::Contains("c.pt: the file is empty"));
    const std::vector<char> truncated(case_bytes.begin(), case_bytes.begin() + static_cast<long>(case_bytes.size() / 2));
    CHECK_THAT(message_of(read_case(truncated)), Catch::Contains("c.pt: not a file torch.save"));
    const std::vector<char> garbage(500, 'x');
    CHECK_THAT(message_of(read_result(garbage)), Catch::Contains("r.pt: not a file torch.save"));
  }
  SECTION("not a dictionary, another format, another version") {
    CHECK_THAT(message_of(read_case(torch::pickle_save(c10::IValue(torch::ones({2}))))),
               Catch::Contains("the file holds something other than a dictionary"));
    CHECK_THAT(message_of(read_case(result_bytes)),
               Catch::Contains("case.format: \"gacc-result\", expected \"gacc-case\""));
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) { d.insert_or_assign("version", int64_t{2}); }))),
               Catch::Contains("result.version: 2, but this gacc reads version 1 only"));
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) { d.insert_or_assign("version", std::string("1")); }))),
               Catch::Contains("result.version: is a string, expected an integer"));
  }
  SECTION("missing and unknown keys") {
    CHECK_THAT(message_of(read_case(rewritten(case_bytes, [](auto& d) { (void)d.erase(c10::IValue(std::string("batches"))); }))),
               Catch::Contains("case: has no key \"batches\""));
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) { d.insert("extra", int64_t{1}); }))),
               Catch::Contains("result: has an unknown key \"extra\""));
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) {
                 auto steps = entry(d, "steps").toList();
                 auto step = steps.get(1).toGenericDict();
                 (void)step.at(c10::IValue(std::string("grad"))).toGenericDict().erase(c10::IValue(std::string("linear.bias")));
               }))),
               Catch::Contains("result.steps[1].grad: has no entry \"linear.bias\""));
  }
  SECTION("wrong shapes, dtypes and step counts") {
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) {
                 auto step = entry(d, "steps").toList().get(0).toGenericDict();
                 step.at(c10::IValue(std::string("params_after"))).toGenericDict().insert_or_assign("linear.weight", torch::zeros({2, 1}));
               }))),
               Catch::Contains("result.steps[0].params_after[\"linear.weight\"]: shape [2, 1], expected [1, 2]"));
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) {
                 auto step = entry(d, "steps").toList().get(0).toGenericDict();
                 step.at(c10::IValue(std::string("grad"))).toGenericDict().insert_or_assign("linear.bias", torch::zeros({1}, torch::kInt64));
               }))),
               Catch::Contains("result.steps[0].grad[\"linear.bias\"]: dtype Long, expected float32 or float64"));
    // A step too few is the stack's behaviour, judged (a structural failure), not bad input.
    const auto one_step = decode_result(rewritten(result_bytes,
                                                  [](auto& d) {
                                                    auto steps = entry(d, "steps").toList();
                                                    steps.pop_back();
                                                  }),
                                        scenario, "r.pt");
    CHECK(one_step.steps.size() == 1);
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [](auto& d) {
                 entry(d, "counters").toGenericDict().insert_or_assign("zero_grads", 1.5);
               }))),
               Catch::Contains("result.counters.zero_grads: is a number, expected an integer"));
  }
  SECTION("a tensor whose shape reaches past the end of its storage (found by fuzzing)") {
    // The file states a tensor's shape and its storage separately; nothing in LibTorch's reader
    // checks one against the other, so a damaged file reads back as such a tensor.
    const auto reaching_past = [](int64_t stored) {
      auto t = torch::zeros({stored});
      t.unsafeGetTensorImpl()->set_sizes_contiguous({1, 2});
      return t;
    };
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [&](auto& d) {
                 auto step = entry(d, "steps").toList().get(0).toGenericDict();
                 step.at(c10::IValue(std::string("grad"))).toGenericDict().insert_or_assign("linear.weight", reaching_past(1));
               }))),
               Catch::Contains("result.steps[0].grad[\"linear.weight\"]: shape [1, 2] reaches past the end of its "
                               "storage of 4 bytes"));
    const auto unallocated = [] {
      auto t = torch::zeros({0});
      t.unsafeGetTensorImpl()->set_sizes_contiguous({});
      return t;
    };
    CHECK_THAT(message_of(read_result(rewritten(result_bytes, [&](auto& d) {
                 entry(d, "steps").toList().get(1).toGenericDict().insert_or_assign("loss", unallocated());
               }))),
               Catch::Contains("result.steps[1].loss: shape [] reaches past the end of its storage of 0 bytes"));
    CHECK_THAT(message_of(read_case(rewritten(case_bytes, [&](auto& d) {
                 auto micro = entry(d, "batches").toList().get(0).toList().get(0).toList().get(0).toGenericDict();
                 micro.insert_or_assign("inputs", reaching_past(0));
               }))),
               Catch::Contains("case.batches[0][0][0].inputs: shape [1, 2] reaches past the end of its storage of 0 bytes"));
  }
  SECTION("a case whose data does not match its scenario") {
    CHECK_THAT(message_of(read_case(rewritten(case_bytes, [](auto& d) {
                 entry(d, "parameters").toGenericDict().insert_or_assign("linear.bias", torch::full({1}, 0.5));
               }))),
               Catch::Contains("case.parameters[\"linear.bias\"]: element 0 is 0.5"));
    CHECK_THAT(message_of(read_case(rewritten(case_bytes, [](auto& d) {
                 auto micro = entry(d, "batches").toList().get(0).toList().get(0).toList().get(1).toGenericDict();
                 micro.insert_or_assign("targets", torch::zeros({1, 1}));
               }))),
               Catch::Contains("case.batches[0][0][1].targets: differs from the scenario's data"));
    CHECK_THAT(message_of(read_case(rewritten(case_bytes, [](auto& d) {
                 d.insert_or_assign("scenario", std::string("{\"model\": 1}"));
               }))),
               Catch::Contains("case.scenario: "));
  }
  SECTION("Adam's scalar step count stands for every element") {
    const auto read = decode_result(rewritten(result_bytes, [](auto& d) {
                                      auto step = entry(d, "steps").toList().get(1).toGenericDict();
                                      auto state = step.at(c10::IValue(std::string("optimizer_state"))).toGenericDict();
                                      auto count = state.at(c10::IValue(std::string("step"))).toGenericDict();
                                      count.insert_or_assign("linear.weight", torch::tensor(2.0));
                                      count.insert_or_assign("linear.bias", torch::tensor(2.0));  // shape [] for [1]
                                    }),
                                    scenario, "r.pt");
    CHECK(read.steps[1].optimizer_state.at("step") == std::vector<double>{2.0, 2.0, 2.0});
  }
}
