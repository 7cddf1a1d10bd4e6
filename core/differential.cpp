#include "core/differential.h"

#include <algorithm>
#include <set>

#include "core/errors.h"

namespace gacc {

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

}  // namespace gacc
