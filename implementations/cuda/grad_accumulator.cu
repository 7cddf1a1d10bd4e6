#include <cuda.h>  // driver API types only: cuMemGetAddressRange is reached through the runtime
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "implementations/cuda/cuda_check.h"
#include "implementations/cuda/grad_accumulator.h"
#include "implementations/cuda/grad_accumulator_kernels.cuh"

namespace gacc::cuda {
using namespace kernels;
namespace {

/// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    GACC_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) GACC_CUDA_CHECK(cudaSetDevice(device));
    changed_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (changed_ && cudaSetDevice(previous_) != cudaSuccess) cudaGetLastError();  // must not throw
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

using MemGetAddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);

/// cuMemGetAddressRange through the runtime (gacc does not link the driver library: a machine
/// without a GPU must still start gacc). Null when the driver does not offer it.
MemGetAddressRange address_range_function() {
  static const MemGetAddressRange function = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &entry, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return MemGetAddressRange{nullptr};
    }
    return reinterpret_cast<MemGetAddressRange>(entry);
  }();
  return function;
}

/// Refuses a gradient that is not device memory of `device`, or whose elements run past the end of
/// its allocation: what would otherwise be an illegal memory access in the kernel.
void check_device_pointer(const GradientView& g, size_t index, int device) {
  if (g.numel == 0) return;
  const std::string which = "GradAccumulator: gradient " + std::to_string(index);
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, g.data) != cudaSuccess) {
    cudaGetLastError();
    throw std::invalid_argument(which + " is not a pointer CUDA knows");
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(which +
                                " is host memory; accumulate takes device memory "
                                "(accumulate_from_host copies host gradients)");
  }
  if (attributes.device != device) {
    throw std::invalid_argument(which + " is on device " + std::to_string(attributes.device) +
                                ", the accumulator on device " + std::to_string(device));
  }
  if (const auto range = address_range_function()) {
    CUdeviceptr base = 0;
    size_t size = 0;
    if (range(&base, &size, reinterpret_cast<CUdeviceptr>(g.data)) == CUDA_SUCCESS) {
      const auto available = base + size - reinterpret_cast<CUdeviceptr>(g.data);
      const auto needed =
          static_cast<unsigned long long>(g.numel) * static_cast<unsigned>(element_bytes(g.type));
      if (needed > available) {
        throw std::invalid_argument(which + ": its " + std::to_string(g.numel) + " " + type_name(g.type) +
                                    " elements (" + std::to_string(needed) +
                                    " bytes) run past the end of its "
                                    "allocation (" +
                                    std::to_string(available) + " bytes from the pointer)");
      }
    }
  }
}

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

struct GradAccumulator::State {
  BufferLayout layout;
  std::vector<Bucket> buckets;
  ChunkPlanLimits limits;
  std::vector<PlannedLaunch> plan;
  std::vector<LaunchArgs> launches;  ///< the plan's metadata; src filled in by each accumulate
  int64_t chunks = 0;
  int device = 0;
  cudaStream_t stream = nullptr;
  float* buffer = nullptr;
  double* partials = nullptr;
  int* flags = nullptr;  ///< [0] accumulate's sticky flag, [1] finalize's
  DeviceResult* result = nullptr;
  DeviceResult* host_result = nullptr;  ///< pinned
  // accumulate_from_host's staging: the gradients packed in pinned host memory, then on the device.
  void* host_staging = nullptr;
  void* device_staging = nullptr;
  size_t staging_bytes = 0;
  bool finalized = false;

  ~State() {
    // Errors while freeing are ignored (a destructor must not throw) and cleared, so that a later
    // launch check does not report them as its own.
    cudaFree(buffer);
    cudaFree(partials);
    cudaFree(flags);
    cudaFree(result);
    cudaFreeHost(host_result);
    cudaFreeHost(host_staging);
    cudaFree(device_staging);
    cudaGetLastError();
  }

