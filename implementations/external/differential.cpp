#include "implementations/external/differential.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "implementations/external/file_node.h"

namespace gacc::external {
namespace {

using namespace detail;

const char* const kDtypes[][2] = {{kAccumulated, "float64"}, {kLargeBatch, "float64"}, {kLargeBatchFp32, "float32"}};

}  // namespace

// ---- the case file -------------------------------------------------------------------------

std::vector<char> encode_differential_case(const Splits& splits) {
  validate(splits);
  auto root = new_dict();
  root.insert("format", std::string(kDifferentialCaseFormat));
  root.insert("version", kDifferentialVersion);
  root.insert("seed", static_cast<int64_t>(splits.seed));
  root.insert("steps", static_cast<int64_t>(splits.steps()));
  root.insert("global_batch", splits.global_batch);
  root.insert("accumulation_steps", splits.accumulation_steps);
  auto windows = new_list();
  for (const auto& window : splits.windows) {
    auto micros = new_list();
    for (const auto& indices : window) {
      micros.push_back(torch::tensor(indices, torch::kInt64));
    }
    windows.push_back(micros);
  }
  root.insert("windows", windows);
  auto dtypes = new_dict();
  for (const auto& [variant, dtype] : kDtypes) dtypes.insert(variant, std::string(dtype));
  root.insert("dtypes", dtypes);
  return pickled(root);
}

void write_differential_case(const std::string& path, const Splits& splits) {
  write_bytes(path, encode_differential_case(splits));
}

Splits decode_differential_case(const std::vector<char>& bytes, const std::string& origin) {
  const Node root = open_file(bytes, origin, "case", kDifferentialCaseFormat, kDifferentialVersion);
  root.only({"format", "version", "seed", "steps", "global_batch", "accumulation_steps", "windows", "dtypes"});
  Splits splits;
  const int64_t seed = root.at("seed").integer();
  if (seed < 0) root.at("seed").fail(std::to_string(seed) + " is negative");
  splits.seed = static_cast<uint64_t>(seed);
  splits.global_batch = root.at("global_batch").integer();
  const int64_t steps = root.at("steps").integer();
  if (steps < 1) root.at("steps").fail(std::to_string(steps) + " is not at least 1");
  const Node windows = root.at("windows").list_of(static_cast<size_t>(steps), "one window per optimizer step");
  for (size_t s = 0; s < windows.size(); ++s) {
    const Node window = windows.at(s);
    auto& out = splits.windows.emplace_back();
    for (size_t m = 0; m < window.size(); ++m) {
      const Node micro = window.at(m);
      const torch::Tensor t = micro.raw_tensor();
      if (t.scalar_type() != torch::kInt64) {
        micro.fail("dtype " + std::string(c10::toString(t.scalar_type())) + ", expected int64");
      }
      if (t.dim() != 1) micro.fail("shape " + shape_text(t.sizes()) + ", expected a list of indices [n]");
      const auto flat = t.contiguous();
      out.emplace_back(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
    }
  }
  const Node dtypes = root.at("dtypes");
  std::set<std::string> variants;
  for (const auto& [variant, dtype] : kDtypes) {
    variants.insert(variant);
    const std::string got = dtypes.at(variant).string();
    if (got != dtype) dtypes.at(variant).fail("\"" + got + "\", expected \"" + dtype + "\"");
  }
  dtypes.only(variants);
  // Written before K was in the file: the most micro-batches a window holds.
  splits.accumulation_steps = 1;
  for (const auto& window : splits.windows) {
    splits.accumulation_steps = std::max(splits.accumulation_steps, static_cast<int64_t>(window.size()));
  }
  if (root.has("accumulation_steps")) splits.accumulation_steps = root.at("accumulation_steps").integer();
  validate(splits, "case");
  return splits;
}

Splits read_differential_case(const std::string& path) { return decode_differential_case(file_bytes(path), path); }

bool is_differential_case(const std::string& path) {
  try {
    return format_of(file_bytes(path), path) == kDifferentialCaseFormat;
  } catch (const InputError&) {
    return false;
  }
}

// ---- the result file -----------------------------------------------------------------------

namespace {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

/// `{name: tensor}` in `dtype` holding exactly the names of `specs` (learnt from the first such
/// dictionary when `specs` is empty).
std::vector<StackTensor> read_tensors(const Node& node, std::vector<TensorSpec>& specs, torch::ScalarType dtype,
                                      const std::string& dtype_text, const std::string& first_path) {
  const bool learning = specs.empty();
  if (learning) {
    for (const auto& entry : node.dict()) {
      if (!entry.key().isString()) node.fail("has a key that is not a string");
      const std::string name = entry.key().toStringRef();
      specs.push_back({name, node.entry(name).raw_tensor().sizes().vec()});
    }
    if (specs.empty()) node.fail("holds no parameter");
  } else {
    std::set<std::string> known;
    for (const auto& spec : specs) known.insert(spec.name);
    for (const auto& entry : node.dict()) {
      if (!entry.key().isString()) node.fail("has a key that is not a string");
      if (!known.count(entry.key().toStringRef())) {
        node.fail("has an entry \"" + entry.key().toStringRef() + "\" that " + first_path + " does not have");
      }
    }
  }
  std::vector<StackTensor> out;
  for (const auto& spec : specs) {
    const Node item = node.entry(spec.name);
    const auto t = item.tensor(spec.shape, {dtype}, dtype_text).to(torch::kFloat64).contiguous().reshape(-1);
    out.push_back({spec.shape, std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel())});
  }
  return out;
}

/// A run's steps: one per window of the case for the large batches (what the accumulated run is
/// judged against); any number for the accumulated run, whose step count is judged (a verdict).
std::vector<DifferentialStep> read_variant(const Node& node, const Splits& splits, std::vector<TensorSpec>& specs,
                                           torch::ScalarType dtype, const std::string& dtype_text,
                                           bool judged_step_count) {
  const Node steps = judged_step_count ? node.at("steps")
                                       : node.at("steps").list_of(static_cast<size_t>(splits.steps()),
                                                                  "one per optimizer step of the case");
  steps.size();  // a list
  std::vector<DifferentialStep> out;
  for (size_t s = 0; s < steps.size(); ++s) {
    const Node step = steps.at(s);
    step.only({"loss", "grad", "params_after"});
    DifferentialStep record;
    record.loss = step.at("loss").number();
    record.grad = read_tensors(step.at("grad"), specs, dtype, dtype_text, "the result's first grad");
    record.params_after = read_tensors(step.at("params_after"), specs, dtype, dtype_text,
                                       "the result's first grad");
    out.push_back(std::move(record));
  }
  return out;
}

c10::impl::GenericDict tensors_of(const std::vector<std::string>& names, const std::vector<StackTensor>& tensors,
                                  torch::ScalarType dtype) {
  auto dict = new_dict();
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& t = tensors.at(i);
    dict.insert(names[i], torch::tensor(t.values, torch::kFloat64).reshape(t.shape).to(dtype));
  }
  return dict;
}

}  // namespace

