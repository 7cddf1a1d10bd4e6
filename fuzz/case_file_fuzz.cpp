// libFuzzer: any bytes as a case file. Either a case (whose scenario exports to the same case) or
// an InputError naming the key; never a crash, a hang or another exception.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/errors.h"
#include "implementations/external/case_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(data, data + size);
  try {
    const gacc::Scenario scenario = gacc::external::decode_case(bytes, "fuzz.pt");
    gacc::external::decode_case(gacc::external::encode_case(scenario), "again.pt");
  } catch (const gacc::InputError&) {
  }
  return 0;
}
