#include "implementations/external/case_file.h"
#include "implementations/external/file_node.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"
#include "fixtures/fixtures.h"
#include "implementations/torch/tensor_conversions.h"

namespace gacc::external {
namespace {

using namespace detail;
using fixtures::ModelLayout;

// ---- writing -------------------------------------------------------------------------------

c10::impl::GenericList names_of(const std::vector<std::string>& names) {
  auto list = new_list();
  for (const auto& name : names) list.push_back(name);
  return list;
}

/// `{name: tensor}` for each item, cut from the flat canonical vector `values`.
template <typename Spec>
c10::impl::GenericDict tensors_by_name(const std::vector<Spec>& specs, const std::vector<double>& values) {
  auto dict = new_dict();
  for (const auto& spec : specs) {
    if (values.size() < static_cast<size_t>(spec.offset + spec.numel)) {
      throw std::invalid_argument("tensors_by_name: " + std::to_string(values.size()) + " values for " + spec.name);
    }
    dict.insert(spec.name, torch_recipes::tensor_from(values.data() + spec.offset, spec.shape, torch::kFloat32));
  }
  return dict;
}

/// The names of a model's parameters and buffers, in canonical order.
struct LayoutNames {
  std::vector<std::string> parameters, buffers;
  explicit LayoutNames(const ModelLayout& layout) {
    for (const auto& p : layout.parameters) parameters.push_back(p.name);
    for (const auto& b : layout.buffers) buffers.push_back(b.name);
  }
};

/// The micro-batch as the file holds it: float32 regressor data, int64 tokens.
torch_recipes::BatchTensors micro_batch_tensors(const Scenario& scenario, int step, int rank, int micro) {
  return torch_recipes::to_tensors(fixtures::micro_batch(scenario, step, rank, micro), torch::kFloat32);
}

// ---- reading -------------------------------------------------------------------------------

/// `node` must be a tensor equal, value for value, to the flat `expected` from `offset`.
void expect_values(const Node& node, const torch::Tensor& tensor, const std::vector<double>& expected,
                   int64_t offset, const std::string& what) {
  const auto flat = tensor.to(torch::kFloat64).contiguous().reshape(-1);
  const auto* data = flat.data_ptr<double>();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double want = expected[static_cast<size_t>(offset + i)];
    if (!(data[i] == want)) {
      std::ostringstream message;
      message.precision(17);
      message << "element " << i << " is " << data[i] << ", but " << what << " has " << want
              << " (the case does not match its scenario)";
      node.fail(message.str());
    }
  }
}

template <typename Spec>
void read_named_tensors(const Node& node, const std::vector<Spec>& specs, const std::vector<std::string>& names,
                        const std::vector<double>& expected, const std::string& what) {
  node.exactly(names);
  for (const auto& spec : specs) {
    const Node item = node.entry(spec.name);
    expect_values(item, item.tensor(spec.shape, kRealTypes, kRealText), expected, spec.offset, what);
  }
}

void read_names(const Node& node, const std::vector<std::string>& names) {
  node.list_of(names.size(), "the model's names in canonical order");
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string name = node.at(i).string();
    if (name != names[i]) node.at(i).fail("\"" + name + "\", expected \"" + names[i] + "\"");
  }
}

void read_batch(const Node& node, const torch_recipes::BatchTensors& expected) {
  node.only({"inputs", "targets"});
  for (const auto& [key, want] : {std::pair<std::string, torch::Tensor>{"inputs", expected.inputs},
                                  std::pair<std::string, torch::Tensor>{"targets", expected.targets}}) {
    const Node item = node.at(key);
    const bool tokens = want.scalar_type() == torch::kInt64;
    const auto tensor = tokens ? item.tensor(want.sizes().vec(), {torch::kInt64}, "int64")
                               : item.tensor(want.sizes().vec(), kRealTypes, kRealText);
    if (!torch::equal(tensor.to(want.scalar_type()), want)) {
      item.fail("differs from the scenario's data (the case does not match its scenario)");
    }
  }
}

