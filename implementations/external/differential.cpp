#include "implementations/external/differential.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "core/floating_point.h"
#include "core/signatures.h"
#include "implementations/external/file_node.h"
#include "reference/bounded.h"

namespace gacc::external {
namespace {

using namespace detail;

/// Unit roundoffs of float64 and float32; noise measured in float32 is scaled to float64 by their
/// ratio, 2^-29.
constexpr double kU64 = 0x1p-53;
constexpr double kU32 = 0x1p-24;
constexpr double kNoiseScale = kU64 / kU32;
/// The float32 variant must agree with the float64 one within this fraction of the quantity's
/// scale to count as rounding noise (float32 rounding is 2^-24; 2^14 of headroom for cancellation).
constexpr double kProbeFraction = 0x1p-10;

std::string number_text(double x) {
  std::ostringstream out;
  out.precision(6);
  out << x;
  return out.str();
}

std::string index_text(const std::vector<int64_t>& shape, size_t flat) {
  if (shape.empty()) return "";
  std::vector<int64_t> index(shape.size());
  auto rest = static_cast<int64_t>(flat);
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] > 0 ? rest % shape[d] : 0;
    rest = shape[d] > 0 ? rest / shape[d] : 0;
  }
  std::string out = "[";
  for (size_t d = 0; d < index.size(); ++d) out += (d ? ", " : "") + std::to_string(index[d]);
  return out + "]";
}

const char* const kDtypes[][2] = {{kAccumulated, "float64"}, {kLargeBatch, "float64"}, {kLargeBatchFp32, "float32"}};

}  // namespace

int Splits::micro_batches() const {
  int n = 0;
  for (const auto& window : windows) n += static_cast<int>(window.size());
  return n;
}

bool Splits::operator==(const Splits& other) const {
  return seed == other.seed && global_batch == other.global_batch && accumulation_steps == other.accumulation_steps &&
         windows == other.windows;
}

void validate(const Splits& splits, const std::string& root) {
  const auto fail = [&root](const std::string& field, const std::string& problem) {
    throw InputError(root + field + ": " + problem);
  };
  if (splits.seed >= (uint64_t{1} << 31)) fail(".seed", std::to_string(splits.seed) + " is not below 2^31");
  if (splits.windows.empty()) fail(".windows", "holds no window (at least one optimizer step)");
  const int64_t k = splits.accumulation_steps;
  if (k < 1) fail(".accumulation_steps", std::to_string(k) + " is not at least 1");
  for (size_t s = 0; s < splits.windows.size(); ++s) {
    const std::string window = ".windows[" + std::to_string(s) + "]";
    if (splits.windows[s].empty()) fail(window, "holds no micro-batch");
    const auto micros = static_cast<int64_t>(splits.windows[s].size());
    const bool last = s + 1 == splits.windows.size();
    if (micros > k || (!last && micros != k)) {
      fail(window, "holds " + std::to_string(micros) + " micro-batches; every window but the last holds " +
                       "accumulation_steps (" + std::to_string(k) + "), the last 1 to " + std::to_string(k));
    }
    std::set<int64_t> seen;
    int64_t examples = 0;
    for (size_t m = 0; m < splits.windows[s].size(); ++m) {
      const std::string micro = window + "[" + std::to_string(m) + "]";
      if (splits.windows[s][m].empty()) fail(micro, "holds no example");
      for (size_t i = 0; i < splits.windows[s][m].size(); ++i) {
        const int64_t index = splits.windows[s][m][i];
        const std::string at = micro + "[" + std::to_string(i) + "]";
        if (index < 0) fail(at, "example index " + std::to_string(index) + " is negative");
        if (!seen.insert(index).second) {
          fail(at, "example index " + std::to_string(index) + " appears twice in the window of step " +
                       std::to_string(s));
        }
      }
      examples += static_cast<int64_t>(splits.windows[s][m].size());
    }
    if (splits.global_batch < 1) fail(".global_batch", std::to_string(splits.global_batch) + " is not at least 1");
    if (examples > splits.global_batch) {
      fail(window, "holds " + std::to_string(examples) + " examples, more than global_batch " +
                       std::to_string(splits.global_batch));
    }
  }
}

nlohmann::json to_json(const Splits& splits) {
  return {{"seed", splits.seed},
          {"global_batch", splits.global_batch},
          {"accumulation_steps", splits.accumulation_steps},
          {"windows", splits.windows}};
}