  /// Launches `kernel` over every launch of the plan: its metadata, then `arguments`.
  template <class Kernel, class... Arguments>
  void for_each_launch(Kernel kernel, const Arguments&... arguments) {
    for (size_t l = 0; l < launches.size(); ++l) {
      launch(kernel, static_cast<unsigned>(plan[l].blocks.size()), stream, launches[l], arguments...);
      GACC_CUDA_CHECK_LAUNCH();
    }
  }
};

GradAccumulator::GradAccumulator(std::vector<int64_t> sizes, GradAccumulatorOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  const auto& limits = options.limits;
  if (limits.max_tensors > kMaxLaunchTensors || limits.max_blocks > kMaxLaunchBlocks) {
    throw std::invalid_argument(
        "GradAccumulator: a launch holds at most " + std::to_string(kMaxLaunchTensors) + " tensors and " +
        std::to_string(kMaxLaunchBlocks) + " chunks, not " + std::to_string(limits.max_tensors) + " and " +
        std::to_string(limits.max_blocks));
  }
  s.layout = make_layout(sizes);
  s.buckets = plan_buckets(s.layout, options.bucket_elements);
  s.limits = limits;
  s.plan = plan_chunks(s.layout.sizes, limits);
  s.chunks = chunk_count(s.plan);
  if (options.device < 0) {
    GACC_CUDA_CHECK(cudaGetDevice(&options.device));
  }
  s.device = options.device;
  s.stream = static_cast<cudaStream_t>(options.stream);
  DeviceGuard guard(s.device);
  const size_t buffer_bytes = static_cast<size_t>(s.layout.total) * sizeof(float);
  GACC_CUDA_CHECK(cudaMalloc(&s.buffer, buffer_bytes > 0 ? buffer_bytes : sizeof(float)));
  GACC_CUDA_CHECK(cudaMalloc(&s.partials, static_cast<size_t>(s.chunks > 0 ? s.chunks : 1) * sizeof(double)));
  GACC_CUDA_CHECK(cudaMalloc(&s.flags, 2 * sizeof(int)));
  GACC_CUDA_CHECK(cudaMalloc(&s.result, sizeof(DeviceResult)));
  GACC_CUDA_CHECK(cudaMallocHost(&s.host_result, sizeof(DeviceResult)));
  s.launches = make_launch_args(s.plan, s.layout, s.limits, s.buffer);
  reset();
  synchronize();
}

GradAccumulator::~GradAccumulator() = default;
GradAccumulator::GradAccumulator(GradAccumulator&&) noexcept = default;
GradAccumulator& GradAccumulator::operator=(GradAccumulator&&) noexcept = default;

void GradAccumulator::accumulate(const std::vector<GradientView>& grads, float scale, PointerCheck check) {
  State& s = *state_;
  check_not_finalized(s.finalized);
  check_accumulate_arguments(s.layout, grads, scale);
  DeviceGuard guard(s.device);
  if (check == PointerCheck::full) {
    for (size_t t = 0; t < grads.size(); ++t) check_device_pointer(grads[t], t, s.device);
  }
  set_sources(s.launches, s.plan, grads);
  s.for_each_launch(accumulate_kernel, scale, s.flags);
}

