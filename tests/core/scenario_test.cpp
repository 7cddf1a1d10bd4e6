#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/scenario.h"
#include "tests/support/scenarios.h"

using gacc::Architecture;
using gacc::InputError;
using gacc::Scenario;
using Catch::Matchers::Contains;

namespace {

nlohmann::json valid_json() { return gacc::to_json(gacc::testing::mlp_scenario()); }
nlohmann::json json_of(Architecture arch) { return gacc::to_json(gacc::testing::arch_scenario(arch)); }

/// Parses `json` and returns the InputError message, or a message saying there was none (which
/// no expected message contains, so the check fails and shows the JSON).
std::string error_of(const nlohmann::json& json) {
  try {
    gacc::parse_scenario(json.dump());
  } catch (const InputError& e) {
    return e.what();
  }
  return "no InputError for " + json.dump();
}

/// The InputError message of validate(sc), or a message saying there was none.
std::string validate_error(const Scenario& sc) {
  try {
    gacc::validate(sc);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no InputError for " + gacc::to_json_text(sc);
}

/// Every field of two scenarios, compared one by one (so that a field the JSON drops is named).
void check_same(const Scenario& a, const Scenario& b) {
  CHECK(a.model.arch == b.model.arch);
  CHECK(a.model.input_dim == b.model.input_dim);
  CHECK(a.model.hidden_dim == b.model.hidden_dim);
  CHECK(a.model.output_dim == b.model.output_dim);
  CHECK(a.model.groups == b.model.groups);
  CHECK(a.model.norm_eps == b.model.norm_eps);
  CHECK(a.model.batch_norm_momentum == b.model.batch_norm_momentum);
  CHECK(a.model.vocab_size == b.model.vocab_size);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.max_seq_len == b.model.max_seq_len);
  CHECK(a.model.init_seed == b.model.init_seed);
  CHECK(a.data.seed == b.data.seed);
  CHECK(a.data.global_batch == b.data.global_batch);
  CHECK(a.data.windows == b.data.windows);
  CHECK(a.data.sequence_lengths == b.data.sequence_lengths);
  CHECK(a.data.ignored_fraction == b.data.ignored_fraction);
  CHECK(a.loss.kind == b.loss.kind);
  CHECK(a.loss.reduction == b.loss.reduction);
  CHECK(a.optimizer.kind == b.optimizer.kind);
  CHECK(a.optimizer.lr == b.optimizer.lr);
  CHECK(a.optimizer.weight_decay == b.optimizer.weight_decay);
  CHECK(a.optimizer.momentum == b.optimizer.momentum);
  CHECK(a.optimizer.dampening == b.optimizer.dampening);
  CHECK(a.optimizer.nesterov == b.optimizer.nesterov);
  CHECK(a.optimizer.beta1 == b.optimizer.beta1);
  CHECK(a.optimizer.beta2 == b.optimizer.beta2);
  CHECK(a.optimizer.eps == b.optimizer.eps);
  CHECK(a.optimizer.amsgrad == b.optimizer.amsgrad);
  CHECK(a.schedule.kind == b.schedule.kind);
  CHECK(a.schedule.step_size == b.schedule.step_size);
  CHECK(a.schedule.gamma == b.schedule.gamma);
  CHECK(a.schedule.warmup_steps == b.schedule.warmup_steps);
  CHECK(a.schedule.start_factor == b.schedule.start_factor);
  CHECK(a.schedule.t_max == b.schedule.t_max);
  CHECK(a.schedule.eta_min == b.schedule.eta_min);
  CHECK(a.clipping.kind == b.clipping.kind);
  CHECK(a.clipping.max_norm == b.clipping.max_norm);
  CHECK(a.clipping.clip_value == b.clipping.clip_value);
  CHECK(a.precision == b.precision);
  CHECK(a.loss_scale.init_scale == b.loss_scale.init_scale);
  CHECK(a.loss_scale.growth_factor == b.loss_scale.growth_factor);
  CHECK(a.loss_scale.backoff_factor == b.loss_scale.backoff_factor);
  CHECK(a.loss_scale.growth_interval == b.loss_scale.growth_interval);
  CHECK(a.world_size == b.world_size);
  CHECK(a.accumulation_steps == b.accumulation_steps);
  CHECK(a.steps == b.steps);
}

/// Serializes, parses back, and checks that nothing changed: the struct and the text.
void check_round_trip(const Scenario& sc) {
  const std::string text = gacc::to_json_text(sc);
  INFO(text);
  Scenario back;
  REQUIRE_NOTHROW(back = gacc::parse_scenario(text));
  check_same(back, sc);
  CHECK(gacc::to_json_text(back) == text);
  // The parsed JSON object, too, and not only its text.
  CHECK(gacc::to_json(gacc::scenario_from_json(gacc::to_json(sc))) == gacc::to_json(sc));
}

/// A rule: a change to a valid scenario's JSON, and what the error message must contain.
struct Rule {
  const char* what;
  nlohmann::json base;
  std::function<void(nlohmann::json&)> change;
  std::vector<std::string> message;
};

void check_rules(const std::vector<Rule>& rules) {
  for (const auto& rule : rules) {
    INFO(rule.what);
    nlohmann::json json = rule.base;
    REQUIRE_NOTHROW(gacc::parse_scenario(json.dump()));  // the base is valid
    rule.change(json);
    const std::string error = error_of(json);
    for (const auto& part : rule.message) CHECK_THAT(error, Contains(part));
  }
}

nlohmann::json with_optimizer(nlohmann::json json, nlohmann::json optimizer) {
  json["optimizer"] = std::move(optimizer);
  return json;
}

nlohmann::json adam_json() { return with_optimizer(valid_json(), {{"kind", "adam"}, {"lr", 0.001}}); }
nlohmann::json adamw_json() { return with_optimizer(valid_json(), {{"kind", "adamw"}, {"lr", 0.5}}); }

nlohmann::json with_schedule(nlohmann::json schedule) {
  auto json = valid_json();  // lr = 0.125
  json["schedule"] = std::move(schedule);
  return json;
}

nlohmann::json with_clipping(nlohmann::json clipping) {
  auto json = valid_json();
  json["clipping"] = std::move(clipping);
  return json;
}

nlohmann::json fp16_json() {
  auto json = valid_json();
  json["precision"] = "fp16";
  return json;
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

TEST_CASE("a scenario of every architecture survives a JSON round trip, field by field", "[scenario]") {
  for (const Architecture arch : gacc::testing::all_architecture_values()) {
    INFO("arch " << gacc::to_string(arch));
    Scenario sc = gacc::testing::arch_scenario(arch);
    check_round_trip(sc);
    // Non-default values of the architecture's own options survive too.
    if (arch != Architecture::linear && arch != Architecture::mlp_tanh && arch != Architecture::mlp_gelu &&
        arch != Architecture::mlp_routed) {
      sc.model.norm_eps = 0.001;
    }
    if (arch == Architecture::mlp_batch_norm) sc.model.batch_norm_momentum = 0.3;
    if (arch == Architecture::mlp_group_norm) {
      sc.model.hidden_dim = 6;
      sc.model.groups = 3;
    }
    if (arch == Architecture::causal_lm) sc.data.ignored_fraction = 0.7;
    check_round_trip(sc);
  }
}

TEST_CASE("a causal_lm scenario keeps its sequence lengths, all-padding rows and ignored fraction",
          "[scenario]") {
  const Scenario sc = gacc::testing::causal_lm_scenario();
  const Scenario back = gacc::parse_scenario(gacc::to_json_text(sc));
  CHECK(back.data.sequence_lengths == std::vector<int64_t>{3, 0, 5, 1, 4, 2, 0, 5, 1});
  CHECK(back.data.ignored_fraction == 0.25);
  CHECK(back.model.vocab_size == 7);
  CHECK(back.model.d_model == 4);
  CHECK(back.model.max_seq_len == 5);
  CHECK(back.loss.kind == gacc::LossKind::cross_entropy);
  CHECK(back.loss.reduction == gacc::Reduction::token_mean);
  CHECK(back.world_size == 2);
  const auto json = gacc::to_json(sc);
  CHECK(json["data"]["sequence_lengths"] == nlohmann::json({3, 0, 5, 1, 4, 2, 0, 5, 1}));
  CHECK(json["data"]["ignored_fraction"] == 0.25);
  CHECK(json["loss"] == nlohmann::json({{"kind", "cross_entropy"}, {"reduction", "token_mean"}}));
}

TEST_CASE("every optimizer survives a JSON round trip with all its options", "[scenario]") {
  Scenario sgd = gacc::testing::mlp_scenario();
  sgd.optimizer.momentum = 0.5;
  sgd.optimizer.dampening = 0.25;
  sgd.optimizer.weight_decay = 0.001;
  check_round_trip(sgd);
  sgd.optimizer.dampening = 0.0;
  sgd.optimizer.nesterov = true;
  check_round_trip(sgd);

  for (const auto kind : {gacc::OptimizerKind::adam, gacc::OptimizerKind::adamw}) {
    INFO("optimizer " << gacc::to_string(kind));
    Scenario sc = gacc::testing::mlp_scenario();
    sc.optimizer = {};
    sc.optimizer.kind = kind;
    sc.optimizer.lr = 0.001;
    sc.optimizer.weight_decay = 0.01;
    sc.optimizer.beta1 = 0.8;
    sc.optimizer.beta2 = 0.99;
    sc.optimizer.eps = 1e-6;
    sc.optimizer.amsgrad = true;
    check_round_trip(sc);
    sc.optimizer.amsgrad = false;
    check_round_trip(sc);
  }
}

TEST_CASE("every schedule survives a JSON round trip with its parameters", "[scenario]") {
  Scenario sc = gacc::testing::mlp_scenario();
  check_round_trip(sc);  // constant
  sc.schedule = {};
  sc.schedule.kind = gacc::ScheduleKind::step;
  sc.schedule.step_size = 2;
  sc.schedule.gamma = 0.5;
  check_round_trip(sc);
  sc.schedule = {};
  sc.schedule.kind = gacc::ScheduleKind::linear_warmup;
  sc.schedule.warmup_steps = 3;
  sc.schedule.start_factor = 0.125;
  check_round_trip(sc);
  sc.schedule = {};
  sc.schedule.kind = gacc::ScheduleKind::cosine;
  sc.schedule.t_max = 5;
  sc.schedule.eta_min = 0.0625;
  check_round_trip(sc);
}

TEST_CASE("every clipping survives a JSON round trip with its threshold", "[scenario]") {
  Scenario sc = gacc::testing::mlp_scenario();
  check_round_trip(sc);  // none
  sc.clipping.kind = gacc::ClippingKind::norm;
  sc.clipping.max_norm = 0.75;
  check_round_trip(sc);
  sc.clipping = {};
  sc.clipping.kind = gacc::ClippingKind::value;
  sc.clipping.clip_value = 0.01;
  check_round_trip(sc);
}

TEST_CASE("every precision survives a JSON round trip, fp16 with its loss scaling", "[scenario]") {
  Scenario sc = gacc::testing::mlp_scenario();
  sc.precision = gacc::Precision::bf16;
  check_round_trip(sc);
  sc.precision = gacc::Precision::fp16;
  sc.loss_scale.init_scale = 1024;
  sc.loss_scale.growth_factor = 4;
  sc.loss_scale.backoff_factor = 0.25;
  sc.loss_scale.growth_interval = 3;
  check_round_trip(sc);
  const auto json = gacc::to_json(sc);
  CHECK(json["loss_scale"] == nlohmann::json({{"init_scale", 1024.0},
                                              {"growth_factor", 4.0},
                                              {"backoff_factor", 0.25},
                                              {"growth_interval", 3}}));
  // A token model in fp16 with everything else switched on, too.
  Scenario lm = gacc::testing::causal_lm_scenario();
  lm.precision = gacc::Precision::fp16;
  lm.optimizer.kind = gacc::OptimizerKind::adamw;
  lm.optimizer.weight_decay = 0.5;
  lm.optimizer.amsgrad = true;
  lm.schedule.kind = gacc::ScheduleKind::cosine;
  lm.schedule.t_max = 2;
  lm.schedule.eta_min = 0.001;
  lm.clipping.kind = gacc::ClippingKind::norm;
  lm.clipping.max_norm = 2;
  lm.loss.reduction = gacc::Reduction::sum;
  check_round_trip(lm);
}

TEST_CASE("hyperparameters keep their exact double values through JSON", "[scenario]") {
  // Not representable in fp32 (nor exactly in decimal): the text must carry all 17 digits.
  Scenario sc = gacc::testing::mlp_scenario();
  sc.optimizer.lr = 0.1;
  sc.optimizer.momentum = 1.0 / 3;
  sc.optimizer.weight_decay = std::nextafter(0.01, 1.0);
  check_round_trip(sc);
  CHECK(gacc::parse_scenario(gacc::to_json_text(sc)).optimizer.lr == 0.1);
}

TEST_CASE("seeds keep all 64 bits and integral numbers may be written as floats", "[scenario]") {
  Scenario sc = gacc::testing::mlp_scenario();
  sc.model.init_seed = std::numeric_limits<uint64_t>::max();
  sc.data.seed = (uint64_t{1} << 63) + 5;
  check_round_trip(sc);
  auto json = valid_json();
  json["model"]["input_dim"] = 3.0;
  json["steps"] = 3.0;
  const Scenario parsed = gacc::parse_scenario(json.dump());
  CHECK(parsed.model.input_dim == 3);
  CHECK(parsed.steps == 3);
}

TEST_CASE("JSON carries only the fields that apply", "[scenario]") {
  const auto linear = json_of(Architecture::linear);
  for (const char* key : {"hidden_dim", "groups", "norm_eps", "batch_norm_momentum", "vocab_size", "d_model",
                          "max_seq_len"}) {
    INFO(key);
    CHECK_FALSE(linear["model"].contains(key));
  }
  CHECK_FALSE(linear["data"].contains("sequence_lengths"));
  CHECK_FALSE(linear["data"].contains("ignored_fraction"));
  CHECK_FALSE(linear.contains("schedule"));  // constant
  CHECK_FALSE(linear.contains("clipping"));  // none
  CHECK_FALSE(linear.contains("loss_scale"));  // fp32
  CHECK(linear["optimizer"].contains("momentum"));
  CHECK_FALSE(linear["optimizer"].contains("beta1"));
  CHECK_FALSE(linear["optimizer"].contains("amsgrad"));

  CHECK(json_of(Architecture::mlp_tanh)["model"].contains("hidden_dim"));
  CHECK_FALSE(json_of(Architecture::mlp_gelu)["model"].contains("norm_eps"));
  CHECK(json_of(Architecture::mlp_layer_norm)["model"].contains("norm_eps"));
  CHECK_FALSE(json_of(Architecture::mlp_layer_norm)["model"].contains("groups"));
  CHECK_FALSE(json_of(Architecture::mlp_layer_norm)["model"].contains("batch_norm_momentum"));
  CHECK(json_of(Architecture::mlp_group_norm)["model"]["groups"] == 2);
  CHECK(json_of(Architecture::mlp_rms_norm)["model"].contains("norm_eps"));
  CHECK(json_of(Architecture::mlp_batch_norm)["model"]["batch_norm_momentum"] == 0.1);
  const auto routed = json_of(Architecture::mlp_routed);
  CHECK(routed["model"]["arch"] == "mlp_routed");
  for (const char* key : {"input_dim", "hidden_dim", "output_dim"}) CHECK(routed["model"].contains(key));
  for (const char* key : {"groups", "norm_eps", "batch_norm_momentum", "vocab_size"}) {
    INFO(key);
    CHECK_FALSE(routed["model"].contains(key));
  }

  const auto lm = json_of(Architecture::causal_lm);
  for (const char* key : {"input_dim", "hidden_dim", "output_dim", "groups", "batch_norm_momentum"}) {
    INFO(key);
    CHECK_FALSE(lm["model"].contains(key));
  }
  CHECK(lm["model"].contains("norm_eps"));
  CHECK_FALSE(lm["optimizer"].contains("momentum"));
  CHECK_FALSE(lm["optimizer"].contains("nesterov"));
  CHECK(lm["optimizer"]["beta2"] == 0.999);

  Scenario sc = gacc::testing::mlp_scenario();
  sc.schedule.kind = gacc::ScheduleKind::step;
  sc.schedule.step_size = 2;
  CHECK(gacc::to_json(sc)["schedule"] ==
        nlohmann::json({{"kind", "step"}, {"step_size", 2}, {"gamma", 0.1}}));
  sc.schedule = {};
  sc.schedule.kind = gacc::ScheduleKind::linear_warmup;
  CHECK(gacc::to_json(sc)["schedule"] ==
        nlohmann::json({{"kind", "linear_warmup"}, {"warmup_steps", 1}, {"start_factor", 0.25}}));
  sc.schedule = {};
  sc.schedule.kind = gacc::ScheduleKind::cosine;
  CHECK(gacc::to_json(sc)["schedule"] == nlohmann::json({{"kind", "cosine"}, {"t_max", 1}, {"eta_min", 0.0}}));
  sc.clipping.kind = gacc::ClippingKind::norm;
  CHECK(gacc::to_json(sc)["clipping"] == nlohmann::json({{"kind", "norm"}, {"max_norm", 1.0}}));
  sc.clipping.kind = gacc::ClippingKind::value;
  CHECK(gacc::to_json(sc)["clipping"] == nlohmann::json({{"kind", "value"}, {"clip_value", 1.0}}));
  sc.precision = gacc::Precision::bf16;
  CHECK(gacc::to_json(sc)["precision"] == "bf16");
  CHECK_FALSE(gacc::to_json(sc).contains("loss_scale"));
}

TEST_CASE("optional fields take their documented defaults", "[scenario]") {
  auto json = valid_json();
  json.erase("loss");
  json.erase("precision");
  json.erase("world_size");
  json["optimizer"] = {{"kind", "sgd"}, {"lr", 0.5}};
  const Scenario sc = gacc::parse_scenario(json.dump());
  CHECK(sc.loss.kind == gacc::LossKind::mse);
  CHECK(sc.loss.reduction == gacc::Reduction::mean);
  CHECK(sc.precision == gacc::Precision::fp32);
  CHECK(sc.world_size == 1);
  CHECK(sc.optimizer.momentum == 0.0);
  CHECK(sc.optimizer.dampening == 0.0);
  CHECK(sc.optimizer.weight_decay == 0.0);
  CHECK_FALSE(sc.optimizer.nesterov);
  CHECK(sc.schedule.kind == gacc::ScheduleKind::constant);
  CHECK(sc.clipping.kind == gacc::ClippingKind::none);
}

TEST_CASE("a causal_lm scenario without loss trains with token-mean cross-entropy", "[scenario]") {
  auto json = json_of(Architecture::causal_lm);
  json.erase("loss");
  json["data"].erase("ignored_fraction");
  json["model"].erase("norm_eps");
  Scenario sc = gacc::parse_scenario(json.dump());
  CHECK(sc.loss.kind == gacc::LossKind::cross_entropy);
  CHECK(sc.loss.reduction == gacc::Reduction::token_mean);
  CHECK(sc.data.ignored_fraction == 0.0);
  CHECK(sc.model.norm_eps == 1e-5);

  json["loss"] = nlohmann::json::object();
  sc = gacc::parse_scenario(json.dump());
  CHECK(sc.loss.kind == gacc::LossKind::cross_entropy);
  CHECK(sc.loss.reduction == gacc::Reduction::token_mean);

  json["loss"] = {{"kind", "cross_entropy"}};
  CHECK(gacc::parse_scenario(json.dump()).loss.reduction == gacc::Reduction::token_mean);

  json["loss"] = {{"reduction", "sum"}};
  sc = gacc::parse_scenario(json.dump());
  CHECK(sc.loss.kind == gacc::LossKind::cross_entropy);
  CHECK(sc.loss.reduction == gacc::Reduction::sum);

  auto mlp = valid_json();
  mlp["loss"] = {{"reduction", "sum"}};
  sc = gacc::parse_scenario(mlp.dump());
  CHECK(sc.loss.kind == gacc::LossKind::mse);
  CHECK(sc.loss.reduction == gacc::Reduction::sum);
  mlp["loss"] = {{"kind", "mse"}};
  CHECK(gacc::parse_scenario(mlp.dump()).loss.reduction == gacc::Reduction::mean);
}

TEST_CASE("Adam and AdamW take PyTorch's default betas, eps and amsgrad", "[scenario]") {
  for (const char* kind : {"adam", "adamw"}) {
    INFO(kind);
    const Scenario sc = gacc::parse_scenario(with_optimizer(valid_json(), {{"kind", kind}, {"lr", 0.001}}).dump());
    CHECK(sc.optimizer.beta1 == 0.9);
    CHECK(sc.optimizer.beta2 == 0.999);
    CHECK(sc.optimizer.eps == 1e-8);
    CHECK_FALSE(sc.optimizer.amsgrad);
    CHECK(sc.optimizer.weight_decay == 0.0);
    CHECK(sc.optimizer.lr == 0.001);
  }
  const Scenario adamw =
      gacc::parse_scenario(with_optimizer(valid_json(), {{"kind", "adamw"}, {"lr", 0.001}, {"beta2", 0.95}}).dump());
  CHECK(adamw.optimizer.kind == gacc::OptimizerKind::adamw);
  CHECK(adamw.optimizer.beta1 == 0.9);
  CHECK(adamw.optimizer.beta2 == 0.95);
}

TEST_CASE("norm layers, schedules and loss scaling take their documented defaults", "[scenario]") {
  auto bn = json_of(Architecture::mlp_batch_norm);
  bn["model"].erase("batch_norm_momentum");
  bn["model"].erase("norm_eps");
  Scenario sc = gacc::parse_scenario(bn.dump());
  CHECK(sc.model.batch_norm_momentum == 0.1);
  CHECK(sc.model.norm_eps == 1e-5);

  sc = gacc::parse_scenario(with_schedule({{"kind", "step"}, {"step_size", 2}}).dump());
  CHECK(sc.schedule.kind == gacc::ScheduleKind::step);
  CHECK(sc.schedule.step_size == 2);
  CHECK(sc.schedule.gamma == 0.1);
  sc = gacc::parse_scenario(with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 3}}).dump());
  CHECK(sc.schedule.warmup_steps == 3);
  CHECK(sc.schedule.start_factor == 0.25);
  sc = gacc::parse_scenario(with_schedule({{"kind", "cosine"}, {"t_max", 4}}).dump());
  CHECK(sc.schedule.t_max == 4);
  CHECK(sc.schedule.eta_min == 0.0);
  sc = gacc::parse_scenario(with_schedule({{"kind", "constant"}}).dump());
  CHECK(sc.schedule.kind == gacc::ScheduleKind::constant);
  sc = gacc::parse_scenario(with_clipping({{"kind", "none"}}).dump());
  CHECK(sc.clipping.kind == gacc::ClippingKind::none);

  sc = gacc::parse_scenario(fp16_json().dump());
  CHECK(sc.precision == gacc::Precision::fp16);
  CHECK(sc.loss_scale.init_scale == 65536.0);
  CHECK(sc.loss_scale.growth_factor == 2.0);
  CHECK(sc.loss_scale.backoff_factor == 0.5);
  CHECK(sc.loss_scale.growth_interval == 2000);
  auto partial = fp16_json();
  partial["loss_scale"] = {{"init_scale", 1024}};
  sc = gacc::parse_scenario(partial.dump());
  CHECK(sc.loss_scale.init_scale == 1024.0);
  CHECK(sc.loss_scale.growth_factor == 2.0);
  CHECK(sc.loss_scale.backoff_factor == 0.5);
  CHECK(sc.loss_scale.growth_interval == 2000);
}

