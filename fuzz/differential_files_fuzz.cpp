// libFuzzer: any bytes as a differential case and as the differential result of fixed splits (two
// steps, an uneven window, a partial one). Either a file that reads (a case re-encodes to itself)
// or an InputError naming the key; never a crash, a hang or another exception.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/errors.h"
#include "implementations/external/differential.h"

namespace {

const gacc::Splits& the_splits() {
  static const gacc::Splits splits =
      gacc::parse_splits(R"({"seed": 4, "global_batch": 3, "windows": [[[0, 1], [2]], [[3]]]})");
  return splits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(data, data + size);
  try {
    const auto splits = gacc::external::decode_differential_case(bytes, "fuzz.pt");
    if (!(gacc::external::decode_differential_case(gacc::external::encode_differential_case(splits), "again.pt") ==
          splits)) {
      std::abort();
    }
  } catch (const gacc::InputError&) {
  }
  try {
    const auto result = gacc::external::decode_differential_result(bytes, the_splits(), "fuzz.pt");
    if (result.accumulated.size() != 2 || result.large_batch_fp32.size() != 2) std::abort();
  } catch (const gacc::InputError&) {
  }
  return 0;
}