void GradAccumulator::accumulate_from_host(const std::vector<GradientView>& host_grads, float scale) {
  State& s = *state_;
  check_not_finalized(s.finalized);
  check_accumulate_arguments(s.layout, host_grads, scale);
  // Each gradient at a 16-byte boundary of the staging area, in its own type.
  std::vector<size_t> at;
  size_t bytes = 0;
  for (const auto& g : host_grads) {
    at.push_back(bytes);
    bytes += (static_cast<size_t>(g.numel) * static_cast<size_t>(element_bytes(g.type)) + 15) / 16 * 16;
  }
  DeviceGuard guard(s.device);
  if (bytes > s.staging_bytes) {
    GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    cudaFreeHost(s.host_staging);
    cudaFree(s.device_staging);
    s.host_staging = s.device_staging = nullptr;
    s.staging_bytes = 0;
    GACC_CUDA_CHECK(cudaMallocHost(&s.host_staging, bytes));
    GACC_CUDA_CHECK(cudaMalloc(&s.device_staging, bytes));
    s.staging_bytes = bytes;
  }
  std::vector<GradientView> staged;
  for (size_t t = 0; t < host_grads.size(); ++t) {
    const auto& g = host_grads[t];
    const size_t size = static_cast<size_t>(g.numel) * static_cast<size_t>(element_bytes(g.type));
    if (size > 0) std::memcpy(static_cast<char*>(s.host_staging) + at[t], g.data, size);
    staged.push_back({static_cast<char*>(s.device_staging) + at[t], g.numel, g.type});
  }
  if (bytes > 0) {
    GACC_CUDA_CHECK(
        cudaMemcpyAsync(s.device_staging, s.host_staging, bytes, cudaMemcpyHostToDevice, s.stream));
  }
  accumulate(staged, scale, PointerCheck::trusted);  // gacc's own allocation
  synchronize();                                     // the pinned staging area is reused by the next call
}

FinalizeResult GradAccumulator::finalize(float inv_scale, float max_norm, bool apply_clip) {
  State& s = *state_;
  check_finalize_arguments(inv_scale, max_norm, s.finalized);
  s.finalized = true;
  DeviceGuard guard(s.device);
  const bool unscale = inv_scale != 1.0f;  // multiplying by 1 changes no bits: a read-only pass then
  s.for_each_launch(finalize_partials_kernel, inv_scale, unscale, s.partials, s.flags + 1);
  launch(finalize_result_kernel, 1, s.stream, s.partials, s.chunks, max_norm, s.flags, s.result);
  GACC_CUDA_CHECK_LAUNCH();
  if (apply_clip) s.for_each_launch(apply_clip_kernel, s.result);
  GACC_CUDA_CHECK(
      cudaMemcpyAsync(s.host_result, s.result, sizeof(DeviceResult), cudaMemcpyDeviceToHost, s.stream));
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  FinalizeResult out;
  out.found_non_finite = s.host_result->found_non_finite != 0;
  out.norm = s.host_result->norm;
  out.clip_coefficient = s.host_result->clip_coefficient;
  return out;
}

void GradAccumulator::reset() {
  State& s = *state_;
  DeviceGuard guard(s.device);
  if (s.layout.total > 0) {
    GACC_CUDA_CHECK(
        cudaMemsetAsync(s.buffer, 0, static_cast<size_t>(s.layout.total) * sizeof(float), s.stream));
  }
  GACC_CUDA_CHECK(cudaMemsetAsync(s.flags, 0, 2 * sizeof(int), s.stream));
  s.finalized = false;
}

bool GradAccumulator::found_non_finite() const {
  const State& s = *state_;
  DeviceGuard guard(s.device);
  int flag = 0;
  GACC_CUDA_CHECK(cudaMemcpyAsync(&flag, s.flags, sizeof flag, cudaMemcpyDeviceToHost, s.stream));
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  return flag != 0;
}

float* GradAccumulator::device_buffer() { return state_->buffer; }
const float* GradAccumulator::device_buffer() const { return state_->buffer; }

std::vector<float> GradAccumulator::copy_to_host() const {
  const State& s = *state_;
  DeviceGuard guard(s.device);
  std::vector<float> out(static_cast<size_t>(s.layout.total));
  if (!out.empty()) {
    GACC_CUDA_CHECK(
        cudaMemcpyAsync(out.data(), s.buffer, out.size() * sizeof(float), cudaMemcpyDeviceToHost, s.stream));
  }
  GACC_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  return out;
}

const BufferLayout& GradAccumulator::layout() const { return state_->layout; }
const std::vector<Bucket>& GradAccumulator::buckets() const { return state_->buckets; }
int GradAccumulator::device() const { return state_->device; }
void* GradAccumulator::stream() const { return state_->stream; }

void GradAccumulator::synchronize() const {
  DeviceGuard guard(state_->device);
  GACC_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
}

}  // namespace gacc::cuda
