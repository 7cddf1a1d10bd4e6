#pragma once
/// What the readers of gacc's `.pt` files share (case_file.cpp, differential.cpp): LibTorch's
/// containers for writing, and `Node`, a value of a file with the path that names it in every
/// message (`result.steps[1].grad["fc1.weight"]: shape [3], expected [2]`), read through a zip
/// reader that never reads past the file's bytes. Internal to implementations/external.

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/json_reader.h"

namespace gacc::external::detail {

/// `[3, 2]`.
std::string shape_text(c10::IntArrayRef shape);

inline c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}
inline c10::impl::GenericList new_list() { return c10::impl::GenericList(c10::AnyType::get()); }
/// The bytes `torch::pickle_save` makes of a dictionary.
std::vector<char> pickled(const c10::impl::GenericDict& dict);

bool elements_in_storage(const torch::Tensor& t);

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
    return Node(found->value(), path_ + quoted_entry(name));
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

inline const std::set<torch::ScalarType> kRealTypes = {torch::kFloat32, torch::kFloat64};
inline const char* const kRealText = "float32 or float64";

/// The root of a file, its format tag and version (`version`) checked.
Node open_file(const std::vector<char>& bytes, const std::string& origin, const std::string& root,
               const std::string& format, int64_t version);
/// The format tag of a file (its "format" key), for telling formats apart; throws InputError
/// for a file that is no dictionary or has no string tag.
std::string format_of(const std::vector<char>& bytes, const std::string& origin);

std::vector<char> file_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<char>& bytes);

}  // namespace gacc::external::detail
