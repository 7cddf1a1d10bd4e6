#include "implementations/torch/fused_accumulator_loop.h"

#include <limits>
#include <memory>

#include "implementations/cuda/grad_accumulator_cpu.h"

namespace gacc::torch_recipes {
namespace {

using Buffer = std::shared_ptr<FlatGradientBuffer>;

FlatGradientBuffer& accumulator(LoopState& state) { return *std::any_cast<Buffer&>(state.loop_data); }

/// The window's sum in the buffer becomes each parameter's .grad (fp32, the parameters' shapes).
void gradients_from_buffer(LoopState& state, const std::vector<torch::Tensor>& params) {
  auto& acc = accumulator(state);
  const float* host = acc.host_data();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const float* begin = host + acc.layout().offsets.at(i);
    params[i].mutable_grad() =
        torch::from_blob(const_cast<float*>(begin), params[i].sizes(), torch::kFloat32).clone();
  }
}

class CpuTwinBuffer : public FlatGradientBuffer {
 public:
  explicit CpuTwinBuffer(std::vector<int64_t> sizes) : twin_(std::move(sizes)) {}
  void accumulate(const std::vector<cuda::GradientView>& host_grads, float scale) override {
    twin_.accumulate(host_grads, scale);
  }
  cuda::FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) override {
    return twin_.finalize(inv_scale, max_norm, apply_clip);
  }
  const float* host_data() override { return twin_.buffer().data(); }  // no copy: clone reads it
  const cuda::BufferLayout& layout() const override { return twin_.layout(); }

 private:
  cuda::CpuGradAccumulator twin_;
};

}  // namespace

std::string FusedAccumulatorLoop::summary() const {
  return "LibTorch forward and backward, each micro-batch's gradients summed into gacc's flat fp32 buffer "
         "(the fused accumulator's CPU twin) and .grad released; finalize's norm and clip coefficient, one "
         "step";
}

std::shared_ptr<FlatGradientBuffer> FusedAccumulatorLoop::make_buffer(std::vector<int64_t> sizes) const {
  return std::make_shared<CpuTwinBuffer>(std::move(sizes));
}

void FusedAccumulatorLoop::begin_micro_batch(LoopState& state, int micro) const {
  if (micro != 0) return;
  std::vector<int64_t> sizes;
  for (const auto& p : parameters(state)) sizes.push_back(p.numel());
  state.loop_data = make_buffer(std::move(sizes));
}

void FusedAccumulatorLoop::after_backward(LoopState& state, int) const {
  const auto& params = parameters(state);
  std::vector<torch::Tensor> grads;  // kept alive while the views point into them
  std::vector<cuda::GradientView> views;
  for (const auto& p : params) {
    // A parameter this micro-batch did not reach (an mlp_routed expert) adds nothing.
    grads.push_back(p.grad().defined() ? p.grad().to(torch::kFloat32).contiguous() : torch::zeros_like(p));
    views.push_back({grads.back().data_ptr<float>(), grads.back().numel(), cuda::GradientType::fp32});
  }
  accumulator(state).accumulate(views, 1.0f);
  for (const auto& p : params) {
    auto param = p;
    param.mutable_grad().reset();  // the buffer holds the sum; .grad holds one micro-batch at a time
  }
}

void FusedAccumulatorLoop::end_window(LoopState& state) const {
  const auto& params = parameters(state);
  synchronize_gradients(state);  // one rank: nothing
  double pre_clip_norm = 0.0;
  if (state.scaler) {
    gradients_from_buffer(state, params);
    unscale_gradients(state);
    pre_clip_norm = clip_gradients(state);
  } else {
    const auto& clipping = state.scenario.clipping;
    const float max_norm = clipping.kind == ClippingKind::norm ? static_cast<float>(clipping.max_norm)
                                                               : std::numeric_limits<float>::infinity();
    // clip_grad_norm_'s multiply by the coefficient, done in the buffer (the same fp32 products).
    const auto finalized =
        accumulator(state).finalize(1.0f, max_norm, /*apply_clip=*/clipping.kind == ClippingKind::norm);
    gradients_from_buffer(state, params);
    pre_clip_norm = finalized.norm;
    if (clipping.kind == ClippingKind::value) {
      torch::NoGradGuard no_grad;
      torch::nn::utils::clip_grad_value_(params, clipping.clip_value);
    }
  }
  optimizer_step(state, pre_clip_norm);
  schedule_step(state);
  zero_grad(state);
}

}  // namespace gacc::torch_recipes
