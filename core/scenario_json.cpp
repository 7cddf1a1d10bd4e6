#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_reader.h"
#include "core/scenario.h"
#include "core/scenario_rules.h"

namespace gacc {
namespace {

using namespace scenario_rules;

/// "to arch X": why a key that does not apply to the architecture is refused.
std::string to_arch(const ModelSpec& m) { return "to arch " + to_string(m.arch); }

ModelSpec read_model(JsonObjectReader& top) {
  ModelSpec m;
  JsonObjectReader model(top.at("model"), top.path_of("model"));
  m.arch = from_name<Architecture>(model.string("arch"), model.path_of("arch"));
  if (is_token_model(m)) {
    for (const char* key : {"input_dim", "hidden_dim", "output_dim"}) model.forbid(key, to_arch(m));
    m.vocab_size = model.integer("vocab_size", 2, kMaxVocab);
    m.d_model = model.integer("d_model", 1, kMaxDim);
    m.max_seq_len = model.integer("max_seq_len", 1, kMaxSeqLen);
  } else {
    for (const char* key : {"vocab_size", "d_model", "max_seq_len"}) model.forbid(key, to_arch(m));
    m.input_dim = model.integer("input_dim", 1, kMaxDim);
    if (has_hidden_layer(m.arch)) {
      m.hidden_dim = model.integer("hidden_dim", 1, kMaxDim);
    } else {
      model.forbid("hidden_dim", to_arch(m));
    }
    m.output_dim = model.integer("output_dim", 1, kMaxDim);
  }
  if (m.arch == Architecture::mlp_group_norm) {
    m.groups = model.integer("groups", 1, kMaxDim);
  } else {
    model.forbid("groups", to_arch(m));
  }
  if (has_norm(m.arch)) {
    m.norm_eps = model.number_or("norm_eps", m.norm_eps, 0.0, 1.0);
  } else {
    model.forbid("norm_eps", to_arch(m));
  }
  if (m.arch == Architecture::mlp_batch_norm) {
    m.batch_norm_momentum = model.number_or("batch_norm_momentum", m.batch_norm_momentum, 0.0, 1.0);
  } else {
    model.forbid("batch_norm_momentum", to_arch(m));
  }
  m.init_seed = model.seed("init_seed");
  model.finish();
  return m;
}

DataSpec read_data(JsonObjectReader& top, const ModelSpec& m) {
  DataSpec d;
  JsonObjectReader data(top.at("data"), top.path_of("data"));
  d.seed = data.seed("seed");
  d.global_batch = data.integer("global_batch", 1, kMaxGlobalBatch);
  const auto& windows = data.at("windows");
  const std::string windows_path = data.path_of("windows");
  if (!windows.is_array()) throw InputError(windows_path + " must be an array of windows");
  if (windows.size() > static_cast<size_t>(kMaxSteps)) {
    throw InputError(windows_path + " holds more than " + std::to_string(kMaxSteps) + " windows");
  }
  for (size_t s = 0; s < windows.size(); ++s) {
    const std::string ws = windows_path + "[" + std::to_string(s) + "]";
    if (!windows[s].is_array()) throw InputError(ws + " must be an array with one list per rank");
    if (windows[s].size() > static_cast<size_t>(kMaxWorld)) {
      throw InputError(ws + " holds more than " + std::to_string(kMaxWorld) + " ranks");
    }
    auto& window = d.windows.emplace_back();
    for (size_t r = 0; r < windows[s].size(); ++r) {
      const std::string rs = ws + "[" + std::to_string(r) + "]";
      const auto& sizes = windows[s][r];
      if (!sizes.is_array()) throw InputError(rs + " must be an array of micro-batch sizes");
      if (sizes.size() > static_cast<size_t>(kMaxAccumulation)) {
        throw InputError(rs + " holds more than " + std::to_string(kMaxAccumulation) + " micro-batches");
      }
      auto& rank = window.emplace_back();
      for (size_t i = 0; i < sizes.size(); ++i) {
        rank.push_back(json_integer(sizes[i], rs + "[" + std::to_string(i) + "]", 1, kMaxGlobalBatch));
      }
    }
  }
  if (is_token_model(m)) {
    const auto& lengths = data.at("sequence_lengths");
    const std::string lengths_path = data.path_of("sequence_lengths");
    if (!lengths.is_array()) throw InputError(lengths_path + " must be an array of lengths");
    if (lengths.size() > static_cast<size_t>(kMaxTotalExamples)) {
      throw InputError(lengths_path + " holds more than " + std::to_string(kMaxTotalExamples) + " lengths");
    }
    for (size_t i = 0; i < lengths.size(); ++i) {
      d.sequence_lengths.push_back(
          json_integer(lengths[i], lengths_path + "[" + std::to_string(i) + "]", 0, kMaxSeqLen));
    }
    d.ignored_fraction = data.number_or("ignored_fraction", 0.0, 0.0, 1.0);
  } else {
    data.forbid("sequence_lengths", to_arch(m));
    data.forbid("ignored_fraction", to_arch(m));
  }
  data.finish();
  return d;
}

/// The loss: the architecture's, with its default reduction, unless the scenario names them.
LossSpec read_loss(JsonObjectReader& top, const ModelSpec& m) {
  LossSpec l;
  l.kind = loss_of(m.arch);
  l.reduction = default_reduction(l.kind);
  if (top.has("loss")) {
    JsonObjectReader loss(top.at("loss"), top.path_of("loss"));
    l.kind = from_name<LossKind>(loss.string_or("kind", to_string(l.kind)), loss.path_of("kind"));
    l.reduction = from_name<Reduction>(loss.string_or("reduction", to_string(default_reduction(l.kind))),
                                       loss.path_of("reduction"));
    loss.finish();
  }
  return l;
}

OptimizerSpec read_optimizer(JsonObjectReader& top) {
  OptimizerSpec o;
  JsonObjectReader opt(top.at("optimizer"), top.path_of("optimizer"));
  o.kind = from_name<OptimizerKind>(opt.string("kind"), opt.path_of("kind"));
  const std::string to_optimizer = "to optimizer " + to_string(o.kind);
  o.lr = opt.number("lr", 0.0, 1e3);
  o.weight_decay = opt.number_or("weight_decay", 0.0, 0.0, 1e3);
  if (o.kind == OptimizerKind::sgd) {
    for (const char* key : {"beta1", "beta2", "eps", "amsgrad"}) opt.forbid(key, to_optimizer);
    o.momentum = opt.number_or("momentum", 0.0, 0.0, 1.0);
    o.dampening = opt.number_or("dampening", 0.0, 0.0, 1.0);
    o.nesterov = opt.boolean_or("nesterov", false);
  } else {
    for (const char* key : {"momentum", "dampening", "nesterov"}) opt.forbid(key, to_optimizer);
    o.beta1 = opt.number_or("beta1", o.beta1, 0.0, 1.0);
    o.beta2 = opt.number_or("beta2", o.beta2, 0.0, 1.0);
    o.eps = opt.number_or("eps", o.eps, 0.0, 1.0);
    o.amsgrad = opt.boolean_or("amsgrad", false);
  }
  opt.finish();
  return o;
}

/// The schedule (constant where the scenario names none).
ScheduleSpec read_schedule(JsonObjectReader& top) {
  ScheduleSpec s;
  if (top.has("schedule")) {
    JsonObjectReader sched(top.at("schedule"), top.path_of("schedule"));
    s.kind = from_name<ScheduleKind>(sched.string("kind"), sched.path_of("kind"));
    const std::string to_schedule = "to schedule " + to_string(s.kind);
    auto only = [&](ScheduleKind kind, std::initializer_list<const char*> keys) {
      if (s.kind != kind) {
        for (const char* key : keys) sched.forbid(key, to_schedule);
      }
    };
    only(ScheduleKind::step, {"step_size", "gamma"});
    only(ScheduleKind::linear_warmup, {"warmup_steps", "start_factor"});
    only(ScheduleKind::cosine, {"t_max", "eta_min"});
    if (s.kind == ScheduleKind::step) {
      s.step_size = sched.integer("step_size", 1, kMaxSteps);
      s.gamma = sched.number_or("gamma", s.gamma, 0.0, 1e3);
    } else if (s.kind == ScheduleKind::linear_warmup) {
      s.warmup_steps = sched.integer("warmup_steps", 1, kMaxSteps);
      s.start_factor = sched.number_or("start_factor", s.start_factor, 0.0, 1.0);
    } else if (s.kind == ScheduleKind::cosine) {
      s.t_max = sched.integer("t_max", 1, kMaxSteps);
      s.eta_min = sched.number_or("eta_min", 0.0, 0.0, 1e3);
    }
    sched.finish();
  }
  return s;
}

/// Clipping (none where the scenario names none).
ClippingSpec read_clipping(JsonObjectReader& top) {
  ClippingSpec c;
  if (top.has("clipping")) {
    JsonObjectReader clip(top.at("clipping"), top.path_of("clipping"));
    c.kind = from_name<ClippingKind>(clip.string("kind"), clip.path_of("kind"));
    const std::string to_clipping = "to clipping " + to_string(c.kind);
    if (c.kind == ClippingKind::norm) {
      clip.forbid("clip_value", to_clipping);
      c.max_norm = clip.number("max_norm", 0.0, 1e30);
    } else if (c.kind == ClippingKind::value) {
      clip.forbid("max_norm", to_clipping);
      c.clip_value = clip.number("clip_value", 0.0, 1e30);
    } else {
      clip.forbid("max_norm", to_clipping);
      clip.forbid("clip_value", to_clipping);
    }
    clip.finish();
  }
  return c;
}

/// The precision, and GradScaler's parameters under fp16 (refused otherwise).
void read_precision(JsonObjectReader& top, Scenario& sc) {
  sc.precision = from_name<Precision>(top.string_or("precision", "fp32"), top.path_of("precision"));
  if (sc.precision == Precision::fp16) {
    if (top.has("loss_scale")) {
      JsonObjectReader ls(top.at("loss_scale"), top.path_of("loss_scale"));
      auto& l = sc.loss_scale;
      l.init_scale = ls.number_or("init_scale", l.init_scale, 0.0, 1e38);
      l.growth_factor = ls.number_or("growth_factor", l.growth_factor, 0.0, 1e6);
      l.backoff_factor = ls.number_or("backoff_factor", l.backoff_factor, 0.0, 1.0);
      l.growth_interval = ls.integer_or("growth_interval", l.growth_interval, 1, kMaxInterval);
      ls.finish();
    }
  } else {
    top.forbid("loss_scale", "to precision " + to_string(sc.precision) + " (fp16 only)");
  }
}

}  // namespace

Scenario scenario_from_json(const nlohmann::json& json) {
  Scenario sc;
  JsonObjectReader top(json, "scenario");
  sc.model = read_model(top);
  sc.data = read_data(top, sc.model);
  sc.loss = read_loss(top, sc.model);
  sc.optimizer = read_optimizer(top);
  sc.schedule = read_schedule(top);
  sc.clipping = read_clipping(top);
  read_precision(top, sc);
  sc.world_size = static_cast<int>(top.integer_or("world_size", 1, 1, kMaxWorld));
  sc.accumulation_steps = static_cast<int>(top.integer("accumulation_steps", 1, kMaxAccumulation));
  sc.steps = static_cast<int>(top.integer("steps", 1, kMaxSteps));
  top.finish();

  validate(sc);
  return sc;
}

Scenario parse_scenario(std::string_view text) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number beyond double's range (1e999): found by fuzzing.
    throw InputError(std::string("scenario: malformed JSON: ") + e.what());
  }
  return scenario_from_json(json);
}

