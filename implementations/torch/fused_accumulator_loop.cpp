#include "implementations/torch/fused_accumulator_loop.h"

#include <limits>
#include <memory>

#include "implementations/cuda/grad_accumulator_cpu.h"

namespace gacc::torch_recipes {
namespace {

using Accumulator = std::shared_ptr<cuda::CpuGradAccumulator>;

cuda::CpuGradAccumulator& accumulator(LoopState& state) {
  return *std::any_cast<Accumulator&>(state.loop_data);
}

/// The window's sum in the buffer becomes each parameter's .grad (fp32, the parameters' shapes).
void gradients_from_buffer(LoopState& state, const std::vector<torch::Tensor>& params) {
  const auto& acc = accumulator(state);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const float* begin = acc.buffer().data() + acc.offset(i);
    params[i].mutable_grad() =
        torch::from_blob(const_cast<float*>(begin), params[i].sizes(), torch::kFloat32).clone();
  }
}

}  // namespace

std::string FusedAccumulatorLoop::summary() const {
  return "LibTorch forward and backward, each micro-batch's gradients summed into gacc's flat fp32 buffer "
         "(the fused accumulator's CPU twin) and .grad released; finalize's norm and clip coefficient, one "
         "step";
}

void FusedAccumulatorLoop::begin_micro_batch(LoopState& state, int micro) const {
  if (micro != 0) return;
  std::vector<int64_t> sizes;
  for (const auto& p : parameters(state)) sizes.push_back(p.numel());
  state.loop_data = std::make_shared<cuda::CpuGradAccumulator>(std::move(sizes));
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
    const auto finalized = accumulator(state).finalize(1.0f, max_norm);
    gradients_from_buffer(state, params);
    pre_clip_norm = finalized.norm;
    torch::NoGradGuard no_grad;
    if (clipping.kind == ClippingKind::norm) {
      for (const auto& p : params) p.grad().mul_(finalized.clip_coefficient);
    } else if (clipping.kind == ClippingKind::value) {
      torch::nn::utils::clip_grad_value_(params, clipping.clip_value);
    }
  }
  optimizer_step(state, pre_clip_norm);
  schedule_step(state);
  zero_grad(state);
}

}  // namespace gacc::torch_recipes
