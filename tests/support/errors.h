#pragma once
/// What an action's InputError says, for tests of readers and parsers.

#include <functional>
#include <string>

#include "core/errors.h"

namespace gacc::testing {

/// The message of the InputError `action` throws, or "no InputError".
inline std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no InputError";
}

}  // namespace gacc::testing