TEST_CASE("malformed JSON is an input error", "[scenario]") {
  CHECK_THROWS_WITH(gacc::parse_scenario("{\"model\": "), Contains("malformed JSON"));
  CHECK_THROWS_AS(gacc::parse_scenario(""), InputError);
  CHECK_THROWS_WITH(gacc::parse_scenario("[1, 2]"), Contains("scenario must be a JSON object"));
  auto json = valid_json();
  json["model"] = nlohmann::json::array();
  CHECK_THAT(error_of(json), Contains("scenario.model must be a JSON object, got array"));
}

TEST_CASE("an unknown key is named with its path", "[scenario]") {
  auto json = valid_json();
  json["model"]["depth"] = 3;
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.model.depth"));
  json = valid_json();
  json["colour"] = "red";
  CHECK_THAT(error_of(json), Contains("scenario.colour"));
  json = valid_json();
  json["loss"]["weight"] = 2;
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.loss.weight"));
  json = fp16_json();
  json["loss_scale"] = {{"hysteresis", 2}};
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.loss_scale.hysteresis"));
  json = with_schedule({{"kind", "cosine"}, {"t_max", 2}, {"T_max", 2}});
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.schedule.T_max"));
  json = valid_json();
  json["data"]["shuffle"] = true;
  CHECK_THAT(error_of(json), Contains("unknown key: scenario.data.shuffle"));
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
  json["model"]["arch"] = "resnet";
  CHECK_THAT(error_of(json), Contains("scenario.model.arch must be one of linear, mlp_tanh, mlp_gelu, "
                                      "mlp_layer_norm, mlp_group_norm, mlp_rms_norm, mlp_batch_norm, "
                                      "mlp_routed, causal_lm, got \"resnet\""));

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

  json = valid_json();
  json["world_size"] = 65;
  CHECK_THAT(error_of(json), Contains("scenario.world_size must be in [1, 64], got 65"));
}