/// Flattens `{name: tensor}` over every parameter (or buffer) in canonical order. A one-element
/// tensor stands for every element when `broadcast_scalars` (Adam's step count).
template <typename Spec>
std::vector<double> flat_values(const Node& node, const std::vector<Spec>& specs, const std::vector<std::string>& names,
                                bool broadcast_scalars) {
  node.exactly(names);
  std::vector<double> out;
  for (const auto& spec : specs) {
    const Node item = node.entry(spec.name);
    torch::Tensor t = item.raw_tensor();
    if (broadcast_scalars && t.numel() == 1 && kRealTypes.count(t.scalar_type())) {
      t = t.reshape({}).expand(spec.shape);
    } else {
      t = item.tensor(spec.shape, kRealTypes, kRealText);
    }
    const auto flat = t.to(torch::kFloat64).contiguous().reshape(-1);
    out.insert(out.end(), flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
  }
  return out;
}

StepRecord read_step(const Node& node, const ModelLayout& layout, const LayoutNames& names) {
  const auto& params = names.parameters;
  const auto& buffers = names.buffers;
  std::set<std::string> keys = {"grad", "pre_clip_norm", "loss", "lr", "loss_scale", "skipped", "params_after",
                                "optimizer_state"};
  if (!buffers.empty()) keys.insert("buffers_after");
  node.only(keys);
  StepRecord step;
  step.grad = flat_values(node.at("grad"), layout.parameters, params, false);
  step.pre_clip_norm = node.at("pre_clip_norm").number();
  step.loss = node.at("loss").number();
  step.lr = node.at("lr").number();
  step.loss_scale = node.at("loss_scale").number();
  step.skipped = node.at("skipped").boolean();
  step.params_after = flat_values(node.at("params_after"), layout.parameters, params, false);
  const Node state = node.at("optimizer_state");
  for (const auto& entry : state.dict()) {
    if (!entry.key().isString()) state.fail("has a key that is not a string");
    const std::string name = entry.key().toStringRef();
    step.optimizer_state[name] = flat_values(state.at(name), layout.parameters, params, true);
  }
  if (!buffers.empty()) step.buffers_after = flat_values(node.at("buffers_after"), layout.buffers, buffers, false);
  return step;
}

Counters read_counters(const Node& node) {
  node.only({"micro_batches", "optimizer_steps", "zero_grads", "scheduler_steps", "all_reduces", "all_reduce_bytes",
             "metadata_collectives"});
  Counters c;
  const auto count = [&node](const std::string& key, bool required) -> int64_t {
    if (!required && !node.has(key)) return 0;
    const int64_t value = node.at(key).integer();
    if (value < 0) node.at(key).fail(std::to_string(value) + " is negative");
    return value;
  };
  c.micro_batches = count("micro_batches", true);
  c.optimizer_steps = count("optimizer_steps", true);
  c.zero_grads = count("zero_grads", true);
  c.scheduler_steps = count("scheduler_steps", true);
  c.all_reduces = count("all_reduces", false);
  c.all_reduce_bytes = count("all_reduce_bytes", false);
  c.metadata_collectives = count("metadata_collectives", false);
  return c;
}

}  // namespace

std::vector<char> encode_case(const Scenario& scenario) {
  validate(scenario);
  const auto layout = fixtures::model_layout(scenario.model);
  const LayoutNames names(layout);
  auto root = new_dict();
  root.insert("format", std::string(kCaseFormat));
  root.insert("version", kFormatVersion);
  root.insert("scenario", to_json_text(scenario));
  root.insert("parameter_names", names_of(names.parameters));
  root.insert("parameters",
              tensors_by_name(layout.parameters, fixtures::initial_weights(scenario.model, scenario.precision)));
  root.insert("buffer_names", names_of(names.buffers));
  root.insert("buffers", tensors_by_name(layout.buffers, fixtures::initial_buffers(scenario.model)));
  auto steps = new_list();
  for (int s = 0; s < scenario.steps; ++s) {
    auto ranks = new_list();
    for (int r = 0; r < scenario.world_size; ++r) {
      auto micros = new_list();
      for (int k = 0; k < micro_batch_count(scenario, s); ++k) {
        const auto batch = micro_batch_tensors(scenario, s, r, k);
        auto micro = new_dict();
        micro.insert("inputs", batch.inputs);
        micro.insert("targets", batch.targets);
        micros.push_back(micro);
      }
      ranks.push_back(micros);
    }
    steps.push_back(ranks);
  }
  root.insert("batches", steps);
  return pickled(root);
}

void write_case(const std::string& path, const Scenario& scenario) { write_bytes(path, encode_case(scenario)); }

