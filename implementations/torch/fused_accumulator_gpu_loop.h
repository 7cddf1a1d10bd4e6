#pragma once
/// `fused-accumulator-gpu`: the fused-accumulator loop on the GPU's GradAccumulator
/// (implementations/cuda/grad_accumulator.h). The model runs where gacc's LibTorch runs (the CPU);
/// after each backward the gradients are copied to the device in one transfer and summed there by
/// the multi-tensor kernel; finalize (norm, coefficient, clip) runs on the device and the buffer
/// comes back as the gradients the optimizer steps with. So every property of the matrix judges the
/// CUDA kernels. Registered only where a CUDA device is present (built whenever nvcc is found).

#include "implementations/torch/fused_accumulator_loop.h"

namespace gacc::torch_recipes {

class FusedAccumulatorGpuLoop : public FusedAccumulatorLoop {
 public:
  std::string name() const override { return "fused-accumulator-gpu"; }
  std::string summary() const override;

 protected:
  std::shared_ptr<FlatGradientBuffer> make_buffer(std::vector<int64_t> sizes) const override;
};

}  // namespace gacc::torch_recipes
