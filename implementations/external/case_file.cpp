#include "implementations/external/case_file.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/import_read.h>
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

using fixtures::ModelLayout;

std::string quoted(const std::string& key) { return "[\"" + key + "\"]"; }

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// ---- writing -------------------------------------------------------------------------------

c10::impl::GenericDict new_dict() { return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()); }
c10::impl::GenericList new_list() { return c10::impl::GenericList(c10::AnyType::get()); }

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

std::vector<char> pickled(const c10::impl::GenericDict& dict) { return torch::pickle_save(c10::IValue(dict)); }

// ---- reading -------------------------------------------------------------------------------

/// Whether every element of the non-empty tensor `t` lies in its storage. The unpickler builds a
/// tensor from the sizes, strides and offset the file states without checking them against the
/// storage it read (found by fuzzing: a storage of 0 bytes under a [3, 2] tensor made the first read
/// dereference a null pointer, or `item()` throw past the reader).
bool elements_in_storage(const torch::Tensor& t) {
  if (!t.storage().data() || t.storage_offset() < 0) return false;
  // The byte just past the furthest element; any overflow on the way is past the end too.
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t reach = 0;
    if (t.stride(d) < 0 || __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      return false;
    }
  }
  int64_t end = 0;
  if (__builtin_add_overflow(last, 1, &end) || __builtin_mul_overflow(end, t.element_size(), &end)) return false;
  return static_cast<uint64_t>(end) <= t.storage().nbytes();
}

/// A value of a file with the path that names it in messages ("result.steps[1].grad").
class Node {
 public:
  Node(c10::IValue value, std::string path) : value_(std::move(value)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& problem) const { throw InputError(path_ + ": " + problem); }

  bool is_dict() const { return value_.isGenericDict(); }
  const c10::impl::GenericDict dict() const {
    if (!value_.isGenericDict()) fail("is " + kind() + ", expected a dictionary");
    return value_.toGenericDict();
  }
  bool has(const std::string& key) const { return dict().contains(c10::IValue(key)); }
  Node at(const std::string& key) const {
    const auto d = dict();
    const auto found = d.find(c10::IValue(key));
    if (found == d.end()) fail("has no key \"" + key + "\"");
    return Node(found->value(), path_ + "." + key);
  }
  /// Refuses keys other than `allowed` (typos in optional keys would otherwise go unnoticed).
  void only(const std::set<std::string>& allowed) const {
    for (const auto& entry : dict()) {
      if (!entry.key().isString()) fail("has a key that is not a string");
      const std::string key = entry.key().toStringRef();
      if (!allowed.count(key)) fail("has an unknown key \"" + key + "\"");
    }
  }
  /// The entries of a `{name: value}` dictionary that must hold exactly `names`.
  Node entry(const std::string& name) const {
    const auto d = dict();
    const auto found = d.find(c10::IValue(name));
    if (found == d.end()) fail("has no entry \"" + name + "\"");
    return Node(found->value(), path_ + quoted(name));
  }
  void exactly(const std::vector<std::string>& names) const {
    const std::set<std::string> known(names.begin(), names.end());
    for (const auto& entry : dict()) {
      if (!entry.key().isString()) fail("has a key that is not a string");
      if (!known.count(entry.key().toStringRef())) {
        fail("has an entry \"" + entry.key().toStringRef() + "\" that is not a name of the case");
      }
    }
    for (const auto& name : names) entry(name);
  }

  size_t size() const {
    if (!value_.isList()) fail("is " + kind() + ", expected a list");
    return value_.toListRef().size();
  }
  Node at(size_t index) const {
    if (!value_.isList()) fail("is " + kind() + ", expected a list");
    return Node(value_.toListRef().at(index), path_ + "[" + std::to_string(index) + "]");
  }
  Node list_of(size_t expected, const std::string& what) const {
    if (size() != expected) {
      fail("holds " + std::to_string(size()) + " entries, expected " + std::to_string(expected) + " (" + what + ")");
    }
    return *this;
  }

