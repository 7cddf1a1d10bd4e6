#include "implementations/torch/fused_accumulator_gpu_loop.h"

#include "implementations/cuda/grad_accumulator.h"

namespace gacc::torch_recipes {
namespace {

class GpuBuffer : public FlatGradientBuffer {
 public:
  explicit GpuBuffer(std::vector<int64_t> sizes) : gpu_(std::move(sizes)) {}
  void accumulate(const std::vector<cuda::GradientView>& host_grads, float scale) override {
    gpu_.accumulate_from_host(host_grads, scale);
  }
  cuda::FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) override {
    return gpu_.finalize(inv_scale, max_norm, apply_clip);
  }
  const float* host_data() override {
    host_ = gpu_.copy_to_host();
    return host_.data();
  }
  const cuda::BufferLayout& layout() const override { return gpu_.layout(); }

 private:
  cuda::GradAccumulator gpu_;
  std::vector<float> host_;
};

}  // namespace

std::string FusedAccumulatorGpuLoop::summary() const {
  return "the fused-accumulator loop on the GPU: each micro-batch's gradients copied to the device and "
         "summed by gacc's multi-tensor CUDA kernel; finalize's norm, clip coefficient and clip on the device";
}

std::shared_ptr<FlatGradientBuffer> FusedAccumulatorGpuLoop::make_buffer(std::vector<int64_t> sizes) const {
  return std::make_shared<GpuBuffer>(std::move(sizes));
}

}  // namespace gacc::torch_recipes
