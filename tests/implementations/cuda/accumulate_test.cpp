#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include "implementations/cuda/accumulate.h"

namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

/// Runs the kernel on fresh random data (and a poisoned scratch buffer) and returns the result.
std::vector<float> on_device(std::vector<float> acc, const std::vector<float>& grad, float scale) {
  float *d_acc = nullptr, *d_grad = nullptr;
  const size_t bytes = acc.size() * sizeof(float);
  REQUIRE(cudaMalloc(&d_acc, bytes + 64) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_grad, bytes + 64) == cudaSuccess);
  REQUIRE(cudaMemset(d_acc, 0xff, bytes + 64) == cudaSuccess);  // NaN poison past the end too
  REQUIRE(cudaMemcpy(d_acc, acc.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_grad, grad.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  gacc::cuda::accumulate_fp32(d_acc, d_grad, static_cast<int64_t>(acc.size()), scale);
  std::vector<float> out(acc.size() + 16);
  REQUIRE(cudaMemcpy(out.data(), d_acc, bytes + 64, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(d_acc);
  cudaFree(d_grad);
  for (size_t i = acc.size(); i < out.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &out[i], 4);
    REQUIRE(bits == 0xffffffffu);  // nothing written past the end
  }
  out.resize(acc.size());
  return out;
}

}  // namespace

TEST_CASE("the fp32 accumulate kernel equals its CPU twin bit for bit", "[gpu]") {
  for (size_t n : {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{135168}, size_t{1} << 20}) {
    const auto acc = random_values(n, static_cast<uint32_t>(n));
    const auto grad = random_values(n, static_cast<uint32_t>(n) + 1);
    auto expected = acc;
    gacc::cuda::accumulate_fp32_cpu(expected.data(), grad.data(), static_cast<int64_t>(n), 0.375f);
    const auto got = on_device(acc, grad, 0.375f);
    INFO("n = " << n);
    CHECK(std::memcmp(got.data(), expected.data(), n * sizeof(float)) == 0);
  }
}

TEST_CASE("NaN and Inf pass through the accumulate kernel as on the CPU", "[gpu]") {
  const size_t n = 1000;
  auto acc = random_values(n, 3);
  auto grad = random_values(n, 4);
  grad[0] = std::numeric_limits<float>::quiet_NaN();
  grad[n / 2] = std::numeric_limits<float>::infinity();
  grad[n - 1] = -std::numeric_limits<float>::infinity();
  const auto got = on_device(acc, grad, 1.0f);
  CHECK(std::isnan(got[0]));
  CHECK(std::isinf(got[n / 2]));
  CHECK(got[n - 1] < 0);
  CHECK(std::isinf(got[n - 1]));
}

TEST_CASE("bad arguments are refused before any launch", "[gpu]") {
  CHECK_THROWS_AS(gacc::cuda::accumulate_fp32(nullptr, nullptr, 4, 1.0f), std::invalid_argument);
  CHECK_THROWS_AS(gacc::cuda::accumulate_fp32(nullptr, nullptr, -1, 1.0f), std::invalid_argument);
  CHECK_NOTHROW(gacc::cuda::accumulate_fp32(nullptr, nullptr, 0, 1.0f));
}
