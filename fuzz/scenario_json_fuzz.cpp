// libFuzzer: any bytes as Scenario JSON. Every input is either a valid scenario (which then
// round-trips through its JSON unchanged) or an InputError naming the problem; nothing else.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/errors.h"
#include "core/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  gacc::Scenario scenario;
  try {
    scenario = gacc::parse_scenario(text);
  } catch (const gacc::InputError&) {
    return 0;
  }
  // Accepted: its own JSON must read back as the same scenario.
  const std::string once = gacc::to_json_text(scenario);
  if (gacc::to_json_text(gacc::parse_scenario(once)) != once) std::abort();
  return 0;
}
