#pragma once
/// CPU autocast in LibTorch C++, scoped: what `with torch.autocast("cpu", dtype=...)` does in Python.

#include <ATen/autocast_mode.h>

#include "core/scenario.h"

namespace gacc::torch_recipes {

/// Enables CPU autocast to the scenario's low precision (bf16 or fp16) while it lives; does nothing
/// for fp32. The forward pass and the loss run inside it, the backward pass outside, as PyTorch
/// recommends.
class CpuAutocast {
 public:
  explicit CpuAutocast(Precision precision);
  ~CpuAutocast();
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

}  // namespace gacc::torch_recipes