DifferentialResult decode_differential_result(const std::vector<char>& bytes, const Splits& splits,
                                              const std::string& origin) {
  const Node root = open_file(bytes, origin, "result", kDifferentialResultFormat, kDifferentialVersion);
  root.only({"format", "version", kAccumulated, kLargeBatch, kLargeBatchFp32});
  DifferentialResult result;
  std::vector<TensorSpec> specs;
  const Node accumulated = root.at(kAccumulated);
  accumulated.only({"steps", "counters"});
  result.accumulated = read_variant(accumulated, splits, specs, torch::kFloat64, "float64", true);
  const Node large = root.at(kLargeBatch);
  large.only({"steps"});
  result.large_batch = read_variant(large, splits, specs, torch::kFloat64, "float64", false);
  const Node fp32 = root.at(kLargeBatchFp32);
  fp32.only({"steps"});
  result.large_batch_fp32 = read_variant(fp32, splits, specs, torch::kFloat32, "float32", false);
  for (const auto& spec : specs) result.names.push_back(spec.name);

  const Node counters = accumulated.at("counters");
  counters.only({"micro_batches", "optimizer_steps", "zero_grads"});
  const auto count = [&counters](const std::string& key) {
    const int64_t value = counters.at(key).integer();
    if (value < 0) counters.at(key).fail(std::to_string(value) + " is negative");
    return value;
  };
  result.counters.micro_batches = count("micro_batches");
  result.counters.optimizer_steps = count("optimizer_steps");
  result.counters.zero_grads = count("zero_grads");
  return result;
}

DifferentialResult read_differential_result(const std::string& path, const Splits& splits) {
  return decode_differential_result(file_bytes(path), splits, path);
}

std::vector<char> encode_differential_result(const DifferentialResult& result) {
  auto root = new_dict();
  root.insert("format", std::string(kDifferentialResultFormat));
  root.insert("version", kDifferentialVersion);
  const auto variant = [&result](const std::vector<DifferentialStep>& steps, torch::ScalarType dtype) {
    auto list = new_list();
    for (const auto& record : steps) {
      auto step = new_dict();
      step.insert("loss", record.loss);
      step.insert("grad", tensors_of(result.names, record.grad, dtype));
      step.insert("params_after", tensors_of(result.names, record.params_after, dtype));
      list.push_back(step);
    }
    auto dict = new_dict();
    dict.insert("steps", list);
    return dict;
  };
  auto accumulated = variant(result.accumulated, torch::kFloat64);
  auto counters = new_dict();
  counters.insert("micro_batches", result.counters.micro_batches);
  counters.insert("optimizer_steps", result.counters.optimizer_steps);
  counters.insert("zero_grads", result.counters.zero_grads);
  accumulated.insert("counters", counters);
  root.insert(kAccumulated, accumulated);
  root.insert(kLargeBatch, variant(result.large_batch, torch::kFloat64));
  root.insert(kLargeBatchFp32, variant(result.large_batch_fp32, torch::kFloat32));
  return pickled(root);
}

}  // namespace gacc::external