TEST_CASE("hyperparameters need not be representable in fp32", "[scenario]") {
  // The oracle rounds constants to the recipe's format itself (reference/bounded.h), so a
  // scenario may say 0.1; it keeps the double it was given.
  auto json = valid_json();
  json["optimizer"]["lr"] = 0.1;
  json["optimizer"]["momentum"] = 0.9;
  Scenario sc;
  REQUIRE_NOTHROW(sc = gacc::parse_scenario(json.dump()));
  CHECK(sc.optimizer.lr == 0.1);
  CHECK(sc.optimizer.momentum == 0.9);
}

TEST_CASE("model options are checked against the architecture, naming the field", "[scenario]") {
  const auto gn = json_of(Architecture::mlp_group_norm);
  const auto lm = json_of(Architecture::causal_lm);
  const auto ln = json_of(Architecture::mlp_layer_norm);
  const auto bn = json_of(Architecture::mlp_batch_norm);
  const auto linear = json_of(Architecture::linear);
  check_rules({
      {"groups that do not divide hidden_dim", gn, [](auto& j) { j["model"]["groups"] = 3; },
       {"scenario.model.groups: 3 groups do not divide hidden_dim 4"}},
      {"more groups than hidden features", gn, [](auto& j) { j["model"]["groups"] = 8; },
       {"scenario.model.groups: must be in [1, 4], got 8"}},
      {"zero groups", gn, [](auto& j) { j["model"]["groups"] = 0; }, {"scenario.model.groups must be in [1,"}},
      {"GroupNorm without groups", gn, [](auto& j) { j["model"].erase("groups"); },
       {"scenario.model.groups is missing"}},
      {"groups for another arch", valid_json(), [](auto& j) { j["model"]["groups"] = 2; },
       {"scenario.model.groups does not apply to arch mlp_tanh"}},
      {"groups for LayerNorm", ln, [](auto& j) { j["model"]["groups"] = 2; },
       {"scenario.model.groups does not apply to arch mlp_layer_norm"}},
      {"hidden_dim for linear", linear, [](auto& j) { j["model"]["hidden_dim"] = 4; },
       {"scenario.model.hidden_dim does not apply to arch linear"}},
      {"input_dim for causal_lm", lm, [](auto& j) { j["model"]["input_dim"] = 3; },
       {"scenario.model.input_dim does not apply to arch causal_lm"}},
      {"hidden_dim for causal_lm", lm, [](auto& j) { j["model"]["hidden_dim"] = 3; },
       {"scenario.model.hidden_dim does not apply to arch causal_lm"}},
      {"output_dim for causal_lm", lm, [](auto& j) { j["model"]["output_dim"] = 3; },
       {"scenario.model.output_dim does not apply to arch causal_lm"}},
      {"vocab_size for an MLP", valid_json(), [](auto& j) { j["model"]["vocab_size"] = 5; },
       {"scenario.model.vocab_size does not apply to arch mlp_tanh"}},
      {"d_model for linear", linear, [](auto& j) { j["model"]["d_model"] = 5; },
       {"scenario.model.d_model does not apply to arch linear"}},
      {"max_seq_len for an MLP", valid_json(), [](auto& j) { j["model"]["max_seq_len"] = 5; },
       {"scenario.model.max_seq_len does not apply to arch mlp_tanh"}},
      {"norm_eps without a norm layer", valid_json(), [](auto& j) { j["model"]["norm_eps"] = 1e-5; },
       {"scenario.model.norm_eps does not apply to arch mlp_tanh"}},
      {"norm_eps for linear", linear, [](auto& j) { j["model"]["norm_eps"] = 1e-5; },
       {"scenario.model.norm_eps does not apply to arch linear"}},
      {"norm_eps for GELU", json_of(Architecture::mlp_gelu), [](auto& j) { j["model"]["norm_eps"] = 1e-5; },
       {"scenario.model.norm_eps does not apply to arch mlp_gelu"}},
      {"norm_eps for mlp_routed", json_of(Architecture::mlp_routed), [](auto& j) { j["model"]["norm_eps"] = 1e-5; },
       {"scenario.model.norm_eps does not apply to arch mlp_routed"}},
      {"groups for mlp_routed", json_of(Architecture::mlp_routed), [](auto& j) { j["model"]["groups"] = 2; },
       {"scenario.model.groups does not apply to arch mlp_routed"}},
      {"mlp_routed without hidden_dim", json_of(Architecture::mlp_routed), [](auto& j) { j["model"].erase("hidden_dim"); },
       {"scenario.model.hidden_dim is missing"}},
      {"mlp_routed without output_dim", json_of(Architecture::mlp_routed), [](auto& j) { j["model"].erase("output_dim"); },
       {"scenario.model.output_dim is missing"}},
      {"batch_norm_momentum for LayerNorm", ln, [](auto& j) { j["model"]["batch_norm_momentum"] = 0.1; },
       {"scenario.model.batch_norm_momentum does not apply to arch mlp_layer_norm"}},
      {"batch_norm_momentum for causal_lm", lm, [](auto& j) { j["model"]["batch_norm_momentum"] = 0.1; },
       {"scenario.model.batch_norm_momentum does not apply to arch causal_lm"}},
      {"a zero norm_eps", ln, [](auto& j) { j["model"]["norm_eps"] = 0; },
       {"scenario.model.norm_eps: must be in (0, 1], got 0"}},
      {"a zero norm_eps in causal_lm", lm, [](auto& j) { j["model"]["norm_eps"] = 0; },
       {"scenario.model.norm_eps: must be in (0, 1]"}},
      {"a norm_eps above 1", ln, [](auto& j) { j["model"]["norm_eps"] = 2; },
       {"scenario.model.norm_eps must be in [0, 1], got 2"}},
      {"a BatchNorm momentum above 1", bn, [](auto& j) { j["model"]["batch_norm_momentum"] = 1.5; },
       {"scenario.model.batch_norm_momentum must be in [0, 1], got 1.5"}},
      {"a vocabulary of one token", lm, [](auto& j) { j["model"]["vocab_size"] = 1; },
       {"scenario.model.vocab_size must be in [2, 65536], got 1"}},
      {"causal_lm without d_model", lm, [](auto& j) { j["model"].erase("d_model"); },
       {"scenario.model.d_model is missing"}},
      {"a zero max_seq_len", lm, [](auto& j) { j["model"]["max_seq_len"] = 0; },
       {"scenario.model.max_seq_len must be in [1, 4096], got 0"}},
      {"a regressor without input_dim", linear, [](auto& j) { j["model"].erase("input_dim"); },
       {"scenario.model.input_dim is missing"}},
      {"an MLP without hidden_dim", valid_json(), [](auto& j) { j["model"].erase("hidden_dim"); },
       {"scenario.model.hidden_dim is missing"}},
      {"too many weights in an MLP", valid_json(),
       [](auto& j) {
         j["model"]["input_dim"] = 4096;
         j["model"]["hidden_dim"] = 4096;
         j["model"]["output_dim"] = 4096;
       },
       {"scenario.model: has more than 16777216 weights"}},
      {"too many weights in causal_lm", lm,
       [](auto& j) {
         j["model"]["vocab_size"] = 65536;
         j["model"]["d_model"] = 256;
       },
       {"scenario.model: has more than 16777216 weights"}},
      {"a negative init_seed", valid_json(), [](auto& j) { j["model"]["init_seed"] = -3; },
       {"scenario.model.init_seed must be a non-negative integer"}},
  });
}

