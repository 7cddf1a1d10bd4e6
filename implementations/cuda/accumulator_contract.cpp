#include "implementations/cuda/accumulator_contract.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace gacc::cuda {

int element_bytes(GradientType type) { return type == GradientType::fp32 ? 4 : 2; }

const char* type_name(GradientType type) {
  switch (type) {
    case GradientType::fp32:
      return "fp32";
    case GradientType::bf16:
      return "bf16";
    case GradientType::fp16:
      return "fp16";
  }
  return "unknown";
}

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

float clip_coefficient(float norm, float max_norm) {
  const float coefficient = max_norm / (norm + 1e-6f);
  if (std::isnan(coefficient)) return coefficient;  // a NaN norm clips to NaN, as PyTorch's
  return coefficient < 1.0f ? coefficient : 1.0f;
}

BufferLayout make_layout(const std::vector<int64_t>& sizes) {
  BufferLayout layout;
  layout.sizes = sizes;
  for (size_t t = 0; t < sizes.size(); ++t) {
    if (sizes[t] < 0) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) +
                                  " has a negative size (" + std::to_string(sizes[t]) + ")");
    }
    layout.offsets.push_back(layout.total);
    layout.total += (sizes[t] + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
  }
  return layout;
}

std::vector<Bucket> plan_buckets(const BufferLayout& layout, int64_t bucket_elements) {
  if (bucket_elements < 1) {
    throw std::invalid_argument("plan_buckets: bucket_elements must be at least 1, not " +
                                std::to_string(bucket_elements));
  }
  std::vector<Bucket> buckets;
  const size_t count = layout.sizes.size();
  for (size_t t = 0; t < count; ++t) {
    const int64_t begin = layout.offsets[t];
    const int64_t end = t + 1 < count ? layout.offsets[t + 1] : layout.total;
    if (end == begin) continue;  // an empty gradient: no slot
    const bool fits =
        !buckets.empty() && buckets.back().end == begin && end - buckets.back().begin <= bucket_elements;
    if (fits) {
      buckets.back().end = end;
      buckets.back().end_tensor = t + 1;
    } else {
      // Empty gradients between two buckets belong to the one that follows them.
      const size_t first = buckets.empty() ? 0 : buckets.back().end_tensor;
      buckets.push_back({begin, end, first, t + 1});
    }
  }
  if (!buckets.empty()) buckets.back().end_tensor = count;  // trailing empty gradients
  return buckets;
}

void check_accumulate_arguments(const BufferLayout& layout, const std::vector<GradientView>& grads,
                                float scale) {
  if (grads.size() != layout.sizes.size()) {
    throw std::invalid_argument("GradAccumulator: " + std::to_string(grads.size()) +
                                " gradients for a buffer of " + std::to_string(layout.sizes.size()));
  }
  for (size_t t = 0; t < grads.size(); ++t) {
    const auto& g = grads[t];
    if (g.type != GradientType::fp32 && g.type != GradientType::bf16 && g.type != GradientType::fp16) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) +
                                  " has an unsupported type (fp32, bf16 and fp16 are)");
    }
    if (g.numel != layout.sizes[t]) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) + " has " +
                                  std::to_string(g.numel) + " elements, its slot " +
                                  std::to_string(layout.sizes[t]));
    }
    if (g.numel > 0 && g.data == nullptr) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) + " is a null pointer");
    }
    const auto address = reinterpret_cast<uintptr_t>(g.data);
    if (address % static_cast<uintptr_t>(element_bytes(g.type)) != 0) {
      throw std::invalid_argument("GradAccumulator: gradient " + std::to_string(t) + " (" +
                                  type_name(g.type) + ") is misaligned: address " + std::to_string(address) +
                                  " is not a multiple of " + std::to_string(element_bytes(g.type)));
    }
  }
  if (!std::isfinite(scale)) {
    throw std::invalid_argument("GradAccumulator: the scale is not finite (" + std::to_string(scale) + ")");
  }
}

void check_finalize_arguments(float inv_scale, float max_norm, bool already_finalized) {
  if (already_finalized) throw std::logic_error("GradAccumulator: a second finalize without reset");
  if (!std::isfinite(inv_scale)) {
    throw std::invalid_argument("GradAccumulator: the inverse scale is not finite (" +
                                std::to_string(inv_scale) + ")");
  }
  if (!(max_norm > 0.0f)) {
    throw std::invalid_argument("GradAccumulator: max_norm must be positive (inf: no clipping), not " +
                                std::to_string(max_norm));
  }
}

void check_not_finalized(bool finalized) {
  if (finalized) throw std::logic_error("GradAccumulator: accumulate after finalize without reset");
}

}  // namespace gacc::cuda
