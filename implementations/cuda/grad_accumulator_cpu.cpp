#include "implementations/cuda/grad_accumulator_cpu.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gacc::cuda {

float upcast_bf16(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;  // bf16 is fp32's upper half
  float out;
  std::memcpy(&out, &widened, sizeof out);
  return out;
}

float upcast_fp16(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) {  // inf or NaN (the payload kept)
    const uint32_t widened = sign | 0x7f800000u | (mantissa << 13);
    float out;
    std::memcpy(&out, &widened, sizeof out);
    return out;
  }
  // Normal: 1.m x 2^(e-15); subnormal: 0.m x 2^-14. Both exact in fp32.
  const float magnitude =
      exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -24)
                    : std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  return sign ? -magnitude : magnitude;
}

namespace {

float element(const GradientView& g, int64_t i) {
  switch (g.type) {
    case GradientType::fp32:
      return static_cast<const float*>(g.data)[i];
    case GradientType::bf16:
      return upcast_bf16(static_cast<const uint16_t*>(g.data)[i]);
    case GradientType::fp16:
      return upcast_fp16(static_cast<const uint16_t*>(g.data)[i]);
  }
  return 0.0f;
}

}  // namespace

CpuGradAccumulator::CpuGradAccumulator(std::vector<int64_t> sizes, ChunkPlanLimits limits)
    : sizes_(std::move(sizes)), limits_(limits), plan_(plan_chunks(sizes_, limits_)) {
  int64_t total = 0;
  for (const int64_t size : sizes_) {
    offsets_.push_back(total);
    total += size;
  }
  buffer_.assign(static_cast<size_t>(total), 0.0f);
}

void CpuGradAccumulator::accumulate(const std::vector<GradientView>& grads, float scale) {
  if (finalized_) throw std::logic_error("GradAccumulator: accumulate after finalize without reset");
  if (grads.size() != sizes_.size()) {
    throw std::invalid_argument("GradAccumulator: " + std::to_string(grads.size()) +
                                " gradients for a buffer of " + std::to_string(sizes_.size()));
  }
  for (size_t t = 0; t < grads.size(); ++t) {
    if (grads[t].numel != sizes_[t]) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) + " has " +
                                  std::to_string(grads[t].numel) + " elements, its slot " +
                                  std::to_string(sizes_[t]));
    }
    if (grads[t].numel > 0 && grads[t].data == nullptr) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) + " is a null pointer");
    }
  }
  if (!std::isfinite(scale)) throw std::invalid_argument("GradAccumulator: the scale is not finite");
  bool non_finite = false;
  for (const auto& launch : plan_) {
    for (const auto& block : launch.blocks) {
      const auto t = static_cast<size_t>(launch.tensors[static_cast<size_t>(block.entry)]);
      float* acc = buffer_.data() + offsets_[t];
      for (int64_t i = chunk_begin(block.chunk, limits_); i < chunk_end(block.chunk, sizes_[t], limits_);
           ++i) {
        const float g = element(grads[t], i);
        non_finite = non_finite || !std::isfinite(g);
        acc[i] = std::fma(scale, g, acc[i]);
      }
    }
  }
  found_non_finite_ = found_non_finite_ || non_finite;
}

FinalizeResult CpuGradAccumulator::finalize(float inv_scale, float max_norm) {
  if (finalized_) throw std::logic_error("GradAccumulator: a second finalize without reset");
  if (!std::isfinite(inv_scale))
    throw std::invalid_argument("GradAccumulator: the inverse scale is not finite");
  if (!(max_norm > 0.0f))
    throw std::invalid_argument("GradAccumulator: max_norm must be positive (inf: no clipping)");
  finalized_ = true;
  FinalizeResult result;
  double squares = 0.0;
  for (const auto& launch : plan_) {
    for (const auto& block : launch.blocks) {
      const auto t = static_cast<size_t>(launch.tensors[static_cast<size_t>(block.entry)]);
      float* acc = buffer_.data() + offsets_[t];
      double chunk_squares = 0.0;  // one block's partial sum, then added in plan order
      for (int64_t i = chunk_begin(block.chunk, limits_); i < chunk_end(block.chunk, sizes_[t], limits_);
           ++i) {
        acc[i] *= inv_scale;
        result.found_non_finite = result.found_non_finite || !std::isfinite(acc[i]);
        chunk_squares += static_cast<double>(acc[i]) * static_cast<double>(acc[i]);
      }
      squares += chunk_squares;
    }
  }
  result.found_non_finite = result.found_non_finite || found_non_finite_;
  result.norm = static_cast<float>(std::sqrt(squares));
  const float coefficient = max_norm / (result.norm + 1e-6f);
  result.clip_coefficient = coefficient < 1.0f ? coefficient : 1.0f;  // NaN norm: NaN, as PyTorch's
  if (std::isnan(coefficient)) result.clip_coefficient = coefficient;
  return result;
}

void CpuGradAccumulator::reset() {
  std::fill(buffer_.begin(), buffer_.end(), 0.0f);
  found_non_finite_ = false;
  finalized_ = false;
}

}  // namespace gacc::cuda