TEST_CASE("mlp_routed counts both experts' weights against the limit", "[scenario]") {
  // 4096 + 4096 x 2048 weights fit in 2^24; with a second expert, 4096 + 2 x 4096 x 2048 do not.
  for (const Architecture arch : {Architecture::mlp_tanh, Architecture::mlp_routed}) {
    INFO(gacc::to_string(arch));
    auto json = json_of(arch);
    json["model"]["input_dim"] = 1;
    json["model"]["hidden_dim"] = 4096;
    json["model"]["output_dim"] = 2048;
    if (arch == Architecture::mlp_tanh) {
      CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
    } else {
      CHECK_THAT(error_of(json), Contains("scenario.model: has more than 16777216 weights"));
    }
  }
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

  json = valid_json();
  json["data"]["windows"][2][0] = nlohmann::json::array();
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[2][0]: has 0 micro-batches, but "
                                      "accumulation_steps is 3 (the last window may hold fewer, at least 1)"));

  json = valid_json();
  json["data"]["windows"][2][0] = {1, 1, 1, 1};
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[2][0]: has 4 micro-batches"));

  json = valid_json();
  json["data"]["windows"][0][0] = {7, 1, 1};  // above global_batch on its own
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[0][0][0]: micro-batch size must be in "
                                      "[1, global_batch = 6], got 7"));

  json = valid_json();
  json["data"]["windows"] = "all";
  CHECK_THAT(error_of(json), Contains("scenario.data.windows must be an array of windows"));
  json = valid_json();
  json["data"]["windows"][1] = 6;
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[1] must be an array with one list per rank"));
  json = valid_json();
  json["data"]["windows"][1][0] = 6;
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[1][0] must be an array of micro-batch sizes"));
}

