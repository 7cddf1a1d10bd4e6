#include "bench/accumulate_gpu_bench.h"

#include <cuda_runtime.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "implementations/cuda/cuda_check.h"
#include "implementations/cuda/grad_accumulator.h"
#include "implementations/cuda/grad_accumulator_cpu.h"
#include "implementations/cuda/load_torch_cuda.h"

namespace gacc::bench {
namespace {

/// Device memory for the benchmark, freed at scope exit.
class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) { GACC_CUDA_CHECK(cudaMalloc(&data_, bytes)); }
  ~DeviceMemory() { cudaFree(data_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <class T = char>
  T* get() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

/// `n` pseudo-random values in [-1, 1) as fp32 (or bf16: the upper half) bit patterns, uploaded.
void fill_random(void* device, size_t n, bool bf16, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  const auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;  // an LCG: fast, and enough here
    return static_cast<float>(static_cast<int64_t>(state >> 40) - (int64_t{1} << 23)) * 0x1p-23f;
  };
  if (bf16) {
    std::vector<uint16_t> host(n);
    for (auto& h : host) {
      const float v = next();
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      h = static_cast<uint16_t>(bits >> 16);
    }
    GACC_CUDA_CHECK(cudaMemcpy(device, host.data(), n * 2, cudaMemcpyHostToDevice));
  } else {
    std::vector<float> host(n);
    for (auto& h : host) h = next();
    GACC_CUDA_CHECK(cudaMemcpy(device, host.data(), n * 4, cudaMemcpyHostToDevice));
  }
}

/// Median milliseconds per call of `work` (queued on the legacy default stream, where gacc's
/// accumulators and LibTorch's default stream run), over 7 trials of `calls` calls, after a warm-up.
template <class Work>
double median_ms(Work&& work, int calls) {
  for (int i = 0; i < 3; ++i) work();
  GACC_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  GACC_CUDA_CHECK(cudaEventCreate(&start));
  GACC_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> trials;
  for (int trial = 0; trial < 7; ++trial) {
    GACC_CUDA_CHECK(cudaEventRecord(start, nullptr));
    for (int c = 0; c < calls; ++c) work();
    GACC_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    GACC_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    GACC_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    trials.push_back(ms / calls);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(trials.begin(), trials.end());
  return trials[trials.size() / 2];
}

/// The same with `setup` (not timed) before each timed call: 11 trials of one call.
template <class Setup, class Work>
double median_ms_each(Setup&& setup, Work&& work) {
  cudaEvent_t start, stop;
  GACC_CUDA_CHECK(cudaEventCreate(&start));
  GACC_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> trials;
  for (int trial = 0; trial < 14; ++trial) {
    setup();
    GACC_CUDA_CHECK(cudaDeviceSynchronize());
    GACC_CUDA_CHECK(cudaEventRecord(start, nullptr));
    work();
    GACC_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    GACC_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    GACC_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (trial >= 3) trials.push_back(ms);  // the first three warm up
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(trials.begin(), trials.end());
  return trials[trials.size() / 2];
}

/// A 12-layer BERT-base-like model's gradients (d 768, ffn 3072, vocabulary 30522): 199 tensors.
std::vector<std::vector<int64_t>> transformer_shapes() {
  const int64_t d = 768, ffn = 3072;
  std::vector<std::vector<int64_t>> shapes = {{30522, d}, {512, d}, {2, d}, {d}, {d}};
  for (int layer = 0; layer < 12; ++layer) {
    for (int projection = 0; projection < 4; ++projection) {  // q, k, v, attention output
      shapes.push_back({d, d});
      shapes.push_back({d});
    }
    shapes.push_back({d}), shapes.push_back({d});  // layer norm
    shapes.push_back({ffn, d}), shapes.push_back({ffn});
    shapes.push_back({d, ffn}), shapes.push_back({d});
    shapes.push_back({d}), shapes.push_back({d});  // layer norm
  }
  shapes.push_back({d, d}), shapes.push_back({d});  // pooler
  return shapes;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const int64_t s : shape) n *= s;
  return n;
}

struct Row {
  std::string name;
  double ms = 0;
  double bytes = 0;  ///< bytes moved per call, for GB/s (0: not a bandwidth figure)
};

class Table {
 public:
  explicit Table(std::ostream& out) : out_(out) {}
  void add(const Row& row, const std::string& note) {
    char line[256];
    if (row.bytes > 0) {
      std::snprintf(line, sizeof line, "  %-62s %9.3f ms %8.1f GB/s  %s\n", row.name.c_str(), row.ms,
                    row.bytes / row.ms / 1e6, note.c_str());
    } else {
      std::snprintf(line, sizeof line, "  %-62s %9.3f ms %14s %s\n", row.name.c_str(), row.ms, "",
                    note.c_str());
    }
    out_ << line;
    figures_.push_back({{"name", row.name}, {"ms", row.ms}, {"bytes", row.bytes}, {"note", note}});
    if (row.bytes > 0) figures_.back()["gb_per_s"] = row.bytes / row.ms / 1e6;
  }
  void note(const std::string& text) {
    out_ << "  " << text << "\n";
    figures_.push_back({{"note", text}});
  }
  nlohmann::json figures() const { return figures_; }

 private:
  std::ostream& out_;
  nlohmann::json figures_ = nlohmann::json::array();
};

std::string ratio(double x, const char* what) {
  char text[96];
  std::snprintf(text, sizeof text, "%.2fx %s", x, what);
  return text;
}

std::string percent(double x, double target) {
  char text[96];
  std::snprintf(text, sizeof text, "%.0f%% of copy bandwidth (target %.0f%%: %s)", 100 * x, 100 * target,
                x >= target ? "met" : "missed");
  return text;
}

/// Throws unless the two buffers hold the same bits everywhere (the data here is finite).
void require_same_bits(const std::vector<float>& gpu, const std::vector<float>& twin,
                       const std::string& what) {
  if (gpu.size() != twin.size()) throw std::runtime_error(what + ": buffers of different sizes");
  for (size_t i = 0; i < gpu.size(); ++i) {
    if (std::memcmp(&gpu[i], &twin[i], sizeof(float)) != 0) {
      throw std::runtime_error(what + " differs from the CPU twin at element " + std::to_string(i) +
                               ": GPU " + std::to_string(gpu[i]) + ", twin " + std::to_string(twin[i]) +
                               " (not timed: a wrong kernel is not worth timing)");
    }
  }
}

/// Before timing `what`: the fused path on these device gradients against the CPU twin on the same
/// values — two accumulates (scales 0.5 and -3) bit for bit, then finalize (unscale by 1/1024, clip
/// to norm 1): the norm within one fp32 rounding, the clipped buffer bit for bit where the two
/// coefficients agree. Throws std::runtime_error on the first difference.
void validate_against_twin(const std::vector<int64_t>& sizes,
                           const std::vector<cuda::GradientView>& device_views, const std::string& what) {
  std::vector<std::vector<float>> host(device_views.size());  // float storage: aligned for every type
  std::vector<cuda::GradientView> host_views;
  for (size_t t = 0; t < device_views.size(); ++t) {
    const auto& g = device_views[t];
    const size_t bytes = static_cast<size_t>(g.numel) * static_cast<size_t>(cuda::element_bytes(g.type));
    host[t].resize((bytes + 3) / 4);
    if (bytes > 0) GACC_CUDA_CHECK(cudaMemcpy(host[t].data(), g.data, bytes, cudaMemcpyDeviceToHost));
    host_views.push_back({host[t].data(), g.numel, g.type});
  }
  cuda::GradAccumulator gpu(sizes);
  cuda::CpuGradAccumulator twin(sizes);
  for (const float scale : {0.5f, -3.0f}) {
    gpu.accumulate(device_views, scale);
    twin.accumulate(host_views, scale);
  }
  require_same_bits(gpu.copy_to_host(), twin.buffer(), what + ", accumulate");
  const auto on_gpu = gpu.finalize(1.0f / 1024.0f, 1.0f, /*apply_clip=*/true);
  const auto on_twin = twin.finalize(1.0f / 1024.0f, 1.0f, /*apply_clip=*/true);
  if (on_gpu.found_non_finite || !(std::fabs(on_gpu.norm - on_twin.norm) <= std::ldexp(on_twin.norm, -23))) {
    throw std::runtime_error(what + ", finalize: norm " + std::to_string(on_gpu.norm) + " on the GPU, " +
                             std::to_string(on_twin.norm) + " on the CPU twin (not timed)");
  }
  if (on_gpu.clip_coefficient == on_twin.clip_coefficient) {
    require_same_bits(gpu.copy_to_host(), twin.buffer(), what + ", finalize");
  }
}

torch::Tensor device_view(void* data, const std::vector<int64_t>& shape, torch::Dtype dtype) {
  return torch::from_blob(data, shape, torch::TensorOptions().dtype(dtype).device(torch::kCUDA));
}

}  // namespace

nlohmann::json run_accumulate_gpu_bench(std::ostream& out) {
  if (cuda::device_count() == 0) {
    throw EnvironmentError(
        "gacc bench accumulate measures the GPU path and no CUDA device is here (the CPU twin's benchmark: "
        "build/bench/gacc-bench-accumulate-cpu)");
  }
  GACC_CUDA_CHECK(cudaSetDevice(0));
  cudaDeviceProp properties{};
  GACC_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  const bool libtorch = cuda::load_torch_cuda();
  out << "fused accumulator on " << properties.name << " (CUDA events, median of 7 trials)\n";
  if (!libtorch) {
    out << "  gacc's LibTorch has no CUDA: the LibTorch rows are not measured (build against a CUDA "
           "LibTorch)\n";
  }
  out << "  every fused figure is validated against the CPU twin first (bit for bit; finalize's norm to "
         "fp32 rounding)\n";
  Table table(out);
  nlohmann::json result;

  // 1. One large buffer: copy bandwidth, then the fused accumulate, at each size.
  for (const size_t mib : {16, 64, 256, 1024}) {
    const size_t n = (mib << 20) / 4;
    DeviceMemory a(n * 4), b(n * 4), grads(n * 4);
    const double copy_ms = median_ms(
        [&] { GACC_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n * 4, cudaMemcpyDeviceToDevice, nullptr)); },
        20);
    const double copy_bytes = 2.0 * static_cast<double>(n) * 4;  // read and write
    const double copy_rate = copy_bytes / copy_ms;
    table.add({"device-to-device copy, " + std::to_string(mib) + " MiB", copy_ms, copy_bytes}, "the ceiling");
    for (const bool bf16 : {true, false}) {
      fill_random(grads.get(), n, bf16, mib);
      cuda::GradAccumulator acc({static_cast<int64_t>(n)});
      const std::vector<cuda::GradientView> views = {
          {grads.get(), static_cast<int64_t>(n), bf16 ? cuda::GradientType::bf16 : cuda::GradientType::fp32}};
      validate_against_twin({static_cast<int64_t>(n)}, views,
                            std::string(bf16 ? "bf16" : "fp32") + " into " + std::to_string(mib) + " MiB");
      const double ms = median_ms([&] { acc.accumulate(views, 0.5f); }, 20);
      const double bytes = static_cast<double>(n) * (bf16 ? 10 : 12);
      table.add({std::string("fused accumulate, ") + (bf16 ? "bf16" : "fp32") + " into " +
                     std::to_string(mib) + " MiB fp32",
                 ms, bytes},
                percent(bytes / ms / copy_rate, mib >= 64 ? 0.9 : 0.0));
      if (libtorch && bf16) {
        auto accumulated = device_view(acc.device_buffer(), {static_cast<int64_t>(n)}, torch::kFloat32);
        auto g = device_view(grads.get(), {static_cast<int64_t>(n)}, torch::kBFloat16);
        const double torch_ms = median_ms([&] { accumulated.add_(g.to(torch::kFloat32), 0.5); }, 20);
        table.add({"LibTorch acc.add_(g.float(), alpha), bf16", torch_ms, bytes},
                  ratio(torch_ms / ms, "slower than fused"));
      }
    }
  }

