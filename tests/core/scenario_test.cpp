#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/scenario.h"
#include "tests/support/scenarios.h"

using gacc::InputError;
using gacc::Scenario;
using Catch::Matchers::Contains;

namespace {

nlohmann::json valid_json() { return gacc::to_json(gacc::testing::mlp_scenario()); }

/// Parses `json` and returns the InputError message (fails the test if none is thrown).
std::string error_of(const nlohmann::json& json) {
  try {
    gacc::parse_scenario(json.dump());
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("no InputError for " << json.dump());
  return {};
}

}  // namespace

TEST_CASE("a scenario survives a JSON round trip unchanged", "[scenario]") {
  for (const auto& sc : {gacc::testing::mlp_scenario(), gacc::testing::linear_scenario()}) {
    const std::string text = gacc::to_json_text(sc);
    const Scenario back = gacc::parse_scenario(text);
    CHECK(gacc::to_json_text(back) == text);
    CHECK(back.data.windows == sc.data.windows);
    CHECK(back.optimizer.weight_decay == sc.optimizer.weight_decay);
  }
}

TEST_CASE("optional fields take their documented defaults", "[scenario]") {
  auto json = valid_json();
  json.erase("loss");
  json.erase("precision");
  json.erase("world_size");
  json["optimizer"] = {{"kind", "sgd"}, {"lr", 0.5}};
  const Scenario sc = gacc::parse_scenario(json.dump());
  CHECK(sc.loss.reduction == gacc::Reduction::mean);
  CHECK(sc.precision == gacc::Precision::fp32);
  CHECK(sc.world_size == 1);
  CHECK(sc.optimizer.momentum == 0.0);
  CHECK_FALSE(sc.optimizer.nesterov);
}

TEST_CASE("malformed JSON is an input error", "[scenario]") {
  CHECK_THROWS_WITH(gacc::parse_scenario("{\"model\": "), Contains("malformed JSON"));
  CHECK_THROWS_AS(gacc::parse_scenario(""), InputError);
  CHECK_THROWS_WITH(gacc::parse_scenario("[1, 2]"), Contains("scenario must be a JSON object"));
}

TEST_CASE("an unknown key is named with its path", "[scenario]") {
  auto json = valid_json();
  json["model"]["depth"] = 3;
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.model.depth"));
  json = valid_json();
  json["colour"] = "red";
  CHECK_THAT(error_of(json), Contains("scenario.colour"));
}

TEST_CASE("invalid values are named with their field", "[scenario]") {
  auto json = valid_json();
  json["accumulation_steps"] = 0;
  CHECK_THAT(error_of(json), Contains("scenario.accumulation_steps") && Contains("got 0"));

  json = valid_json();
  json["model"]["input_dim"] = -2;
  CHECK_THAT(error_of(json), Contains("scenario.model.input_dim"));

  json = valid_json();
  json["model"]["hidden_dim"] = 2.5;
  CHECK_THAT(error_of(json), Contains("scenario.model.hidden_dim must be an integer"));

  json = valid_json();
  json["optimizer"]["lr"] = "fast";
  CHECK_THAT(error_of(json), Contains("scenario.optimizer.lr must be a number"));

  json = valid_json();
  json["optimizer"]["lr"] = 0.1;  // not exact in fp32: an fp32 recipe would see another number
  CHECK_THAT(error_of(json), Contains("scenario.optimizer.lr: must be exactly representable in fp32"));

  json = valid_json();
  json["model"]["arch"] = "resnet";
  CHECK_THAT(error_of(json), Contains("scenario.model.arch must be one of linear, mlp_tanh"));

  json = valid_json();
  json["optimizer"]["nesterov"] = true;
  json["optimizer"]["dampening"] = 0.5;
  CHECK_THAT(error_of(json), Contains("scenario.optimizer.nesterov"));

  json = valid_json();
  json["data"]["seed"] = -1;
  CHECK_THAT(error_of(json), Contains("scenario.data.seed must be a non-negative integer"));

  json = valid_json();
  json.erase("steps");
  CHECK_THAT(error_of(json), Contains("scenario.steps is missing"));
}

TEST_CASE("micro-batch sizes must add up to the global batch", "[scenario]") {
  auto json = valid_json();
  json["data"]["windows"][0][0] = {1, 3, 1};  // 5, not 6
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[0]: micro-batch sizes sum to 5, but "
                                      "global_batch is 6"));

  json = valid_json();
  json["data"]["windows"][2][0] = {4, 3};  // the partial last window may hold fewer, not more
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[2]") && Contains("not more"));

  json = valid_json();
  json["data"]["windows"][1][0] = {3, 3};  // a full window needs K micro-batches
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[1][0]: has 2 micro-batches"));

  json = valid_json();
  json["data"]["windows"][0][0] = {0, 3, 3};
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[0][0][0]"));

  json = valid_json();
  json["steps"] = 2;
  CHECK_THAT(error_of(json), Contains("has 3 windows, but steps is 2"));

  json = valid_json();
  json["world_size"] = 2;
  CHECK_THAT(error_of(json), Contains("has 1 ranks, but world_size is 2"));
}

TEST_CASE("data shape helpers number examples through windows, ranks and micro-batches",
          "[scenario]") {
  const Scenario sc = gacc::testing::mlp_scenario();
  CHECK(gacc::micro_batch_count(sc, 0) == 3);
  CHECK(gacc::micro_batch_count(sc, 2) == 2);
  CHECK(gacc::window_examples(sc, 0) == 6);
  CHECK(gacc::window_examples(sc, 2) == 5);
  CHECK(gacc::first_example(sc, 0, 0, 0) == 0);
  CHECK(gacc::first_example(sc, 0, 0, 2) == 4);
  CHECK(gacc::first_example(sc, 1, 0, 1) == 8);
  CHECK(gacc::first_example(sc, 2, 0, 1) == 16);
}
