// libFuzzer: any bytes as the result file of a fixed small case (an MLP with Adam over two steps).
// Either a trace of the right shape or an InputError naming the key; never a crash or a hang.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/errors.h"
#include "core/scenario.h"
#include "implementations/external/case_file.h"

namespace {

const gacc::Scenario& the_case() {
  static const gacc::Scenario scenario = gacc::parse_scenario(
      R"({"model": {"arch": "mlp_tanh", "input_dim": 2, "hidden_dim": 3, "output_dim": 1, "init_seed": 4},
          "data": {"seed": 9, "global_batch": 3, "windows": [[[2, 1]], [[1, 2]]]},
          "optimizer": {"kind": "adam", "lr": 0.01}, "accumulation_steps": 2, "steps": 2})");
  return scenario;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(data, data + size);
  try {
    const auto trace = gacc::external::decode_result(bytes, the_case(), "fuzz.pt");
    if (trace.steps.size() != 2 || trace.steps[0].grad.size() != 13 || trace.steps[1].params_after.size() != 13) {
      std::abort();
    }
  } catch (const gacc::InputError&) {
  }
  return 0;
}
