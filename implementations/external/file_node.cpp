#include "implementations/external/file_node.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/csrc/jit/serialization/storage_context.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/files.h"

namespace gacc::external::detail {
namespace {

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
/// the bounded reader, with every tensor storage made beforehand from its record, exactly as many
/// bytes as the archive holds and not resizable. Left to itself the unpickler sizes a storage from
/// the element count the pickle states and lets a later tensor of the same storage resize it in
/// place (found by fuzzing: a tensor naming another's 16-byte storage read 72 bytes from it). With
/// fixed storages a tensor that does not fit its storage is refused while loading (a resize of a
/// storage that is not resizable) or by Node::raw_tensor.
c10::IValue load_archive(const std::vector<char>& bytes) {
  caffe2::serialize::PyTorchStreamReader archive(std::make_shared<BoundedReader>(bytes));
  auto storages = std::make_shared<torch::jit::DeserializationStorageContext>();
  static const std::string kTensorDirectory = "data/";
  for (const auto& record : archive.getAllRecords()) {
    if (record.rfind(kTensorDirectory, 0) != 0) continue;
    auto [data, size] = archive.getRecord(record);
    storages->addStorage(record.substr(kTensorDirectory.size()),
                         c10::Storage(c10::Storage::use_byte_size_t(), size, std::move(data), /*allocator=*/nullptr,
                                      /*resizable=*/false));
  }
  return torch::jit::readArchiveAndTensors("data", "", "", std::nullopt, std::nullopt, std::nullopt, archive,
                                           torch::jit::Unpickler::defaultTypeParser, storages);
}


/// The root of a file: a dictionary.
Node open_root(const std::vector<char>& bytes, const std::string& origin, const std::string& root) {
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
  return node;
}

}  // namespace

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

std::vector<char> pickled(const c10::impl::GenericDict& dict) { return torch::pickle_save(c10::IValue(dict)); }

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

Node open_file(const std::vector<char>& bytes, const std::string& origin, const std::string& root,
               const std::string& format, int64_t expected_version) {
  const Node node = open_root(bytes, origin, root);
  const std::string tag = node.at("format").string();
  if (tag != format) node.at("format").fail("\"" + tag + "\", expected \"" + format + "\"");
  const int64_t version = node.at("version").integer();
  if (version != expected_version) {
    node.at("version").fail(std::to_string(version) + ", but this gacc reads version " +
                            std::to_string(expected_version) + " only");
  }
  return node;
}

std::string format_of(const std::vector<char>& bytes, const std::string& origin) {
  return open_root(bytes, origin, "file").at("format").string();
}

std::vector<char> file_bytes(const std::string& path) {
  const std::string text = read_file(path);
  return std::vector<char>(text.begin(), text.end());
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace gacc::external::detail