std::string to_json_text(const Splits& splits) { return to_json(splits).dump(); }

Splits parse_splits(const std::string& text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(std::string("splits: malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) throw InputError("splits: not a JSON object");
  for (const auto& [key, value] : doc.items()) {
    if (key != "seed" && key != "global_batch" && key != "accumulation_steps" && key != "windows") {
      throw InputError("unknown key: splits." + key);
    }
  }
  const auto integer = [](const nlohmann::json& value, const std::string& field) -> int64_t {
    if (!value.is_number_integer()) throw InputError(field + ": not an integer");
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw InputError(field + ": too large");
    }
    return value.get<int64_t>();
  };
  Splits splits;
  if (!doc.contains("windows")) throw InputError("splits.windows: missing");
  const int64_t seed = doc.contains("seed") ? integer(doc["seed"], "splits.seed") : 0;
  if (seed < 0) throw InputError("splits.seed: negative");
  splits.seed = static_cast<uint64_t>(seed);
  const auto& windows = doc["windows"];
  if (!windows.is_array()) throw InputError("splits.windows: not a list of windows");
  int64_t largest = 0, most_micro_batches = 1;
  for (size_t s = 0; s < windows.size(); ++s) {
    const std::string window = "splits.windows[" + std::to_string(s) + "]";
    if (!windows[s].is_array()) throw InputError(window + ": not a list of micro-batches");
    auto& out = splits.windows.emplace_back();
    int64_t examples = 0;
    for (size_t m = 0; m < windows[s].size(); ++m) {
      const std::string micro = window + "[" + std::to_string(m) + "]";
      if (!windows[s][m].is_array()) throw InputError(micro + ": not a list of example indices");
      auto& indices = out.emplace_back();
      for (size_t i = 0; i < windows[s][m].size(); ++i) {
        indices.push_back(integer(windows[s][m][i], micro + "[" + std::to_string(i) + "]"));
      }
      examples += static_cast<int64_t>(indices.size());
    }
    largest = std::max(largest, examples);
    most_micro_batches = std::max(most_micro_batches, static_cast<int64_t>(out.size()));
  }
  // global_batch defaults to the largest window: what a shrunk counterexample needs; K to the most
  // micro-batches a window holds.
  splits.global_batch = doc.contains("global_batch") ? integer(doc["global_batch"], "splits.global_batch") : largest;
  splits.accumulation_steps = doc.contains("accumulation_steps")
                                  ? integer(doc["accumulation_steps"], "splits.accumulation_steps")
                                  : most_micro_batches;
  validate(splits, "splits");
  return splits;
}

Splits generate_splits(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto draw = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Splits splits;
  const int k = draw(1, kMaxDifferentialK);
  const int steps = draw(1, kMaxDifferentialSteps);
  const int batch = draw(k, k * kMaxDifferentialMicroSize);
  const bool partial = draw(0, 2) == 0;
  splits.global_batch = batch;
  splits.accumulation_steps = k;
  int64_t next = 0;
  for (int s = 0; s < steps; ++s) {
    // A composition of the batch into k positive sizes: k - 1 distinct cuts among 1..batch-1.
    std::vector<int> cuts(static_cast<size_t>(batch - 1));
    for (int i = 0; i < batch - 1; ++i) cuts[static_cast<size_t>(i)] = i + 1;
    std::shuffle(cuts.begin(), cuts.end(), rng);
    cuts.resize(static_cast<size_t>(k - 1));
    cuts.push_back(0);
    cuts.push_back(batch);
    std::sort(cuts.begin(), cuts.end());
    std::vector<int> sizes;
    for (size_t i = 1; i < cuts.size(); ++i) sizes.push_back(cuts[i] - cuts[i - 1]);
    if (partial && s == steps - 1) {
      if (k > 1) {
        sizes.resize(static_cast<size_t>(draw(1, k - 1)));
      } else if (batch > 1) {
        sizes[0] = draw(1, batch - 1);
      }
    }
    auto& window = splits.windows.emplace_back();
    for (const int size : sizes) {
      auto& micro = window.emplace_back();
      for (int i = 0; i < size; ++i) micro.push_back(next++);
    }
  }
  splits.seed = rng() & 0x7fffffffu;
  return splits;
}

std::vector<Splits> shrink_candidates(const Splits& splits) {
  std::vector<Splits> out;
  const auto with_global_batch = [](Splits s) {
    int64_t largest = 1;
    for (const auto& window : s.windows) {
      int64_t examples = 0;
      for (const auto& micro : window) examples += static_cast<int64_t>(micro.size());
      largest = std::max(largest, examples);
    }
    s.global_batch = largest;
    return s;
  };
  const int steps = splits.steps();
  if (steps > 1) {
    Splits last = splits;  // the last step dropped
    last.windows.pop_back();
    out.push_back(with_global_batch(last));
    Splits first = splits;  // the first dropped
    first.windows.erase(first.windows.begin());
    out.push_back(with_global_batch(first));
  }
  const auto k = static_cast<size_t>(splits.accumulation_steps);
  // K - 1: in every window that holds them, micro-batches m and m + 1 merged, or m dropped (a
  // partial last window holding m or fewer keeps its own).
  for (size_t m = 0; m + 1 < k; ++m) {
    Splits merged = splits;
    merged.accumulation_steps -= 1;
    for (auto& w : merged.windows) {
      if (w.size() <= m + 1) continue;
      w[m].insert(w[m].end(), w[m + 1].begin(), w[m + 1].end());
      w.erase(w.begin() + static_cast<std::ptrdiff_t>(m + 1));
    }
    out.push_back(with_global_batch(merged));
  }
  for (size_t m = 0; k > 1 && m < k; ++m) {
    Splits dropped = splits;
    dropped.accumulation_steps -= 1;
    for (auto& w : dropped.windows) {
      if (w.size() > m && w.size() > 1) w.erase(w.begin() + static_cast<std::ptrdiff_t>(m));
    }
    out.push_back(with_global_batch(dropped));
  }
  // A shorter last window.
  const auto& tail = splits.windows.back();
  for (size_t m = 0; tail.size() > 1 && m < tail.size(); ++m) {
    Splits shorter = splits;
    auto& w = shorter.windows.back();
    w.erase(w.begin() + static_cast<std::ptrdiff_t>(m));
    out.push_back(with_global_batch(shorter));
  }
  for (int s = 0; s < steps; ++s) {
    const auto& window = splits.windows[static_cast<size_t>(s)];
    for (size_t m = 0; m < window.size(); ++m) {  // one example fewer
      if (window[m].size() < 2) continue;
      Splits fewer = splits;
      fewer.windows[static_cast<size_t>(s)][m].pop_back();
      out.push_back(with_global_batch(fewer));
    }
  }
  return out;
}

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

// ---- judging -------------------------------------------------------------------------------

namespace {

/// The worst of one check over a case.
struct Worst {
  double ratio = 0.0;
  std::string detail = "nothing compared";
  void offer(double r, const std::function<std::string()>& describe) {
    if (std::isnan(r)) r = std::numeric_limits<double>::infinity();
    if (r > ratio || detail == "nothing compared") {
      ratio = r;
      detail = describe();
    }
  }
};

/// max_i |fp32_i - lb_i| over a tensor (infinite if either is not finite).
double measured_noise(const std::vector<double>& fp32, const std::vector<double>& lb) {
  double noise = 0.0;
  for (size_t i = 0; i < lb.size(); ++i) {
    const double d = std::fabs(fp32[i] - lb[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    noise = std::max(noise, d);
  }
  return noise;
}

/// Judges accumulated against large_batch over one tensor (or a loss: one element) of step `s`.
void judge_tensor(Worst& worst, const std::string& what, const std::string& noise_of, int s, int k,
                  const std::vector<int64_t>& shape, const std::vector<double>& acc, const std::vector<double>& lb,
                  double noise32) {
  const double noise64 = kNoiseScale * noise32;
  for (size_t i = 0; i < acc.size(); ++i) {
    const double error = std::fabs(acc[i] - lb[i]);
    const double summation = (k + 1) * kU64 * (std::fabs(acc[i]) + std::fabs(lb[i]));
    const double tolerance = reference::kToleranceMargin * (2.0 * noise64 + summation);
    double ratio;
    if (!std::isfinite(acc[i]) || !std::isfinite(lb[i]) || !std::isfinite(noise64)) {
      ratio = std::numeric_limits<double>::infinity();
    } else if (tolerance == 0.0) {
      ratio = error == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
    } else {
      ratio = error / tolerance;
    }
    worst.offer(ratio, [&] {
      std::ostringstream out;
      out.precision(17);
      out << "step " << s << " " << what << index_text(shape, i) << ": accumulated " << acc[i] << ", large batch "
          << lb[i];
      out.precision(3);
      out << ", error " << error << ", tolerance " << tolerance << " = " << reference::kToleranceMargin
          << " x (2 x noise64 " << noise64 << " + (K+1 = " << (k + 1) << ") u64 (|acc| + |lb|) " << summation
          << "); noise64 = 2^-29 x " << noise32 << " = max |large_batch_fp32 - large_batch| over " << noise_of;
      return out.str();
    });
  }
}

/// The probe: the float32 variant within 2^-10 of the quantity's scale at each step.
void probe(Worst& worst, const std::string& what, int s, const std::vector<const std::vector<double>*>& lb,
           const std::vector<const std::vector<double>*>& fp32) {
  double noise = 0.0, scale = 0.0;
  for (size_t t = 0; t < lb.size(); ++t) {
    noise = std::max(noise, measured_noise(*fp32[t], *lb[t]));
    for (const double v : *lb[t]) scale = std::max(scale, std::fabs(v));
  }
  const double limit = kProbeFraction * scale;
  const double ratio = noise == 0.0 ? 0.0 : limit > 0.0 ? noise / limit : std::numeric_limits<double>::infinity();
  worst.offer(ratio, [&] {
    return "step " + std::to_string(s) + " " + what + ": max |large_batch_fp32 - large_batch| " + number_text(noise) +
           ", limit 2^-10 x max |large_batch| " + number_text(scale) + " = " + number_text(limit) +
           (ratio < 1.0 ? "" : " — the float32 run is not the float64 run's rounding noise, so it cannot "
                               "calibrate the tolerances");
  });
}

}  // namespace

std::vector<std::string> differential_check_names() {
  return {"differential-gradients", "differential-losses", "differential-params", "differential-counters",
          "differential-fp32-probe"};
}

namespace {

/// What to do when the float64 runs are not float64 inside (the premise of differential mode).
constexpr const char* kFloat64Fix =
    ": differential mode measures float32 rounding against float64 runs, so the float64 runs must compute "
    "in float64 throughout. Build the model and its data in float64 (model.double(), float64 inputs) and "
    "look for layers that cast to float32 inside whatever the input dtype (Hugging Face Llama's RMSNorm, "
    "rotary embeddings, softmax and logits do: patch them to keep the input dtype for this check)";

/// Refuses a result whose float64 runs are float32 computations in disguise (InputError, exit 3):
/// every value of both is a float32 number, or at some step the float32 large batch equals the
/// float64 one exactly while the accumulated run differs from it (a noise of 0 would collapse every
/// tolerance and flag a correct stack).
void check_float64_premise(const DifferentialResult& result) {
  int64_t values = 0, float32_values = 0;
  const auto count = [&](double v) {
    if (v == 0.0 || !std::isfinite(v)) return;
    ++values;
    float32_values += representable(kFp32, v);
  };
  for (const auto* run : {&result.accumulated, &result.large_batch}) {
    for (const auto& step : *run) {
      count(step.loss);
      for (const auto* tensors : {&step.grad, &step.params_after}) {
        for (const auto& t : *tensors) {
          for (double v : t.values) count(v);
        }
      }
    }
  }
  // A float64 computation lands on a float32 number with probability 2^-29 per value.
  if (values >= 8 && float32_values == values) {
    throw InputError("result: every one of the " + std::to_string(values) +
                     " nonzero values of the accumulated and large_batch runs is a float32 number: they were "
                     "computed in float32, not float64" + std::string(kFloat64Fix));
  }
  const auto compared = std::min(result.accumulated.size(), result.large_batch.size());
  for (size_t s = 0; s < compared; ++s) {
    const auto& acc = result.accumulated[s];
    const auto& lb = result.large_batch[s];
    const auto& fp32 = result.large_batch_fp32[s];
    double noise = 0.0, difference = 0.0;
    for (size_t t = 0; t < result.names.size(); ++t) {
      noise = std::max(noise, measured_noise(fp32.grad[t].values, lb.grad[t].values));
      difference = std::max(difference, measured_noise(acc.grad[t].values, lb.grad[t].values));
    }
    if (noise == 0.0 && difference > 0.0) {
      throw InputError("result: at step " + std::to_string(s) +
                       " the large_batch_fp32 gradient equals the float64 large_batch's exactly (a measured noise "
                       "of 0) while the accumulated gradient differs from it by " + number_text(difference) +
                       ": the float64 large batch was computed in float32" + std::string(kFloat64Fix));
    }
    // The loss alone can be cast (a loss function that takes float32 logits: transformers'
    // ForCausalLMLoss calls logits.float()).
    if (fp32.loss == lb.loss && acc.loss != lb.loss && std::isfinite(acc.loss) && representable(kFp32, lb.loss)) {
      throw InputError("result: at step " + std::to_string(s) +
                       " the large_batch_fp32 loss equals the float64 large_batch's exactly (a measured noise of 0) "
                       "while the accumulated loss differs from it by " + number_text(std::fabs(acc.loss - lb.loss)) +
                       ": the float64 loss was computed in float32 (a loss function that casts its inputs: "
                       "transformers' ForCausalLMLoss calls logits.float())" + std::string(kFloat64Fix));
    }
  }
}

/// The signature of a failing accumulated run (Note [diagnosis], core/signatures.h): a step count
/// that is not the windows', or the first window's gradient K or 1/K times the large batch's
/// (within twice the tolerance the gradient was judged by, scaled as the hypothesis is); empty when
/// none fits.
std::string diagnose_differential(const Splits& splits, const DifferentialResult& result) {
  if (auto s = step_count_signature(static_cast<int64_t>(result.accumulated.size()), splits.steps()); !s.empty()) {
    return s;
  }
  const auto& acc = result.accumulated.front();
  const auto& lb = result.large_batch.front();
  const auto& fp32 = result.large_batch_fp32.front();
  const int k = static_cast<int>(splits.windows.front().size());
  double noise32 = 0.0;
  for (size_t t = 0; t < result.names.size(); ++t) {
    noise32 = std::max(noise32, measured_noise(fp32.grad[t].values, lb.grad[t].values));
  }
  const double noise64 = kNoiseScale * noise32;
  for (const auto& [factor, text] : gradient_factor_signatures(k, 1)) {
    bool fits = true;
    for (size_t t = 0; fits && t < result.names.size(); ++t) {
      for (size_t i = 0; fits && i < lb.grad[t].values.size(); ++i) {
        const double hypothesis = factor * lb.grad[t].values[i], observed = acc.grad[t].values[i];
        const double summation = (k + 1) * kU64 * (std::fabs(observed) + std::fabs(hypothesis));
        const double tolerance = 2.0 * reference::kToleranceMargin * (2.0 * noise64 * factor + summation);
        fits = std::fabs(observed - hypothesis) <= tolerance;
      }
    }
    if (fits) return "the gradient is " + text;
  }
  return {};
}

}  // namespace

std::vector<DifferentialCheck> judge_differential(const Splits& splits, const DifferentialResult& result) {
  const int steps = splits.steps();
  if (static_cast<int>(result.large_batch.size()) != steps || static_cast<int>(result.large_batch_fp32.size()) != steps) {
    throw InputError("result: the large batch runs hold " + std::to_string(result.large_batch.size()) + " and " +
                     std::to_string(result.large_batch_fp32.size()) + " steps for " + std::to_string(steps) +
                     " windows");
  }
  check_float64_premise(result);
  // A step count that is not the windows' is a verdict (the counters check), judged on the steps
  // that exist: the first min(steps, reported) are compared.
  const int reported = static_cast<int>(result.accumulated.size());
  const int compared = std::min(steps, reported);
  Worst grads, losses, params, noise;
  for (int s = 0; s < steps; ++s) {
    const auto& lb = result.large_batch[static_cast<size_t>(s)];
    const auto& fp32 = result.large_batch_fp32[static_cast<size_t>(s)];
    std::vector<const std::vector<double>*> lb_grads, fp32_grads, lb_params, fp32_params;
    for (size_t t = 0; t < result.names.size(); ++t) {
      lb_grads.push_back(&lb.grad[t].values);
      fp32_grads.push_back(&fp32.grad[t].values);
      lb_params.push_back(&lb.params_after[t].values);
      fp32_params.push_back(&fp32.params_after[t].values);
    }
    const std::vector<double> lb_loss{lb.loss}, fp32_loss{fp32.loss};
    probe(noise, "grad", s, lb_grads, fp32_grads);
    probe(noise, "params_after", s, lb_params, fp32_params);
    probe(noise, "loss", s, {&lb_loss}, {&fp32_loss});
  }
  for (int s = 0; s < compared; ++s) {
    const auto& acc = result.accumulated[static_cast<size_t>(s)];
    const auto& lb = result.large_batch[static_cast<size_t>(s)];
    const auto& fp32 = result.large_batch_fp32[static_cast<size_t>(s)];
    const int k = static_cast<int>(splits.windows[static_cast<size_t>(s)].size());
    // The noise is measured over the step's whole gradient (and whole parameters): one backward
    // pass computes every parameter's gradient, and a maximum over all of them is a steadier
    // estimate of its rounding than one over a tensor of a few elements (a bias).
    double grad_noise = 0.0, params_noise = 0.0;
    for (size_t t = 0; t < result.names.size(); ++t) {
      grad_noise = std::max(grad_noise, measured_noise(fp32.grad[t].values, lb.grad[t].values));
      params_noise = std::max(params_noise, measured_noise(fp32.params_after[t].values, lb.params_after[t].values));
    }
    for (size_t t = 0; t < result.names.size(); ++t) {
      const std::string& name = result.names[t];
      judge_tensor(grads, "grad" + quoted(name), "the step's grad", s, k, acc.grad[t].shape, acc.grad[t].values,
                   lb.grad[t].values, grad_noise);
      judge_tensor(params, "params_after" + quoted(name), "the step's params_after", s, k,
                   acc.params_after[t].shape, acc.params_after[t].values, lb.params_after[t].values, params_noise);
    }
    const std::vector<double> acc_loss{acc.loss}, lb_loss{lb.loss}, fp32_loss{fp32.loss};
    judge_tensor(losses, "loss", "the loss", s, k, {}, acc_loss, lb_loss, measured_noise(fp32_loss, lb_loss));
  }

  // Counters: one optimizer step per window, every micro-batch once, gradients zeroed once per
  // window (a zero_grad before the first window too is fine).
  std::vector<std::string> problems;
  if (reported != steps) {
    problems.push_back("steps in the accumulated run: " + std::to_string(reported) + " over " + std::to_string(steps) +
                       " windows (the first " + std::to_string(compared) + " compared)");
  }
  const auto& c = result.counters;
  if (c.optimizer_steps != steps) {
    problems.push_back("optimizer.step() calls: " + std::to_string(c.optimizer_steps) + " over " +
                       std::to_string(steps) + " windows; one per window makes " + std::to_string(steps));
  }
  if (c.micro_batches != splits.micro_batches()) {
    problems.push_back("micro-batches: " + std::to_string(c.micro_batches) + ", but the case holds " +
                       std::to_string(splits.micro_batches()));
  }
  if (c.zero_grads != steps && c.zero_grads != steps + 1) {
    problems.push_back("zero_grad() calls: " + std::to_string(c.zero_grads) + " over " + std::to_string(steps) +
                       " windows; once per window makes " + std::to_string(steps) + " (or " +
                       std::to_string(steps + 1) + " with one before the first)");
  }
  std::string counters_detail;
  for (const auto& p : problems) counters_detail += (counters_detail.empty() ? "" : "; ") + p;
  if (problems.empty()) {
    counters_detail = std::to_string(c.optimizer_steps) + " optimizer steps, " + std::to_string(c.micro_batches) +
                      " micro-batches, " + std::to_string(c.zero_grads) + " zero_grad() calls over " +
                      std::to_string(steps) + " windows";
  }

  const auto names = differential_check_names();
  std::vector<DifferentialCheck> checks = {
      {names[0], "the accumulated gradient handed to the optimizer equals the large batch's", grads.ratio,
       grads.detail},
      {names[1], "the accumulated window loss equals the large batch's", losses.ratio, losses.detail},
      {names[2], "the parameters after each accumulated step equal the large batch's", params.ratio, params.detail},
      {names[3], "one optimizer step and one zero_grad per window, every micro-batch once",
       problems.empty() ? 0.0 : std::numeric_limits<double>::infinity(), counters_detail},
      {names[4], "the float32 large batch differs from the float64 one by rounding noise only", noise.ratio,
       noise.detail},
  };
  if (any_failed(checks) && !checks[4].failed()) {
    const std::string diagnosis = diagnose_differential(splits, result);
    for (size_t i = 0; i < 4; ++i) {
      if (checks[i].failed()) checks[i].diagnosis = diagnosis;
    }
  }
  return checks;
}

bool any_failed(const std::vector<DifferentialCheck>& checks) {
  return std::any_of(checks.begin(), checks.end(), [](const DifferentialCheck& c) { return c.failed(); });
}

}  // namespace gacc::external
