// gacc-bench-accumulate-cpu (Google Benchmark): the fused accumulator's CPU twin against the
// machine's memory-copy bandwidth and against LibTorch's per-tensor `acc.add_(g.float(), alpha)`,
// and with the non-finite check the twin makes in the same pass, on one 64 MiB buffer (16M fp32
// elements). Bytes counted per element: copy 8 (read + write); accumulate fp32 12 (read g, read and
// write acc); accumulate bf16 10. Figures: bench/RESULTS.md.
//
//   build/bench/gacc-bench-accumulate-cpu --benchmark_min_time=1s

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstring>
#include <vector>

#include "implementations/cuda/grad_accumulator_cpu.h"

namespace {

constexpr int64_t kElements = int64_t{1} << 24;  // 64 MiB of fp32

void copy_bandwidth(benchmark::State& state) {
  std::vector<float> from(kElements, 1.0f), to(kElements, 0.0f);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), kElements * sizeof(float));
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kElements * 8);
}

template <gacc::cuda::GradientType Type>
void twin_accumulate(benchmark::State& state) {
  gacc::cuda::CpuGradAccumulator acc({kElements});
  std::vector<float> fp32(kElements, 0.5f);
  std::vector<uint16_t> low(kElements, Type == gacc::cuda::GradientType::bf16 ? 0x3f00 : 0x3800);  // 0.5
  const void* data =
      Type == gacc::cuda::GradientType::fp32 ? static_cast<const void*>(fp32.data()) : low.data();
  const std::vector<gacc::cuda::GradientView> grads = {{data, kElements, Type}};
  for (auto _ : state) {
    acc.accumulate(grads, 0.25f);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kElements *
                          (Type == gacc::cuda::GradientType::fp32 ? 12 : 10));
}

void libtorch_add(benchmark::State& state) {
  const bool bf16 = state.range(0) == 1;
  torch::Tensor acc = torch::zeros({kElements});
  const torch::Tensor grad = torch::full({kElements}, 0.5, bf16 ? torch::kBFloat16 : torch::kFloat32);
  for (auto _ : state) {
    acc.add_(grad.to(torch::kFloat32), 0.25);  // the per-tensor loop's step: upcast, then add
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kElements * (bf16 ? 10 : 12));
}

/// What the twin does in one pass, in LibTorch: the add, and the non-finite check GradScaler needs.
void libtorch_add_and_check(benchmark::State& state) {
  torch::Tensor acc = torch::zeros({kElements});
  const torch::Tensor grad = torch::full({kElements}, 0.5, torch::kFloat32);
  for (auto _ : state) {
    acc.add_(grad, 0.25);
    benchmark::DoNotOptimize(torch::isfinite(grad).all().item<bool>());
  }
  state.SetBytesProcessed(state.iterations() * kElements * 12);
}

}  // namespace

BENCHMARK(copy_bandwidth)->Unit(benchmark::kMillisecond);
BENCHMARK(twin_accumulate<gacc::cuda::GradientType::fp32>)
    ->Name("twin_accumulate/fp32")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(twin_accumulate<gacc::cuda::GradientType::bf16>)
    ->Name("twin_accumulate/bf16")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(libtorch_add)->Arg(0)->Name("libtorch_add/fp32")->Unit(benchmark::kMillisecond);
BENCHMARK(libtorch_add)->Arg(1)->Name("libtorch_add/bf16")->Unit(benchmark::kMillisecond);
BENCHMARK(libtorch_add_and_check)->Name("libtorch_add_and_check/fp32")->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // one core each, as the twin
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
