#include "core/json_reader.h"

#include <cmath>
#include <sstream>

#include "core/errors.h"

namespace gacc {
namespace {

std::string type_name(const nlohmann::json& json) { return json.type_name(); }

}  // namespace

JsonObjectReader::JsonObjectReader(const nlohmann::json& json, std::string path)
    : json_(json), path_(std::move(path)) {
  if (!json_.is_object()) {
    throw InputError(path_ + " must be a JSON object, got " + type_name(json_));
  }
}

bool JsonObjectReader::has(const std::string& key) const { return json_.contains(key); }

const nlohmann::json& JsonObjectReader::at(const std::string& key) {
  auto it = json_.find(key);
  if (it == json_.end()) throw InputError(path_of(key) + " is missing");
  read_.insert(key);
  return *it;
}

int64_t json_integer(const nlohmann::json& json, const std::string& path, int64_t min, int64_t max) {
  int64_t value = 0;
  if (json.is_number_integer()) {
    if (json.is_number_unsigned() && json.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw InputError(path + " must be at most " + std::to_string(max) + ", got " + json.dump());
    }
    value = json.get<int64_t>();
  } else if (json.is_number_float() && std::isfinite(json.get<double>()) &&
             std::floor(json.get<double>()) == json.get<double>() &&
             std::fabs(json.get<double>()) < 9.0e15) {
    value = static_cast<int64_t>(json.get<double>());
  } else {
    throw InputError(path + " must be an integer, got " + json.dump());
  }
  if (value < min || value > max) {
    std::ostringstream message;
    message << path << " must be in [" << min << ", " << max << "], got " << value;
    throw InputError(message.str());
  }
  return value;
}

int64_t JsonObjectReader::integer(const std::string& key, int64_t min, int64_t max) {
  return json_integer(at(key), path_of(key), min, max);
}

int64_t JsonObjectReader::integer_or(const std::string& key, int64_t fallback, int64_t min,
                                     int64_t max) {
  return has(key) ? integer(key, min, max) : fallback;
}

uint64_t JsonObjectReader::seed(const std::string& key) {
  const auto& value = at(key);
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    throw InputError(path_of(key) + " must be a non-negative integer, got " + value.dump());
  }
  return value.get<uint64_t>();
}

double JsonObjectReader::number(const std::string& key, double min, double max) {
  const auto& value = at(key);
  if (!value.is_number()) {
    throw InputError(path_of(key) + " must be a number, got " + value.dump());
  }
  const double x = value.get<double>();
  if (!std::isfinite(x) || x < min || x > max) {
    std::ostringstream message;
    message << path_of(key) << " must be in [" << min << ", " << max << "], got " << value.dump();
    throw InputError(message.str());
  }
  return x;
}

double JsonObjectReader::number_or(const std::string& key, double fallback, double min, double max) {
  return has(key) ? number(key, min, max) : fallback;
}

bool JsonObjectReader::boolean_or(const std::string& key, bool fallback) {
  if (!has(key)) return fallback;
  const auto& value = at(key);
  if (!value.is_boolean()) {
    throw InputError(path_of(key) + " must be true or false, got " + value.dump());
  }
  return value.get<bool>();
}

std::string JsonObjectReader::string(const std::string& key) {
  const auto& value = at(key);
  if (!value.is_string()) {
    throw InputError(path_of(key) + " must be a string, got " + value.dump());
  }
  return value.get<std::string>();
}

std::string JsonObjectReader::string_or(const std::string& key, const std::string& fallback) {
  return has(key) ? string(key) : fallback;
}

void JsonObjectReader::forbid(const std::string& key, const std::string& why) const {
  if (has(key)) throw InputError(path_of(key) + " does not apply " + why);
}

void JsonObjectReader::finish() const {
  std::string unknown;
  for (auto it = json_.begin(); it != json_.end(); ++it) {
    if (!read_.count(it.key())) unknown += (unknown.empty() ? "" : ", ") + path_of(it.key());
  }
  if (!unknown.empty()) throw InputError("unknown key: " + unknown);
}

std::string quoted_entry(const std::string& name) { return "[\"" + name + "\"]"; }

}  // namespace gacc