  std::string string() const {
    if (!value_.isString()) fail("is " + kind() + ", expected a string");
    return value_.toStringRef();
  }
  /// A Python number, or a one-element tensor.
  double number() const {
    if (value_.isDouble()) return value_.toDouble();
    if (value_.isInt()) return static_cast<double>(value_.toInt());
    if (value_.isTensor() && raw_tensor().numel() == 1 && raw_tensor().is_floating_point()) {
      return raw_tensor().to(torch::kFloat64).item<double>();
    }
    fail("is " + kind() + ", expected a number");
  }
  int64_t integer() const {
    if (value_.isInt()) return value_.toInt();
    if (value_.isTensor() && raw_tensor().numel() == 1 && !raw_tensor().is_floating_point() &&
        !raw_tensor().is_complex() && raw_tensor().scalar_type() != torch::kBool) {
      return raw_tensor().to(torch::kInt64).item<int64_t>();
    }
    fail("is " + kind() + ", expected an integer");
  }
  bool boolean() const {
    if (value_.isBool()) return value_.toBool();
    if (value_.isTensor() && raw_tensor().numel() == 1 && raw_tensor().scalar_type() == torch::kBool) {
      return raw_tensor().item<bool>();
    }
    fail("is " + kind() + ", expected true or false");
  }
  /// A tensor of `dtypes` (described as `dtype_text`) and exactly `shape`.
  torch::Tensor tensor(const std::vector<int64_t>& shape, const std::set<torch::ScalarType>& dtypes,
                       const std::string& dtype_text) const {
    const torch::Tensor t = raw_tensor();
    if (!dtypes.count(t.scalar_type())) {
      fail("dtype " + std::string(c10::toString(t.scalar_type())) + ", expected " + dtype_text);
    }
    if (t.sizes() != c10::IntArrayRef(shape)) fail("shape " + shape_text(t.sizes()) + ", expected " + shape_text(shape));
    return t;
  }
  /// The tensor, once it is known to be a dense CPU tensor whose elements all lie in its storage.
  torch::Tensor raw_tensor() const {
    if (!value_.isTensor()) fail("is " + kind() + ", expected a tensor");
    const torch::Tensor t = value_.toTensor();
    if (t.layout() != torch::kStrided || t.is_quantized() || !t.device().is_cpu()) {
      fail("is not a dense CPU tensor");
    }
    if (t.numel() > 0 && !elements_in_storage(t)) {
      fail("shape " + shape_text(t.sizes()) + " reaches past the end of its storage of " +
           std::to_string(t.storage().nbytes()) + " bytes (a damaged file)");
    }
    return t;
  }

 private:
  std::string kind() const {
    if (value_.isNone()) return "None";
    if (value_.isTensor()) return "a tensor";
    if (value_.isList()) return "a list";
    if (value_.isGenericDict()) return "a dictionary";
    if (value_.isString()) return "a string";
    if (value_.isTuple()) return "a tuple";
    if (value_.isBool()) return "a boolean";
    if (value_.isInt() || value_.isDouble()) return "a number";
    return "a " + value_.tagKind();
  }

  c10::IValue value_;
  std::string path_;
};

const std::set<torch::ScalarType> kRealTypes = {torch::kFloat32, torch::kFloat64};
const char* const kRealText = "float32 or float64";

/// The bytes of a file, for LibTorch's zip reader, which must never read past their end.
///
/// torch::pickle_load reads through a reader that trusts the archive's directory: an offset
/// pointing past the end makes it read beyond the buffer (found by fuzzing: a heap-buffer-overflow
/// under AddressSanitizer). This reader clamps every read to the bytes there are; the zip reader
/// then reports a short read as an error.
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::vector<char>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::vector<char>& bytes_;
};

/// What torch::pickle_load does with a zip archive (torch.save's format since PyTorch 1.6), through
/// the bounded reader.
c10::IValue load_archive(const std::vector<char>& bytes) {
  caffe2::serialize::PyTorchStreamReader archive(std::make_shared<BoundedReader>(bytes));
  return torch::jit::readArchiveAndTensors("data", "", "", std::nullopt, std::nullopt, std::nullopt, archive);
}

/// The root of a file, its format tag and version checked.
Node open_file(const std::vector<char>& bytes, const std::string& origin, const std::string& root,
               const std::string& format) {
  if (bytes.empty()) throw InputError(origin + ": the file is empty");
  static constexpr char kZipMagic[] = {'P', 'K', 3, 4};
  if (bytes.size() < sizeof kZipMagic || !std::equal(kZipMagic, kZipMagic + sizeof kZipMagic, bytes.begin())) {
    throw InputError(origin + ": not a file torch.save or torch::pickle_save wrote (not a zip archive)");
  }
  c10::IValue value;
  try {
    value = load_archive(bytes);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto cut = what.find('\n'); cut != std::string::npos) what.resize(cut);
    throw InputError(origin + ": not a file torch.save or torch::pickle_save wrote (truncated or garbage?): " + what);
  }
  Node node(value, root);
  if (!node.is_dict()) node.fail("the file holds something other than a dictionary");
  const std::string tag = node.at("format").string();
  if (tag != format) node.at("format").fail("\"" + tag + "\", expected \"" + format + "\"");
  const int64_t version = node.at("version").integer();
  if (version != kFormatVersion) {
    node.at("version").fail(std::to_string(version) + ", but this gacc reads version " +
                            std::to_string(kFormatVersion) + " only");
  }
  return node;
}

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

std::vector<char> file_bytes(const std::string& path) {
  const std::string text = read_file(path);
  return std::vector<char>(text.begin(), text.end());
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
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
  const Node root = open_file(bytes, origin, "case", kCaseFormat);
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
  const Node root = open_file(bytes, origin, "result", kResultFormat);
  root.only({"format", "version", "steps", "counters"});
  const auto layout = fixtures::model_layout(scenario.model);
  const Node steps = root.at("steps").list_of(static_cast<size_t>(scenario.steps), "one per optimizer step of the case");
  const LayoutNames names(layout);
  Trace trace;
  for (int s = 0; s < scenario.steps; ++s) {
    trace.steps.push_back(read_step(steps.at(static_cast<size_t>(s)), layout, names));
  }
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
