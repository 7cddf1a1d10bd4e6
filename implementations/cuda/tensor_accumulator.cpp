#include "implementations/cuda/tensor_accumulator.h"

#include <sstream>
#include <stdexcept>

#include "implementations/cuda/grad_accumulator_cpu.h"
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
#include "implementations/cuda/grad_accumulator.h"
#endif

namespace gacc::cuda {
namespace {

GradientType gradient_type(const torch::Tensor& g, size_t index) {
  switch (g.scalar_type()) {
    case torch::kFloat32:
      return GradientType::fp32;
    case torch::kBFloat16:
      return GradientType::bf16;
    case torch::kFloat16:
      return GradientType::fp16;
    default:
      break;
  }
  std::ostringstream message;
  message << "TensorGradAccumulator: gradient " << index << " has dtype " << g.scalar_type()
          << "; float32, bfloat16 and float16 are supported";
  throw std::invalid_argument(message.str());
}

}  // namespace

/// One of the two accumulators behind the adapter.
struct TensorGradAccumulator::Backend {
  std::unique_ptr<CpuGradAccumulator> cpu;
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  std::unique_ptr<GradAccumulator> gpu;
#endif
};

TensorGradAccumulator::TensorGradAccumulator(std::vector<int64_t> sizes, torch::Device device)
    : backend_(std::make_unique<Backend>()), device_(device) {
  if (device.is_cpu()) {
    backend_->cpu = std::make_unique<CpuGradAccumulator>(std::move(sizes));
    return;
  }
  if (device.is_cuda()) {
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
    GradAccumulatorOptions options;
    options.device = device.has_index() ? device.index() : 0;
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(options.device));
    backend_->gpu = std::make_unique<GradAccumulator>(std::move(sizes), options);
    return;
#else
    throw std::invalid_argument(
        "TensorGradAccumulator: this gacc was built without CUDA (nvcc was not found)");
#endif
  }
  throw std::invalid_argument("TensorGradAccumulator: device " + device.str() +
                              " is neither the CPU nor CUDA");
}

TensorGradAccumulator::~TensorGradAccumulator() = default;

void TensorGradAccumulator::accumulate(const std::vector<torch::Tensor>& grads, float scale) {
  std::vector<GradientView> views;
  for (size_t t = 0; t < grads.size(); ++t) {
    const auto& g = grads[t];
    const std::string which = "TensorGradAccumulator: gradient " + std::to_string(t);
    if (!g.defined()) throw std::invalid_argument(which + " is undefined");
    const GradientType type = gradient_type(g, t);
    if (g.device() != device_) {
      throw std::invalid_argument(which + " is on " + g.device().str() + ", the accumulator on " +
                                  device_.str());
    }
    if (!g.is_contiguous()) throw std::invalid_argument(which + " is not contiguous");
    views.push_back({g.data_ptr(), g.numel(), type});
  }
  // Counts, sizes, null and misaligned pointers: the accumulators' own checks (the same messages).
  if (backend_->cpu) {
    backend_->cpu->accumulate(views, scale);
    return;
  }
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  // A CUDA tensor knows its device (checked above) and its extent: no need to ask CUDA again.
  backend_->gpu->accumulate(views, scale, PointerCheck::trusted);
#endif
}

FinalizeResult TensorGradAccumulator::finalize(float inv_scale, float max_norm, bool apply_clip) {
  if (backend_->cpu) return backend_->cpu->finalize(inv_scale, max_norm, apply_clip);
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  return backend_->gpu->finalize(inv_scale, max_norm, apply_clip);
#else
  return {};
#endif
}

void TensorGradAccumulator::reset() {
  if (backend_->cpu) return backend_->cpu->reset();
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  backend_->gpu->reset();
#endif
}

bool TensorGradAccumulator::found_non_finite() const {
  if (backend_->cpu) return backend_->cpu->found_non_finite();
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  return backend_->gpu->found_non_finite();
#else
  return false;
#endif
}

const BufferLayout& TensorGradAccumulator::layout() const {
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  if (backend_->gpu) return backend_->gpu->layout();
#endif
  return backend_->cpu->layout();
}

torch::Tensor TensorGradAccumulator::slot(size_t index, at::IntArrayRef shape) {
  const auto& l = layout();
  if (index >= l.sizes.size()) {
    throw std::invalid_argument("TensorGradAccumulator: slot " + std::to_string(index) + " of " +
                                std::to_string(l.sizes.size()));
  }
  int64_t elements = 1;
  for (const int64_t s : shape) elements *= s;
  if (elements != l.sizes[index]) {
    throw std::invalid_argument("TensorGradAccumulator: slot " + std::to_string(index) + " holds " +
                                std::to_string(l.sizes[index]) + " elements, not " +
                                std::to_string(elements));
  }
  float* base = nullptr;
  if (backend_->cpu) {
    base = const_cast<float*>(backend_->cpu->buffer().data());
  }
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
  if (backend_->gpu) base = backend_->gpu->device_buffer();
#endif
  return torch::from_blob(base + l.offsets[index], shape,
                          torch::TensorOptions().dtype(torch::kFloat32).device(device_));
}

}  // namespace gacc::cuda