  // 2. A realistic list of gradients.
  const auto shapes = transformer_shapes();
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (const auto& s : shapes) {
    sizes.push_back(numel(s));
    total += (numel(s) + 3) / 4 * 4;
  }
  table.note("a realistic list: " + std::to_string(shapes.size()) + " gradients (a 12-layer BERT-base), " +
             std::to_string(total) + " elements");
  for (const bool bf16 : {true, false}) {
    const int bytes_per = bf16 ? 2 : 4;
    DeviceMemory grads(static_cast<size_t>(total) * static_cast<size_t>(bytes_per));
    fill_random(grads.get(), static_cast<size_t>(total), bf16, 99);
    std::vector<cuda::GradientView> views;
    int64_t at = 0;
    for (const int64_t s : sizes) {
      views.push_back(
          {grads.get() + at * bytes_per, s, bf16 ? cuda::GradientType::bf16 : cuda::GradientType::fp32});
      at += (s + 3) / 4 * 4;
    }
    const char* type = bf16 ? "bf16" : "fp32";
    validate_against_twin(sizes, views, std::string("the ") + type + " list");
    cuda::GradAccumulator acc(sizes);
    const double bytes = static_cast<double>(total) * (bf16 ? 10 : 12);
    const double checked_ms = median_ms([&] { acc.accumulate(views, 0.5f); }, 10);
    const double trusted_ms =
        median_ms([&] { acc.accumulate(views, 0.5f, cuda::PointerCheck::trusted); }, 10);
    table.add({std::string("fused accumulate, ") + type + " list, pointers checked", checked_ms, bytes}, "");
    table.add({std::string("fused accumulate, ") + type + " list, trusted pointers", trusted_ms, bytes}, "");
    if (libtorch) {
      std::vector<torch::Tensor> accumulated, g;
      for (size_t t = 0; t < shapes.size(); ++t) {
        accumulated.push_back(device_view(acc.device_buffer() + acc.offset(t), shapes[t], torch::kFloat32));
        g.push_back(device_view(const_cast<void*>(views[t].data), shapes[t],
                                bf16 ? torch::kBFloat16 : torch::kFloat32));
      }
      const double loop_ms = median_ms(
          [&] {
            for (size_t t = 0; t < g.size(); ++t) accumulated[t].add_(g[t].to(torch::kFloat32), 0.5);
          },
          10);
      table.add({std::string("LibTorch per-tensor acc.add_(g.float(), alpha), ") + type, loop_ms, bytes},
                ratio(loop_ms / checked_ms, "the fused time (target 2x)"));
      if (!bf16) {
        const double foreach_ms = median_ms([&] { torch::_foreach_add_(accumulated, g, 0.5); }, 10);
        table.add({"LibTorch _foreach_add_(acc, g, alpha), fp32", foreach_ms, bytes},
                  ratio(foreach_ms / checked_ms, "the fused time (target 2x)"));
      }
    }
  }