TEST_CASE("every rank of a window takes the same number of micro-batches", "[scenario]") {
  auto json = json_of(Architecture::causal_lm);  // W = 2, K = 2: [[1, 2], [2, 1]], [[2], [1]]
  json["data"]["windows"][0][1] = {3};
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[0][1]: has 1 micro-batches, but rank 0 has 2"));
  json = json_of(Architecture::causal_lm);
  json["data"]["windows"][1][1] = {1, 1};  // the last window: the counts still agree across ranks
  json["data"]["sequence_lengths"].push_back(2);
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[1][1]: has 2 micro-batches, but rank 0 has 1"));
}

TEST_CASE("a BatchNorm micro-batch needs at least two examples", "[scenario]") {
  auto json = json_of(Architecture::mlp_batch_norm);
  json["data"]["windows"][0][0] = {1, 3, 2};
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[0][0][0]: a BatchNorm micro-batch needs at "
                                      "least 2 examples"));
  json = json_of(Architecture::mlp_batch_norm);
  json["data"]["windows"][2][0] = {3, 1};
  CHECK_THAT(error_of(json), Contains("scenario.data.windows[2][0][1]: a BatchNorm"));
  // Other architectures take micro-batches of one example.
  for (const auto arch : {Architecture::mlp_layer_norm, Architecture::mlp_group_norm, Architecture::mlp_rms_norm}) {
    json = json_of(arch);
    json["data"]["windows"][0][0] = {1, 3, 2};
    CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
  }
}

TEST_CASE("sequence lengths are checked against the windows and max_seq_len", "[scenario]") {
  const auto lm = json_of(Architecture::causal_lm);  // 9 examples, max_seq_len 5
  check_rules({
      {"one length too many", lm, [](auto& j) { j["data"]["sequence_lengths"].push_back(1); },
       {"scenario.data.sequence_lengths: has 10 lengths, but the windows hold 9 examples"}},
      {"one length too few", lm, [](auto& j) { j["data"]["sequence_lengths"].erase(8); },
       {"scenario.data.sequence_lengths: has 8 lengths, but the windows hold 9 examples"}},
      {"a length above max_seq_len", lm, [](auto& j) { j["data"]["sequence_lengths"][4] = 6; },
       {"scenario.data.sequence_lengths[4]: must be in [0, 5], got 6"}},
      {"a negative length", lm, [](auto& j) { j["data"]["sequence_lengths"][0] = -1; },
       {"scenario.data.sequence_lengths[0] must be in [0, 4096], got -1"}},
      {"a fractional length", lm, [](auto& j) { j["data"]["sequence_lengths"][2] = 1.5; },
       {"scenario.data.sequence_lengths[2] must be an integer"}},
      {"lengths that are not an array", lm, [](auto& j) { j["data"]["sequence_lengths"] = 3; },
       {"scenario.data.sequence_lengths must be an array of lengths"}},
      {"causal_lm without lengths", lm, [](auto& j) { j["data"].erase("sequence_lengths"); },
       {"scenario.data.sequence_lengths is missing"}},
      {"a window without tokens", lm,
       [](auto& j) {
         for (int i : {6, 7, 8}) j["data"]["sequence_lengths"][i] = 0;
       },
       {"scenario.data.sequence_lengths: the window of step 1 holds no token"}},
      {"the first window without tokens", lm,
       [](auto& j) {
         for (int i = 0; i < 6; ++i) j["data"]["sequence_lengths"][i] = 0;
       },
       {"scenario.data.sequence_lengths: the window of step 0 holds no token"}},
      {"all targets ignored", lm, [](auto& j) { j["data"]["ignored_fraction"] = 1.0; },
       {"scenario.data.ignored_fraction: must be in [0, 1), got 1"}},
      {"a negative ignored fraction", lm, [](auto& j) { j["data"]["ignored_fraction"] = -0.5; },
       {"scenario.data.ignored_fraction must be in [0, 1], got -0.5"}},
      {"lengths for a regressor", valid_json(),
       [](auto& j) { j["data"]["sequence_lengths"] = std::vector<int>(16, 1); },
       {"scenario.data.sequence_lengths does not apply to arch mlp_tanh"}},
      {"an ignored fraction for a regressor", json_of(Architecture::linear),
       [](auto& j) { j["data"]["ignored_fraction"] = 0.0; },
       {"scenario.data.ignored_fraction does not apply to arch linear"}},
  });
  // A window with tokens somewhere is fine, even if most of its sequences are all padding.
  auto json = lm;
  for (int i : {6, 8}) json["data"]["sequence_lengths"][i] = 0;
  CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
  json["data"]["sequence_lengths"][4] = 5;  // max_seq_len itself is allowed
  json["data"]["ignored_fraction"] = 0.999;
  CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
}

TEST_CASE("the loss must match the architecture and the reduction the loss", "[scenario]") {
  const auto lm = json_of(Architecture::causal_lm);
  check_rules({
      {"mse for causal_lm", lm, [](auto& j) { j["loss"] = {{"kind", "mse"}}; },
       {"scenario.loss.kind: arch causal_lm trains with cross_entropy, not mse"}},
      {"cross_entropy for an MLP", valid_json(), [](auto& j) { j["loss"] = {{"kind", "cross_entropy"}}; },
       {"scenario.loss.kind: arch mlp_tanh trains with mse, not cross_entropy"}},
      {"cross_entropy for BatchNorm", json_of(Architecture::mlp_batch_norm),
       [](auto& j) { j["loss"] = {{"kind", "cross_entropy"}, {"reduction", "sum"}}; },
       {"scenario.loss.kind: arch mlp_batch_norm trains with mse, not cross_entropy"}},
      {"token_mean for mse", valid_json(), [](auto& j) { j["loss"]["reduction"] = "token_mean"; },
       {"scenario.loss.reduction: mse reduces by mean or sum, not token_mean"}},
      {"mean for cross_entropy", lm, [](auto& j) { j["loss"]["reduction"] = "mean"; },
       {"scenario.loss.reduction: cross_entropy reduces by token_mean or sum, not mean"}},
      {"an unknown loss", valid_json(), [](auto& j) { j["loss"]["kind"] = "hinge"; },
       {"scenario.loss.kind must be one of mse, cross_entropy, got \"hinge\""}},
      {"an unknown reduction", valid_json(), [](auto& j) { j["loss"]["reduction"] = "max"; },
       {"scenario.loss.reduction must be one of mean, sum, token_mean, got \"max\""}},
      {"a loss that is not an object", valid_json(), [](auto& j) { j["loss"] = "mse"; },
       {"scenario.loss must be a JSON object"}},
  });
  auto json = lm;
  json["loss"]["reduction"] = "sum";
  CHECK(gacc::parse_scenario(json.dump()).loss.reduction == gacc::Reduction::sum);
}

