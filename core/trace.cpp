#include "core/trace.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace gacc {

nlohmann::json to_json(const Trace& trace) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& step : trace.steps) {
    steps.push_back({{"grad", step.grad},
                     {"pre_clip_norm", step.pre_clip_norm},
                     {"loss", step.loss},
                     {"lr", step.lr},
                     {"loss_scale", step.loss_scale},
                     {"skipped", step.skipped},
                     {"params_after", step.params_after},
                     {"optimizer_state", step.optimizer_state},
                     {"buffers_after", step.buffers_after}});
  }
  const auto& c = trace.counters;
  return {{"steps", steps},
          {"counters",
           {{"micro_batches", c.micro_batches},
            {"optimizer_steps", c.optimizer_steps},
            {"zero_grads", c.zero_grads},
            {"all_reduces", c.all_reduces},
            {"scheduler_steps", c.scheduler_steps},
            {"all_reduce_bytes", c.all_reduce_bytes},
            {"metadata_collectives", c.metadata_collectives}}},
          {"replica_divergence", trace.replica_divergence}};
}

namespace {

const nlohmann::json& member(const nlohmann::json& object, const std::string& key, const std::string& path) {
  if (!object.is_object() || !object.contains(key))
    throw InputError("trace: " + path + " has no \"" + key + "\"");
  return object.at(key);
}

double number(const nlohmann::json& value, const std::string& path) {
  if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!value.is_number()) throw InputError("trace: " + path + " is not a number");
  return value.get<double>();
}

std::vector<double> numbers(const nlohmann::json& value, const std::string& path) {
  if (!value.is_array()) throw InputError("trace: " + path + " is not an array");
  std::vector<double> out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i)
    out.push_back(number(value[i], path + "[" + std::to_string(i) + "]"));
  return out;
}

int64_t count(const nlohmann::json& counters, const std::string& key) {
  const auto& value = member(counters, key, "counters");
  if (!value.is_number_integer()) throw InputError("trace: counters." + key + " is not an integer");
  return value.get<int64_t>();
}

}  // namespace

Trace trace_from_json(const nlohmann::json& json) {
  Trace trace;
  const auto& steps = member(json, "steps", "the trace");
  if (!steps.is_array()) throw InputError("trace: steps is not an array");
  for (size_t s = 0; s < steps.size(); ++s) {
    const std::string at = "steps[" + std::to_string(s) + "]";
    const auto& step = steps[s];
    StepRecord record;
    record.grad = numbers(member(step, "grad", at), at + ".grad");
    record.pre_clip_norm = number(member(step, "pre_clip_norm", at), at + ".pre_clip_norm");
    record.loss = number(member(step, "loss", at), at + ".loss");
    record.lr = number(member(step, "lr", at), at + ".lr");
    record.loss_scale = number(member(step, "loss_scale", at), at + ".loss_scale");
    const auto& skipped = member(step, "skipped", at);
    if (!skipped.is_boolean()) throw InputError("trace: " + at + ".skipped is not a boolean");
    record.skipped = skipped.get<bool>();
    record.params_after = numbers(member(step, "params_after", at), at + ".params_after");
    const auto& state = member(step, "optimizer_state", at);
    if (!state.is_object()) throw InputError("trace: " + at + ".optimizer_state is not an object");
    for (const auto& [name, values] : state.items()) {
      record.optimizer_state[name] = numbers(values, at + ".optimizer_state." + name);
    }
    record.buffers_after = numbers(member(step, "buffers_after", at), at + ".buffers_after");
    trace.steps.push_back(std::move(record));
  }
  const auto& counters = member(json, "counters", "the trace");
  auto& c = trace.counters;
  c.micro_batches = count(counters, "micro_batches");
  c.optimizer_steps = count(counters, "optimizer_steps");
  c.zero_grads = count(counters, "zero_grads");
  c.all_reduces = count(counters, "all_reduces");
  c.scheduler_steps = count(counters, "scheduler_steps");
  c.all_reduce_bytes = count(counters, "all_reduce_bytes");
  c.metadata_collectives = count(counters, "metadata_collectives");
  const auto& divergence = member(json, "replica_divergence", "the trace");
  if (!divergence.is_string()) throw InputError("trace: replica_divergence is not a string");
  trace.replica_divergence = divergence.get<std::string>();
  return trace;
}

}  // namespace gacc
