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

/// What the adapter asks of either accumulator; the views are checked against the device already.
struct TensorGradAccumulator::Backend {
  virtual ~Backend() = default;
  virtual void accumulate(const std::vector<GradientView>& views, float scale) = 0;
  virtual FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) = 0;
  virtual void reset() = 0;
  virtual bool found_non_finite() const = 0;
  virtual const BufferLayout& layout() const = 0;
  /// The buffer's first element, in the accumulator's memory.
  virtual float* buffer() = 0;
};

namespace {

class CpuBackend final : public TensorGradAccumulator::Backend {
 public:
  explicit CpuBackend(std::vector<int64_t> sizes) : acc_(std::move(sizes)) {}
  void accumulate(const std::vector<GradientView>& views, float scale) override {
    acc_.accumulate(views, scale);
  }
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) override {
    return acc_.finalize(inv_scale, max_norm, apply_clip);
  }
  void reset() override { acc_.reset(); }
  bool found_non_finite() const override { return acc_.found_non_finite(); }
  const BufferLayout& layout() const override { return acc_.layout(); }
  float* buffer() override { return const_cast<float*>(acc_.buffer().data()); }

 private:
  CpuGradAccumulator acc_;
};

#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
class CudaBackend final : public TensorGradAccumulator::Backend {
 public:
  CudaBackend(std::vector<int64_t> sizes, const GradAccumulatorOptions& options)
      : acc_(std::move(sizes), options) {}
  void accumulate(const std::vector<GradientView>& views, float scale) override {
    // A CUDA tensor knows its device (checked by the adapter) and its extent: no need to ask CUDA.
    acc_.accumulate(views, scale, PointerCheck::trusted);
  }
  FinalizeResult finalize(float inv_scale, float max_norm, bool apply_clip) override {
    return acc_.finalize(inv_scale, max_norm, apply_clip);
  }
  void reset() override { acc_.reset(); }
  bool found_non_finite() const override { return acc_.found_non_finite(); }
  const BufferLayout& layout() const override { return acc_.layout(); }
  float* buffer() override { return acc_.device_buffer(); }

 private:
  GradAccumulator acc_;
};
#endif

}  // namespace

TensorGradAccumulator::TensorGradAccumulator(std::vector<int64_t> sizes, torch::Device device)
    : device_(device) {
  if (device.is_cpu()) {
    backend_ = std::make_unique<CpuBackend>(std::move(sizes));
    return;
  }
  if (device.is_cuda()) {
#ifdef GACC_TENSOR_ACCUMULATOR_CUDA
    GradAccumulatorOptions options;
    options.device = device.has_index() ? device.index() : 0;
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(options.device));
    backend_ = std::make_unique<CudaBackend>(std::move(sizes), options);
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
  backend_->accumulate(views, scale);
}

FinalizeResult TensorGradAccumulator::finalize(float inv_scale, float max_norm, bool apply_clip) {
  return backend_->finalize(inv_scale, max_norm, apply_clip);
}

void TensorGradAccumulator::reset() { backend_->reset(); }

bool TensorGradAccumulator::found_non_finite() const { return backend_->found_non_finite(); }

const BufferLayout& TensorGradAccumulator::layout() const { return backend_->layout(); }

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
  return torch::from_blob(backend_->buffer() + l.offsets[index], shape,
                          torch::TensorOptions().dtype(torch::kFloat32).device(device_));
}

}  // namespace gacc::cuda
