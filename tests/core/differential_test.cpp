// Differential mode's splits: JSON round trip, and bad splits name the field.

#include <catch2/catch.hpp>

#include "core/differential.h"
#include "tests/support/errors.h"
#include "tests/support/splits.h"

namespace {

using gacc::Splits;
using gacc::testing::message_of;
using gacc::testing::uneven_splits;

}  // namespace

TEST_CASE("splits JSON round-trips and bad splits name the field", "[core][differential]") {
  const Splits s = uneven_splits();
  CHECK(gacc::parse_splits(gacc::to_json_text(s)) == s);
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[[0,1],[1]]]})"); }),
             Catch::Contains("splits.windows[0][1][0]: example index 1 appears twice"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[[0,-1]]]})"); }),
             Catch::Contains("splits.windows[0][0][1]: example index -1 is negative"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[]]})"); }),
             Catch::Contains("splits.windows[0]: holds no micro-batch"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[[0]]],"turbo":1})"); }),
             Catch::Contains("unknown key: splits.turbo"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[["a"]]]})"); }),
             Catch::Contains("splits.windows[0][0][0]: not an integer"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"global_batch":1,"windows":[[[0,1]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 2 examples, more than global_batch 1"));
  // K: every window but the last holds K micro-batches (what Trainer, accelerate and Lightning can
  // run); without the key it is the most micro-batches a window holds.
  CHECK(gacc::parse_splits(R"({"windows":[[[0],[1]],[[2]]]})").accumulation_steps == 2);
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"windows":[[[0]],[[1],[2]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 1 micro-batches; every window but the last holds "
                             "accumulation_steps (2), the last 1 to 2"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"accumulation_steps":1,"windows":[[[0],[1]]]})"); }),
             Catch::Contains("splits.windows[0]: holds 2 micro-batches"));
  CHECK_THAT(message_of([] { gacc::parse_splits(R"({"accumulation_steps":0,"windows":[[[0]]]})"); }),
             Catch::Contains("splits.accumulation_steps: 0 is not at least 1"));
}
