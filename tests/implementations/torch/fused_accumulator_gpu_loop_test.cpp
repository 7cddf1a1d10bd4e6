// The loop on the GPU's fused accumulator holds every property the LibTorch loop holds: every
// property of the matrix judges the CUDA kernels (skipped without a CUDA device).

#include "implementations/torch/fused_accumulator_gpu_loop.h"

#include <catch2/catch.hpp>

#include "tests/implementations/torch/passes_every_property.h"

TEST_CASE("the fused-accumulator loop on the GPU passes every property with ratio at most 0.5", "[gpu]") {
  gacc::test::check_passes_every_property(gacc::torch_recipes::FusedAccumulatorGpuLoop{});
}
