// The LibTorch adapter on the CPU: tensors of every supported dtype and any shape summed exactly as
// the twin sums raw pointers, the slots as shaped views, and each bad tensor refused by name
// before the buffer changes.

#include "implementations/cuda/tensor_accumulator.h"

#include <catch2/catch.hpp>

#include "implementations/cuda/grad_accumulator_cpu.h"

using namespace gacc::cuda;
using Catch::Matchers::Contains;

TEST_CASE("tensors of every dtype are summed as the twin sums their raw data", "[accumulator]") {
  torch::manual_seed(3);
  const std::vector<torch::Tensor> grads = {torch::randn({3, 5}), torch::randn({7}).to(torch::kBFloat16),
                                            torch::randn({2, 2, 2}).to(torch::kFloat16), torch::randn({0})};
  std::vector<int64_t> sizes;
  std::vector<GradientView> views;
  for (const auto& g : grads) sizes.push_back(g.numel());
  views.push_back({grads[0].data_ptr(), 15, GradientType::fp32});
  views.push_back({grads[1].data_ptr(), 7, GradientType::bf16});
  views.push_back({grads[2].data_ptr(), 8, GradientType::fp16});
  views.push_back({nullptr, 0, GradientType::fp32});
  TensorGradAccumulator adapter(sizes, torch::kCPU);
  CpuGradAccumulator twin(sizes);
  for (const float scale : {1.0f, 0.25f}) {
    adapter.accumulate(grads, scale);
    twin.accumulate(views, scale);
  }
  for (size_t t = 0; t < grads.size(); ++t) {
    const auto slot = adapter.slot(t, grads[t].sizes());
    CHECK(slot.sizes() == grads[t].sizes());
    CHECK(slot.scalar_type() == torch::kFloat32);
    const auto expected = torch::from_blob(const_cast<float*>(twin.buffer().data()) + twin.offset(t),
                                           grads[t].sizes(), torch::kFloat32);
    CHECK(torch::equal(slot, expected));
  }
  // The slot of a sum: 1.25 x the upcast gradient, to fp32 rounding of two fused multiply-adds.
  CHECK(torch::allclose(adapter.slot(1, {7}), grads[1].to(torch::kFloat32) * 1.25, 1e-6, 0));
  const auto result = adapter.finalize(1.0f, 1.0f, true);
  CHECK(result.clip_coefficient <= 1.0f);
  CHECK_THROWS_WITH(adapter.finalize(1.0f, 1.0f), Contains("a second finalize without reset"));
  adapter.reset();
  CHECK(adapter.slot(0, {15}).abs().sum().item<float>() == 0.0f);
}

TEST_CASE("each bad tensor is refused by name before the buffer changes", "[accumulator]") {
  TensorGradAccumulator adapter({4, 3}, torch::kCPU);
  const auto good = torch::ones({4});
  const auto other = torch::ones({3});
  CHECK_THROWS_WITH(adapter.accumulate({good, torch::Tensor()}, 1.0f), Contains("gradient 1 is undefined"));
  CHECK_THROWS_WITH(adapter.accumulate({good, other.to(torch::kFloat64)}, 1.0f),
                    Contains("gradient 1 has dtype Double; float32, bfloat16 and float16 are supported"));
  CHECK_THROWS_WITH(adapter.accumulate({good, other.to(torch::kInt32)}, 1.0f), Contains("has dtype Int"));
  CHECK_THROWS_WITH(adapter.accumulate({torch::ones({2, 2}).t(), other}, 1.0f),
                    Contains("gradient 0 is not contiguous"));
  CHECK_THROWS_WITH(adapter.accumulate({good, torch::empty({3}, torch::kMeta)}, 1.0f),
                    Contains("gradient 1 is on meta, the accumulator on cpu"));
  CHECK_THROWS_WITH(adapter.accumulate({good, torch::ones({5})}, 1.0f),
                    Contains("gradient 1 has 5 elements, its slot 3"));
  CHECK_THROWS_WITH(adapter.accumulate({good}, 1.0f), Contains("1 gradients for a buffer of 2"));
  // A float view one byte into its storage: misaligned.
  auto bytes = torch::zeros({32}, torch::kUInt8);
  const auto misaligned = torch::from_blob(bytes.data_ptr<uint8_t>() + 1, {3}, torch::kFloat32);
  CHECK_THROWS_WITH(adapter.accumulate({good, misaligned}, 1.0f),
                    Contains("gradient 1 (fp32) is misaligned"));
  CHECK(adapter.slot(0, {4}).abs().sum().item<float>() == 0.0f);
  CHECK_THROWS_WITH(adapter.slot(0, {5}), Contains("slot 0 holds 4 elements, not 5"));
  CHECK_THROWS_WITH(adapter.slot(2, {1}), Contains("slot 2 of 2"));
  CHECK_THROWS_WITH(TensorGradAccumulator({1}, torch::kMeta), Contains("neither the CPU nor CUDA"));
  adapter.accumulate({good, other}, 2.0f);
  CHECK(torch::equal(adapter.slot(1, {3}), torch::full({3}, 2.0f)));
}