Scenario decode_case(const std::vector<char>& bytes, const std::string& origin) {
  const Node root = open_file(bytes, origin, "case", kCaseFormat, kFormatVersion);
  root.only({"format", "version", "scenario", "parameter_names", "parameters", "buffer_names", "buffers", "batches"});
  Scenario scenario;
  try {
    scenario = parse_scenario(root.at("scenario").string());
  } catch (const InputError& e) {
    throw InputError("case.scenario: " + std::string(e.what()));
  }
  const auto layout = fixtures::model_layout(scenario.model);
  const LayoutNames names(layout);
  read_names(root.at("parameter_names"), names.parameters);
  read_named_tensors(root.at("parameters"), layout.parameters, names.parameters,
                     fixtures::initial_weights(scenario.model, scenario.precision), "the scenario's initial weights");
  read_names(root.at("buffer_names"), names.buffers);
  read_named_tensors(root.at("buffers"), layout.buffers, names.buffers, fixtures::initial_buffers(scenario.model),
                     "the scenario's initial buffers");
  const Node steps = root.at("batches").list_of(static_cast<size_t>(scenario.steps), "one per optimizer step");
  for (int s = 0; s < scenario.steps; ++s) {
    const Node ranks = steps.at(static_cast<size_t>(s)).list_of(static_cast<size_t>(scenario.world_size), "one per rank");
    for (int r = 0; r < scenario.world_size; ++r) {
      const int micro_count = micro_batch_count(scenario, s);
      const Node micros = ranks.at(static_cast<size_t>(r)).list_of(static_cast<size_t>(micro_count),
                                                                   "the window's micro-batches");
      for (int k = 0; k < micro_count; ++k) read_batch(micros.at(static_cast<size_t>(k)), micro_batch_tensors(scenario, s, r, k));
    }
  }
  return scenario;
}

Scenario read_case(const std::string& path) { return decode_case(file_bytes(path), path); }

Trace decode_result(const std::vector<char>& bytes, const Scenario& scenario, const std::string& origin) {
  const Node root = open_file(bytes, origin, "result", kResultFormat, kFormatVersion);
  root.only({"format", "version", "steps", "counters"});
  const auto layout = fixtures::model_layout(scenario.model);
  // One entry per optimizer step the stack took: a count other than the case's windows is the
  // stack's behaviour, judged as a structural failure (properties/trace_checks.h), not bad input.
  const Node steps = root.at("steps");
  const LayoutNames names(layout);
  Trace trace;
  for (size_t s = 0; s < steps.size(); ++s) trace.steps.push_back(read_step(steps.at(s), layout, names));
  trace.counters = read_counters(root.at("counters"));
  return trace;
}

Trace read_result(const std::string& path, const Scenario& scenario) {
  return decode_result(file_bytes(path), scenario, path);
}

std::vector<char> encode_result(const Trace& trace, const Scenario& scenario) {
  const auto layout = fixtures::model_layout(scenario.model);
  auto root = new_dict();
  root.insert("format", std::string(kResultFormat));
  root.insert("version", kFormatVersion);
  auto steps = new_list();
  for (const auto& record : trace.steps) {
    auto step = new_dict();
    step.insert("grad", tensors_by_name(layout.parameters, record.grad));
    step.insert("pre_clip_norm", record.pre_clip_norm);
    step.insert("loss", record.loss);
    step.insert("lr", record.lr);
    step.insert("loss_scale", record.loss_scale);
    step.insert("skipped", record.skipped);
    step.insert("params_after", tensors_by_name(layout.parameters, record.params_after));
    auto state = new_dict();
    for (const auto& [name, values] : record.optimizer_state) state.insert(name, tensors_by_name(layout.parameters, values));
    step.insert("optimizer_state", state);
    if (!layout.buffers.empty()) step.insert("buffers_after", tensors_by_name(layout.buffers, record.buffers_after));
    steps.push_back(step);
  }
  root.insert("steps", steps);
  const auto& c = trace.counters;
  auto counters = new_dict();
  counters.insert("micro_batches", c.micro_batches);
  counters.insert("optimizer_steps", c.optimizer_steps);
  counters.insert("zero_grads", c.zero_grads);
  counters.insert("scheduler_steps", c.scheduler_steps);
  counters.insert("all_reduces", c.all_reduces);
  counters.insert("all_reduce_bytes", c.all_reduce_bytes);
  counters.insert("metadata_collectives", c.metadata_collectives);
  root.insert("counters", counters);
  return pickled(root);
}

}  // namespace gacc::external
