// The loop on gacc's own accumulation path (the fused accumulator's CPU twin) holds every property
// the LibTorch loop holds.

#include "implementations/torch/fused_accumulator_loop.h"

#include <catch2/catch.hpp>

#include "tests/implementations/torch/passes_every_property.h"

TEST_CASE("the fused-accumulator loop passes every property with ratio at most 0.5", "[torch][accumulator]") {
  gacc::test::check_passes_every_property(gacc::torch_recipes::FusedAccumulatorLoop{});
}