TEST_CASE("optimizer options are checked against the optimizer, naming the field", "[scenario]") {
  check_rules({
      {"momentum for adam", adam_json(), [](auto& j) { j["optimizer"]["momentum"] = 0.9; },
       {"scenario.optimizer.momentum does not apply to optimizer adam"}},
      {"dampening for adamw", adamw_json(), [](auto& j) { j["optimizer"]["dampening"] = 0.0; },
       {"scenario.optimizer.dampening does not apply to optimizer adamw"}},
      {"nesterov for adam", adam_json(), [](auto& j) { j["optimizer"]["nesterov"] = false; },
       {"scenario.optimizer.nesterov does not apply to optimizer adam"}},
      {"beta1 for sgd", valid_json(), [](auto& j) { j["optimizer"]["beta1"] = 0.9; },
       {"scenario.optimizer.beta1 does not apply to optimizer sgd"}},
      {"beta2 for sgd", valid_json(), [](auto& j) { j["optimizer"]["beta2"] = 0.999; },
       {"scenario.optimizer.beta2 does not apply to optimizer sgd"}},
      {"eps for sgd", valid_json(), [](auto& j) { j["optimizer"]["eps"] = 1e-8; },
       {"scenario.optimizer.eps does not apply to optimizer sgd"}},
      {"amsgrad for sgd", valid_json(), [](auto& j) { j["optimizer"]["amsgrad"] = true; },
       {"scenario.optimizer.amsgrad does not apply to optimizer sgd"}},
      {"nesterov without momentum", valid_json(),
       [](auto& j) {
         j["optimizer"]["momentum"] = 0;
         j["optimizer"]["nesterov"] = true;
       },
       {"scenario.optimizer.nesterov: needs momentum > 0 and dampening = 0"}},
      {"nesterov with dampening", valid_json(),
       [](auto& j) {
         j["optimizer"]["dampening"] = 0.25;
         j["optimizer"]["nesterov"] = true;
       },
       {"scenario.optimizer.nesterov: needs momentum > 0 and dampening = 0"}},
      {"adamw with lr * weight_decay = 1", adamw_json(), [](auto& j) { j["optimizer"]["weight_decay"] = 2; },
       {"scenario.optimizer.weight_decay: lr * weight_decay reaches 1; it must stay below 1"}},
      {"adamw with lr * weight_decay > 1", adamw_json(), [](auto& j) { j["optimizer"]["weight_decay"] = 10; },
       {"scenario.optimizer.weight_decay: lr * weight_decay reaches 5; it must stay below 1"}},
      {"adamw whose step schedule grows lr * weight_decay to 1", adamw_json(),
       [](auto& j) {
         j["optimizer"]["weight_decay"] = 1.5;
         j["schedule"] = {{"kind", "step"}, {"step_size", 1}, {"gamma", 4.0}};
       },
       {"scenario.optimizer.weight_decay: lr * weight_decay reaches"}},
      {"a step schedule that grows lr past 1000", valid_json(),
       [](auto& j) {
         j["optimizer"]["lr"] = 1000;
         j["schedule"] = {{"kind", "step"}, {"step_size", 1}, {"gamma", 1000.0}};
       },
       {"scenario.schedule: the learning rate reaches"}},
      {"a momentum of 1", valid_json(), [](auto& j) { j["optimizer"]["momentum"] = 1; },
       {"scenario.optimizer.momentum: must be in [0, 1), got 1"}},
      {"a dampening above 1", valid_json(), [](auto& j) { j["optimizer"]["dampening"] = 1.5; },
       {"scenario.optimizer.dampening must be in [0, 1], got 1.5"}},
      {"a beta1 of 1", adam_json(), [](auto& j) { j["optimizer"]["beta1"] = 1; },
       {"scenario.optimizer.beta1: must be in [0, 1), got 1"}},
      {"a beta2 of 1", adamw_json(), [](auto& j) { j["optimizer"]["beta2"] = 1; },
       {"scenario.optimizer.beta2: must be in [0, 1), got 1"}},
      {"a zero eps", adam_json(), [](auto& j) { j["optimizer"]["eps"] = 0; },
       {"scenario.optimizer.eps: must be in (0, 1], got 0"}},
      {"a zero lr", valid_json(), [](auto& j) { j["optimizer"]["lr"] = 0; },
       {"scenario.optimizer.lr: must be in (0, 1000], got 0"}},
      {"an lr above 1000", valid_json(), [](auto& j) { j["optimizer"]["lr"] = 2000; },
       {"scenario.optimizer.lr must be in [0, 1000]"}},
      {"no lr", adam_json(), [](auto& j) { j["optimizer"].erase("lr"); }, {"scenario.optimizer.lr is missing"}},
      {"no kind", valid_json(), [](auto& j) { j["optimizer"].erase("kind"); },
       {"scenario.optimizer.kind is missing"}},
      {"an unknown optimizer", valid_json(), [](auto& j) { j["optimizer"]["kind"] = "rmsprop"; },
       {"scenario.optimizer.kind must be one of sgd, adam, adamw, got \"rmsprop\""}},
      {"a non-boolean amsgrad", adam_json(), [](auto& j) { j["optimizer"]["amsgrad"] = "yes"; },
       {"scenario.optimizer.amsgrad must be true or false"}},
      {"a non-boolean nesterov", valid_json(), [](auto& j) { j["optimizer"]["nesterov"] = 1; },
       {"scenario.optimizer.nesterov must be true or false"}},
      {"a negative weight decay", adam_json(), [](auto& j) { j["optimizer"]["weight_decay"] = -1; },
       {"scenario.optimizer.weight_decay must be in [0, 1000]"}},
  });
  // Just below the AdamW bound, and Adam's L2 decay, which has no such bound.
  auto json = adamw_json();
  json["optimizer"]["weight_decay"] = 1.5;
  CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
  json = with_optimizer(valid_json(), {{"kind", "adam"}, {"lr", 0.5}, {"weight_decay", 2}});
  CHECK_NOTHROW(gacc::parse_scenario(json.dump()));
  json = valid_json();
  json["optimizer"]["dampening"] = 0;
  json["optimizer"]["nesterov"] = true;
  CHECK(gacc::parse_scenario(json.dump()).optimizer.nesterov);
}

TEST_CASE("schedule options are checked against the schedule, naming the field", "[scenario]") {
  check_rules({
      {"cosine eta_min above lr", with_schedule({{"kind", "cosine"}, {"t_max", 3}}),
       [](auto& j) { j["schedule"]["eta_min"] = 0.25; },
       {"scenario.schedule.eta_min: must be in [0, 0.125], got 0.25"}},
      {"cosine without t_max", with_schedule({{"kind", "cosine"}, {"t_max", 3}}),
       [](auto& j) { j["schedule"].erase("t_max"); }, {"scenario.schedule.t_max is missing"}},
      {"a zero t_max", with_schedule({{"kind", "cosine"}, {"t_max", 3}}), [](auto& j) { j["schedule"]["t_max"] = 0; },
       {"scenario.schedule.t_max must be in [1, 100000], got 0"}},
      {"step without step_size", with_schedule({{"kind", "step"}, {"step_size", 2}}),
       [](auto& j) { j["schedule"].erase("step_size"); }, {"scenario.schedule.step_size is missing"}},
      {"a zero gamma", with_schedule({{"kind", "step"}, {"step_size", 2}}), [](auto& j) { j["schedule"]["gamma"] = 0; },
       {"scenario.schedule.gamma: must be in (0, 1000], got 0"}},
      {"a zero start_factor", with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 2}}),
       [](auto& j) { j["schedule"]["start_factor"] = 0; },
       {"scenario.schedule.start_factor: must be in (0, 1], got 0"}},
      {"a start_factor above 1", with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 2}}),
       [](auto& j) { j["schedule"]["start_factor"] = 2; }, {"scenario.schedule.start_factor must be in [0, 1]"}},
      {"zero warmup steps", with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 2}}),
       [](auto& j) { j["schedule"]["warmup_steps"] = 0; },
       {"scenario.schedule.warmup_steps must be in [1, 100000], got 0"}},
      {"gamma for cosine", with_schedule({{"kind", "cosine"}, {"t_max", 3}}),
       [](auto& j) { j["schedule"]["gamma"] = 0.5; }, {"scenario.schedule.gamma does not apply to schedule cosine"}},
      {"t_max for step", with_schedule({{"kind", "step"}, {"step_size", 2}}),
       [](auto& j) { j["schedule"]["t_max"] = 2; },
       {"scenario.schedule.t_max does not apply to schedule step"}},
      {"eta_min for linear_warmup", with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 2}}),
       [](auto& j) { j["schedule"]["eta_min"] = 0; },
       {"scenario.schedule.eta_min does not apply to schedule linear_warmup"}},
      {"warmup_steps for constant", with_schedule({{"kind", "constant"}}),
       [](auto& j) { j["schedule"]["warmup_steps"] = 2; },
       {"scenario.schedule.warmup_steps does not apply to schedule constant"}},
      {"step_size for linear_warmup", with_schedule({{"kind", "linear_warmup"}, {"warmup_steps", 2}}),
       [](auto& j) { j["schedule"]["step_size"] = 2; },
       {"scenario.schedule.step_size does not apply to schedule linear_warmup"}},
      {"an unknown schedule", with_schedule({{"kind", "constant"}}),
       [](auto& j) { j["schedule"]["kind"] = "exponential"; },
       {"scenario.schedule.kind must be one of constant, step, linear_warmup, cosine, got \"exponential\""}},
      {"a schedule without kind", with_schedule({{"kind", "constant"}}), [](auto& j) { j["schedule"].erase("kind"); },
       {"scenario.schedule.kind is missing"}},
  });
  // eta_min may equal lr (a flat cosine).
  CHECK_NOTHROW(gacc::parse_scenario(with_schedule({{"kind", "cosine"}, {"t_max", 3}, {"eta_min", 0.125}}).dump()));
}