  // 3. finalize: unscale, non-finite check, global norm, clip.
  {
    DeviceMemory saved(static_cast<size_t>(total) * 4), work(static_cast<size_t>(total) * 4);
    fill_random(saved.get(), static_cast<size_t>(total), false, 7);
    cuda::GradAccumulator acc(sizes);
    const float inv_scale = 1.0f / 1024.0f, max_norm = 1.0f;  // the norm is ~3e3 / 1024: always clipped
    const double bytes = static_cast<double>(total) * 16;     // read and write for the unscale and the clip
    const double fused_ms = median_ms_each(
        [&] {
          acc.reset();
          GACC_CUDA_CHECK(cudaMemcpy(acc.device_buffer(), saved.get(), static_cast<size_t>(total) * 4,
                                     cudaMemcpyDeviceToDevice));
        },
        [&] { acc.finalize(inv_scale, max_norm, /*apply_clip=*/true); });
    table.add({"fused finalize (unscale, check, norm, clip), list, fp32", fused_ms, bytes}, "");
    if (libtorch) {
      std::vector<torch::Tensor> grads, params;
      int64_t at = 0;
      for (size_t t = 0; t < shapes.size(); ++t) {
        grads.push_back(device_view(work.get<float>() + at, shapes[t], torch::kFloat32));
        params.push_back(torch::empty(shapes[t], torch::TensorOptions().device(torch::kCUDA)));
        params.back().mutable_grad() = grads.back();
        at += (sizes[t] + 3) / 4 * 4;
      }
      const auto options = torch::TensorOptions().device(torch::kCUDA);
      auto found_inf = torch::zeros({1}, options);
      const auto inv = torch::full({1}, inv_scale, options);
      const auto refill = [&] {
        GACC_CUDA_CHECK(
            cudaMemcpy(work.get(), saved.get(), static_cast<size_t>(total) * 4, cudaMemcpyDeviceToDevice));
        found_inf.zero_();
      };
      const double cpp_ms = median_ms_each(refill, [&] {
        torch::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv);
        torch::nn::utils::clip_grad_norm_(params, max_norm);
      });
      table.add({"LibTorch unscale + C++ clip_grad_norm_", cpp_ms, bytes},
                ratio(cpp_ms / fused_ms, "the fused time (target 2x)"));
      const double foreach_ms = median_ms_each(refill, [&] {
        torch::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv);
        const auto norms = torch::_foreach_norm(grads, 2);
        const auto total_norm = torch::linalg_vector_norm(torch::stack(norms), 2);
        const auto coefficient = torch::clamp_max(max_norm / (total_norm + 1e-6), 1.0);
        torch::_foreach_mul_(grads, coefficient);
      });
      table.add({"LibTorch unscale + _foreach_norm + _foreach_mul_ (Python's)", foreach_ms, bytes},
                ratio(foreach_ms / fused_ms, "the fused time (target 2x)"));
    }
  }
  result["device"] = properties.name;
  result["libtorch_cuda"] = libtorch;
  result["validated_against_twin"] = true;
  result["rows"] = table.figures();
  return result;
}

}  // namespace gacc::bench
