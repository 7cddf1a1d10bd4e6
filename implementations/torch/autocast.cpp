#include "implementations/torch/autocast.h"

namespace gacc::torch_recipes {

CpuAutocast::CpuAutocast(Precision precision) : active_(precision != Precision::fp32) {
  if (!active_) return;
  previous_enabled_ = at::autocast::is_autocast_enabled(at::kCPU);
  previous_dtype_ = at::autocast::get_autocast_dtype(at::kCPU);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, precision == Precision::bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

CpuAutocast::~CpuAutocast() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCPU, previous_enabled_);
  at::autocast::set_autocast_dtype(at::kCPU, previous_dtype_);
}

}  // namespace gacc::torch_recipes