TEST_CASE("clipping options are checked against the clipping kind, naming the field", "[scenario]") {
  check_rules({
      {"clip_value for norm clipping", with_clipping({{"kind", "norm"}, {"max_norm", 1}}),
       [](auto& j) { j["clipping"]["clip_value"] = 1; },
       {"scenario.clipping.clip_value does not apply to clipping norm"}},
      {"max_norm for value clipping", with_clipping({{"kind", "value"}, {"clip_value", 1}}),
       [](auto& j) { j["clipping"]["max_norm"] = 1; },
       {"scenario.clipping.max_norm does not apply to clipping value"}},
      {"max_norm without clipping", with_clipping({{"kind", "none"}}), [](auto& j) { j["clipping"]["max_norm"] = 1; },
       {"scenario.clipping.max_norm does not apply to clipping none"}},
      {"clip_value without clipping", with_clipping({{"kind", "none"}}),
       [](auto& j) { j["clipping"]["clip_value"] = 1; },
       {"scenario.clipping.clip_value does not apply to clipping none"}},
      {"a zero max_norm", with_clipping({{"kind", "norm"}, {"max_norm", 1}}),
       [](auto& j) { j["clipping"]["max_norm"] = 0; },
       {"scenario.clipping.max_norm: must be in (0,"}},
      {"a zero clip_value", with_clipping({{"kind", "value"}, {"clip_value", 1}}),
       [](auto& j) { j["clipping"]["clip_value"] = 0; }, {"scenario.clipping.clip_value: must be in (0,"}},
      {"norm clipping without max_norm", with_clipping({{"kind", "norm"}, {"max_norm", 1}}),
       [](auto& j) { j["clipping"].erase("max_norm"); }, {"scenario.clipping.max_norm is missing"}},
      {"value clipping without clip_value", with_clipping({{"kind", "value"}, {"clip_value", 1}}),
       [](auto& j) { j["clipping"].erase("clip_value"); }, {"scenario.clipping.clip_value is missing"}},
      {"an unknown clipping", with_clipping({{"kind", "none"}}), [](auto& j) { j["clipping"]["kind"] = "adaptive"; },
       {"scenario.clipping.kind must be one of none, norm, value, got \"adaptive\""}},
  });
}

TEST_CASE("loss scaling applies to fp16 only and is checked, naming the field", "[scenario]") {
  auto bf16 = valid_json();
  bf16["precision"] = "bf16";
  check_rules({
      {"loss_scale for fp32", valid_json(), [](auto& j) { j["loss_scale"] = {{"init_scale", 1024}}; },
       {"scenario.loss_scale does not apply to precision fp32 (fp16 only)"}},
      {"loss_scale for bf16", bf16, [](auto& j) { j["loss_scale"] = nlohmann::json::object(); },
       {"scenario.loss_scale does not apply to precision bf16 (fp16 only)"}},
      {"a growth factor of 1", fp16_json(), [](auto& j) { j["loss_scale"] = {{"growth_factor", 1}}; },
       {"scenario.loss_scale.growth_factor: must be in (1, 1000000], got 1"}},
      {"a backoff factor of 1", fp16_json(), [](auto& j) { j["loss_scale"] = {{"backoff_factor", 1}}; },
       {"scenario.loss_scale.backoff_factor: must be in (0, 1), got 1"}},
      {"a backoff factor of 0", fp16_json(), [](auto& j) { j["loss_scale"] = {{"backoff_factor", 0}}; },
       {"scenario.loss_scale.backoff_factor: must be in (0, 1), got 0"}},
      {"a zero initial scale", fp16_json(), [](auto& j) { j["loss_scale"] = {{"init_scale", 0}}; },
       {"scenario.loss_scale.init_scale: must be in (0,"}},
      {"a zero growth interval", fp16_json(), [](auto& j) { j["loss_scale"] = {{"growth_interval", 0}}; },
       {"scenario.loss_scale.growth_interval must be in [1, 1099511627776], got 0"}},
      {"a fractional growth interval", fp16_json(), [](auto& j) { j["loss_scale"] = {{"growth_interval", 2.5}}; },
       {"scenario.loss_scale.growth_interval must be an integer"}},
      {"loss_scale that is not an object", fp16_json(), [](auto& j) { j["loss_scale"] = 1024; },
       {"scenario.loss_scale must be a JSON object"}},
      {"an unknown precision", valid_json(), [](auto& j) { j["precision"] = "fp8"; },
       {"scenario.precision must be one of fp32, bf16, fp16, got \"fp8\""}},
  });
}

TEST_CASE("validate names the field of rules that JSON cannot reach", "[scenario]") {
  using gacc::testing::arch_scenario;
  Scenario sc = arch_scenario(Architecture::causal_lm);
  sc.model.input_dim = 3;
  CHECK_THAT(validate_error(sc),
             Contains("scenario.model: input_dim, hidden_dim and output_dim do not apply to arch causal_lm"));
  sc = arch_scenario(Architecture::linear);
  sc.model.hidden_dim = 4;
  CHECK_THAT(validate_error(sc), Contains("scenario.model.hidden_dim: does not apply to arch linear"));
  sc = arch_scenario(Architecture::mlp_tanh);
  sc.model.d_model = 4;
  CHECK_THAT(validate_error(sc),
             Contains("scenario.model: vocab_size, d_model and max_seq_len apply to arch causal_lm only"));
  sc = arch_scenario(Architecture::mlp_layer_norm);
  sc.model.groups = 2;
  CHECK_THAT(validate_error(sc), Contains("scenario.model.groups: applies to arch mlp_group_norm only"));
  sc = arch_scenario(Architecture::mlp_gelu);
  sc.data.sequence_lengths = std::vector<int64_t>(16, 1);
  CHECK_THAT(validate_error(sc), Contains("scenario.data.sequence_lengths: applies to arch causal_lm only"));
  sc = arch_scenario(Architecture::linear);
  sc.data.ignored_fraction = 0.5;
  CHECK_THAT(validate_error(sc), Contains("scenario.data.ignored_fraction: applies to arch causal_lm only"));
  sc = arch_scenario(Architecture::mlp_rms_norm);
  sc.model.norm_eps = std::numeric_limits<double>::quiet_NaN();
  CHECK_THAT(validate_error(sc), Contains("scenario.model.norm_eps: must be in (0, 1]"));
  sc = arch_scenario(Architecture::mlp_batch_norm);
  sc.model.batch_norm_momentum = -0.5;
  CHECK_THAT(validate_error(sc), Contains("scenario.model.batch_norm_momentum: must be in [0, 1]"));
  sc = arch_scenario(Architecture::mlp_tanh);
  sc.optimizer.lr = std::numeric_limits<double>::infinity();
  CHECK_THAT(validate_error(sc), Contains("scenario.optimizer.lr: must be in (0, 1000]"));
  sc = arch_scenario(Architecture::mlp_tanh);
  sc.precision = gacc::Precision::fp16;
  sc.loss_scale.growth_interval = 0;
  CHECK_THAT(validate_error(sc), Contains("scenario.loss_scale.growth_interval: must be in [1,"));
  sc = arch_scenario(Architecture::causal_lm);
  sc.loss.reduction = gacc::Reduction::mean;
  CHECK_THAT(validate_error(sc), Contains("scenario.loss.reduction"));
  sc = arch_scenario(Architecture::causal_lm);
  sc.data.sequence_lengths[3] = 9;
  CHECK_THAT(validate_error(sc), Contains("scenario.data.sequence_lengths[3]: must be in [0, 5], got 9"));
}