nlohmann::json to_json(const Scenario& sc) {
  const auto& m = sc.model;
  nlohmann::json model = {{"arch", to_string(m.arch)}, {"init_seed", m.init_seed}};
  if (is_token_model(m)) {
    model["vocab_size"] = m.vocab_size;
    model["d_model"] = m.d_model;
    model["max_seq_len"] = m.max_seq_len;
  } else {
    model["input_dim"] = m.input_dim;
    model["output_dim"] = m.output_dim;
    if (has_hidden_layer(m.arch)) model["hidden_dim"] = m.hidden_dim;
  }
  if (m.arch == Architecture::mlp_group_norm) model["groups"] = m.groups;
  if (has_norm(m.arch)) model["norm_eps"] = m.norm_eps;
  if (m.arch == Architecture::mlp_batch_norm) model["batch_norm_momentum"] = m.batch_norm_momentum;

  nlohmann::json data = {{"seed", sc.data.seed}, {"global_batch", sc.data.global_batch}, {"windows", sc.data.windows}};
  if (is_token_model(m)) {
    data["sequence_lengths"] = sc.data.sequence_lengths;
    data["ignored_fraction"] = sc.data.ignored_fraction;
  }

  const auto& o = sc.optimizer;
  nlohmann::json optimizer = {{"kind", to_string(o.kind)}, {"lr", o.lr}, {"weight_decay", o.weight_decay}};
  if (o.kind == OptimizerKind::sgd) {
    optimizer["momentum"] = o.momentum;
    optimizer["dampening"] = o.dampening;
    optimizer["nesterov"] = o.nesterov;
  } else {
    optimizer["beta1"] = o.beta1;
    optimizer["beta2"] = o.beta2;
    optimizer["eps"] = o.eps;
    optimizer["amsgrad"] = o.amsgrad;
  }

  nlohmann::json out = {
      {"model", model},
      {"data", data},
      {"loss", {{"kind", to_string(sc.loss.kind)}, {"reduction", to_string(sc.loss.reduction)}}},
      {"optimizer", optimizer},
      {"precision", to_string(sc.precision)},
      {"world_size", sc.world_size},
      {"accumulation_steps", sc.accumulation_steps},
      {"steps", sc.steps},
  };
  const auto& s = sc.schedule;
  if (s.kind != ScheduleKind::constant) {
    nlohmann::json schedule = {{"kind", to_string(s.kind)}};
    if (s.kind == ScheduleKind::step) {
      schedule["step_size"] = s.step_size;
      schedule["gamma"] = s.gamma;
    } else if (s.kind == ScheduleKind::linear_warmup) {
      schedule["warmup_steps"] = s.warmup_steps;
      schedule["start_factor"] = s.start_factor;
    } else {
      schedule["t_max"] = s.t_max;
      schedule["eta_min"] = s.eta_min;
    }
    out["schedule"] = schedule;
  }
  if (sc.clipping.kind != ClippingKind::none) {
    nlohmann::json clipping = {{"kind", to_string(sc.clipping.kind)}};
    if (sc.clipping.kind == ClippingKind::norm) clipping["max_norm"] = sc.clipping.max_norm;
    if (sc.clipping.kind == ClippingKind::value) clipping["clip_value"] = sc.clipping.clip_value;
    out["clipping"] = clipping;
  }
  if (sc.precision == Precision::fp16) {
    const auto& l = sc.loss_scale;
    out["loss_scale"] = {{"init_scale", l.init_scale},
                         {"growth_factor", l.growth_factor},
                         {"backoff_factor", l.backoff_factor},
                         {"growth_interval", l.growth_interval}};
  }
  return out;
}

std::string to_json_text(const Scenario& sc) { return to_json(sc).dump(); }

}  // namespace gacc
