#pragma once
/// Strict reading of JSON objects: every value is checked for type and range, every key must be
/// known, and every error names the field by its path (e.g. "scenario.model.input_dim").

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace gacc {

class JsonObjectReader {
 public:
  /// Throws InputError unless `json` is an object.
  JsonObjectReader(const nlohmann::json& json, std::string path);

  bool has(const std::string& key) const;
  /// The value at `key`; throws InputError if it is missing.
  const nlohmann::json& at(const std::string& key);
  std::string path_of(const std::string& key) const { return path_ + "." + key; }

  int64_t integer(const std::string& key, int64_t min, int64_t max);
  int64_t integer_or(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  uint64_t seed(const std::string& key);
  double number(const std::string& key, double min, double max);
  double number_or(const std::string& key, double fallback, double min, double max);
  bool boolean_or(const std::string& key, bool fallback);
  std::string string(const std::string& key);
  std::string string_or(const std::string& key, const std::string& fallback);

  /// Throws InputError if `key` is present: it is a known key that does not apply here (`why`).
  void forbid(const std::string& key, const std::string& why) const;

  /// Throws InputError naming every key that was never read.
  void finish() const;

 private:
  const nlohmann::json& json_;
  std::string path_;
  std::set<std::string> read_;
};

/// Checks that `json` is an integer in [min, max]; `path` names it in the error.
int64_t json_integer(const nlohmann::json& json, const std::string& path, int64_t min, int64_t max);

/// `["name"]`: how an entry of a `{name: value}` dictionary appears in a path — in the file readers'
/// messages (`result.steps[1].grad["fc1.weight"]`) and the differential judge's details.
std::string quoted_entry(const std::string& name);

}  // namespace gacc