TEST_CASE("validate checks every range of a scenario built in code, naming the field", "[scenario]") {
  using gacc::testing::arch_scenario;
  struct Case {
    const char* what;
    Architecture arch;
    std::function<void(Scenario&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"a zero input_dim", Architecture::linear, [](Scenario& s) { s.model.input_dim = 0; },
       "scenario.model.input_dim: must be in [1, 4096], got 0"},
      {"a zero output_dim", Architecture::mlp_gelu, [](Scenario& s) { s.model.output_dim = 0; },
       "scenario.model.output_dim: must be in [1, 4096], got 0"},
      {"a zero hidden_dim", Architecture::mlp_tanh, [](Scenario& s) { s.model.hidden_dim = 0; },
       "scenario.model.hidden_dim: must be in [1, 4096], got 0"},
      {"a one-token vocabulary", Architecture::causal_lm, [](Scenario& s) { s.model.vocab_size = 1; },
       "scenario.model.vocab_size: must be in [2, 65536], got 1"},
      {"a zero d_model", Architecture::causal_lm, [](Scenario& s) { s.model.d_model = 0; },
       "scenario.model.d_model: must be in [1, 4096], got 0"},
      {"a zero max_seq_len", Architecture::causal_lm, [](Scenario& s) { s.model.max_seq_len = 0; },
       "scenario.model.max_seq_len: must be in [1, 4096], got 0"},
      {"GroupNorm with zero groups", Architecture::mlp_group_norm, [](Scenario& s) { s.model.groups = 0; },
       "scenario.model.groups: must be in [1, 4], got 0"},
      {"a zero global batch", Architecture::mlp_tanh, [](Scenario& s) { s.data.global_batch = 0; },
       "scenario.data.global_batch: must be in [1, 1048576], got 0"},
      {"zero ranks", Architecture::mlp_tanh, [](Scenario& s) { s.world_size = 0; },
       "scenario.world_size: must be in [1, 64], got 0"},
      {"zero accumulation steps", Architecture::mlp_tanh, [](Scenario& s) { s.accumulation_steps = 0; },
       "scenario.accumulation_steps: must be in [1, 4096], got 0"},
      {"zero steps", Architecture::mlp_tanh, [](Scenario& s) { s.steps = 0; },
       "scenario.steps: must be in [1, 100000], got 0"},
      {"more than 2^22 examples", Architecture::linear,
       [](Scenario& s) {
         s.data.global_batch = int64_t{1} << 20;
         s.accumulation_steps = 1;
         s.steps = 5;
         s.data.windows.assign(5, {{int64_t{1} << 20}});
       },
       "scenario.data.windows: hold more than 4194304 examples"},
      {"more than 2^24 tokens", Architecture::causal_lm,
       [](Scenario& s) {
         s.model.max_seq_len = 4096;
         s.data.global_batch = 4097;
         s.world_size = 1;
         s.accumulation_steps = 1;
         s.steps = 1;
         s.data.windows = {{{4097}}};
         s.data.sequence_lengths.assign(4097, 4096);
       },
       "scenario.data.sequence_lengths: hold too many tokens"},
      {"a negative weight decay", Architecture::mlp_tanh, [](Scenario& s) { s.optimizer.weight_decay = -1; },
       "scenario.optimizer.weight_decay: must be in [0, 1000], got -1"},
      {"a dampening above 1", Architecture::mlp_tanh, [](Scenario& s) { s.optimizer.dampening = 1.5; },
       "scenario.optimizer.dampening: must be in [0, 1], got 1.5"},
      {"a zero step_size", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.schedule.kind = gacc::ScheduleKind::step;
         s.schedule.step_size = 0;
       },
       "scenario.schedule.step_size: must be in [1, 100000], got 0"},
      {"zero warmup steps", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.schedule.kind = gacc::ScheduleKind::linear_warmup;
         s.schedule.warmup_steps = 0;
       },
       "scenario.schedule.warmup_steps: must be in [1, 100000], got 0"},
      {"a zero t_max", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.schedule.kind = gacc::ScheduleKind::cosine;
         s.schedule.t_max = 0;
       },
       "scenario.schedule.t_max: must be in [1, 100000], got 0"},
      {"a negative eta_min", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.schedule.kind = gacc::ScheduleKind::cosine;
         s.schedule.eta_min = -0.5;
       },
       "scenario.schedule.eta_min: must be in [0, 0.125], got -0.5"},
      {"an infinite max_norm", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.clipping.kind = gacc::ClippingKind::norm;
         s.clipping.max_norm = std::numeric_limits<double>::infinity();
       },
       "scenario.clipping.max_norm: must be in (0, 1e+30], got inf"},
      {"a negative clip_value", Architecture::mlp_tanh,
       [](Scenario& s) {
         s.clipping.kind = gacc::ClippingKind::value;
         s.clipping.clip_value = -1;
       },
       "scenario.clipping.clip_value: must be in (0, 1e+30], got -1"},
      {"a zero initial loss scale", Architecture::causal_lm,
       [](Scenario& s) {
         s.precision = gacc::Precision::fp16;
         s.loss_scale.init_scale = 0;
       },
       "scenario.loss_scale.init_scale: must be in (0, "},
      {"mse for causal_lm", Architecture::causal_lm, [](Scenario& s) { s.loss.kind = gacc::LossKind::mse; },
       "scenario.loss.kind: arch causal_lm trains with cross_entropy, not mse"},
      {"token_mean for linear", Architecture::linear,
       [](Scenario& s) { s.loss.reduction = gacc::Reduction::token_mean; },
       "scenario.loss.reduction: mse reduces by mean or sum, not token_mean"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Scenario sc = arch_scenario(c.arch);
    c.change(sc);
    CHECK_THAT(validate_error(sc), Contains(c.message));
  }
  // Settings that do not apply are not checked: clipping thresholds without clipping, loss
  // scaling outside fp16, a schedule's parameters under another schedule.
  Scenario sc = arch_scenario(Architecture::mlp_tanh);
  sc.clipping.max_norm = -1;
  sc.clipping.clip_value = -1;
  sc.loss_scale.growth_factor = 0;
  sc.schedule.t_max = 0;
  sc.schedule.step_size = 0;
  CHECK_NOTHROW(gacc::validate(sc));
}

TEST_CASE("the scenarios of every architecture used by the tests are valid", "[scenario]") {
  for (const Architecture arch : gacc::testing::all_architecture_values()) {
    INFO(gacc::to_string(arch));
    CHECK_NOTHROW(gacc::validate(gacc::testing::arch_scenario(arch)));
  }
}

TEST_CASE("enumerations have one name each, listed in order", "[scenario]") {
  CHECK(gacc::all_architectures() == std::vector<std::string>{"linear", "mlp_tanh", "mlp_gelu", "mlp_layer_norm",
                                                              "mlp_group_norm", "mlp_rms_norm", "mlp_batch_norm",
                                                              "mlp_routed", "causal_lm"});
  const auto archs = gacc::testing::all_architecture_values();
  REQUIRE(archs.size() == gacc::all_architectures().size());
  for (size_t i = 0; i < archs.size(); ++i) CHECK(gacc::to_string(archs[i]) == gacc::all_architectures()[i]);
  CHECK(gacc::all_optimizers() == std::vector<std::string>{"sgd", "adam", "adamw"});
  CHECK(gacc::all_schedules() == std::vector<std::string>{"constant", "step", "linear_warmup", "cosine"});
  CHECK(gacc::all_clippings() == std::vector<std::string>{"none", "norm", "value"});
  CHECK(gacc::all_precisions() == std::vector<std::string>{"fp32", "bf16", "fp16"});
  CHECK(gacc::all_losses() == std::vector<std::string>{"mse (mean)", "mse (sum)", "cross_entropy (token_mean)",
                                                       "cross_entropy (sum)"});
  CHECK(gacc::to_string(gacc::LossKind::mse) == "mse");
  CHECK(gacc::to_string(gacc::LossKind::cross_entropy) == "cross_entropy");
  CHECK(gacc::to_string(gacc::Reduction::mean) == "mean");
  CHECK(gacc::to_string(gacc::Reduction::sum) == "sum");
  CHECK(gacc::to_string(gacc::Reduction::token_mean) == "token_mean");
  CHECK(gacc::to_string(gacc::OptimizerKind::adamw) == "adamw");
  CHECK(gacc::to_string(gacc::ScheduleKind::linear_warmup) == "linear_warmup");
  CHECK(gacc::to_string(gacc::ClippingKind::value) == "value");
  CHECK(gacc::to_string(gacc::Precision::bf16) == "bf16");
}

TEST_CASE("only causal_lm is a token model and only BatchNorm couples the batch", "[scenario]") {
  for (const Architecture arch : gacc::testing::all_architecture_values()) {
    INFO(gacc::to_string(arch));
    gacc::ModelSpec m;
    m.arch = arch;
    CHECK(gacc::is_token_model(m) == (arch == Architecture::causal_lm));
    CHECK(gacc::is_batch_coupled(m) == (arch == Architecture::mlp_batch_norm));
  }
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
  CHECK(gacc::total_examples(sc) == 17);
}

TEST_CASE("data shape helpers number the examples of every rank", "[scenario]") {
  // W = 2, K = 2: windows [[1, 2], [2, 1]] and a partial [[2], [1]].
  const Scenario sc = gacc::testing::causal_lm_scenario();
  CHECK(gacc::micro_batch_count(sc, 0) == 2);
  CHECK(gacc::micro_batch_count(sc, 1) == 1);
  CHECK(gacc::window_examples(sc, 0) == 6);
  CHECK(gacc::window_examples(sc, 1) == 3);
  CHECK(gacc::total_examples(sc) == 9);
  CHECK(gacc::first_example(sc, 0, 0, 1) == 1);
  CHECK(gacc::first_example(sc, 0, 1, 0) == 3);
  CHECK(gacc::first_example(sc, 0, 1, 1) == 5);
  CHECK(gacc::first_example(sc, 1, 0, 0) == 6);
  CHECK(gacc::first_example(sc, 1, 1, 0) == 8);
}
