// The LibTorch adapter on CUDA tensors (needs a LibTorch built with CUDA, as a GPU host's is):
// the same sums as the adapter on the same tensors on the CPU, bit for bit; a CPU tensor handed to
// a CUDA accumulator is refused by name.

#include <catch2/catch.hpp>

#include "implementations/cuda/tensor_accumulator.h"

using namespace gacc::cuda;
using Catch::Matchers::Contains;

TEST_CASE("the adapter on CUDA tensors sums as the adapter on the CPU, bit for bit", "[gpu]") {
  torch::manual_seed(5);
  const auto cuda = torch::Device(torch::kCUDA, 0);
  const std::vector<torch::Tensor> on_cpu = {torch::randn({300, 70}),
                                             torch::randn({70001}).to(torch::kBFloat16),
                                             torch::randn({9}).to(torch::kFloat16), torch::randn({1})};
  std::vector<torch::Tensor> on_gpu;
  std::vector<int64_t> sizes;
  for (const auto& g : on_cpu) {
    on_gpu.push_back(g.to(cuda));
    sizes.push_back(g.numel());
  }
  TensorGradAccumulator cpu(sizes, torch::kCPU), gpu(sizes, cuda);
  for (const float scale : {1.0f, 1.0f / 3.0f, 1024.0f}) {
    cpu.accumulate(on_cpu, scale);
    gpu.accumulate(on_gpu, scale);
  }
  const auto cpu_result = cpu.finalize(1.0f / 1024.0f, 10.0f);
  const auto gpu_result = gpu.finalize(1.0f / 1024.0f, 10.0f);
  CHECK(gpu_result.found_non_finite == cpu_result.found_non_finite);
  CHECK(std::fabs(gpu_result.norm - cpu_result.norm) <= std::ldexp(cpu_result.norm, -23));
  for (size_t t = 0; t < on_cpu.size(); ++t) {
    CHECK(torch::equal(gpu.slot(t, on_cpu[t].sizes()).cpu(), cpu.slot(t, on_cpu[t].sizes())));
  }
  gpu.reset();
  CHECK_THROWS_WITH(gpu.accumulate({on_cpu[0], on_gpu[1], on_gpu[2], on_gpu[3]}, 1.0f),
                    Contains("gradient 0 is on cpu, the accumulator on cuda:0"));
  CHECK(gpu.slot(0, {21000}).abs().sum().item<float>() == 0.0f);
}
