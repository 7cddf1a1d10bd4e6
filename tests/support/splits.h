#pragma once
// Hand-written differential splits shared by tests.

#include "core/differential.h"

namespace gacc::testing {

/// Three windows of K = 3 uneven micro-batches, the last partial (two micro-batches).
inline Splits uneven_splits() {
  Splits s;
  s.seed = 3;
  s.global_batch = 7;
  s.accumulation_steps = 3;
  s.windows = {{{0, 1, 2, 3}, {4}, {5, 6}}, {{7}, {8, 9, 10, 11, 12}, {13}}, {{14, 15}, {16}}};  // last: partial
  return s;
}

}  // namespace gacc::testing
