#include "implementations/cuda/chunk_plan.h"

#include <stdexcept>
#include <string>

namespace gacc::cuda {

std::vector<PlannedLaunch> plan_chunks(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits) {
  if (limits.chunk_elements < 1 || limits.max_tensors < 1 || limits.max_blocks < 1) {
    throw std::invalid_argument("plan_chunks: every limit must be at least 1");
  }
  std::vector<PlannedLaunch> launches;
  PlannedLaunch current;
  const auto flush = [&] {
    if (!current.blocks.empty()) launches.push_back(std::move(current));
    current = PlannedLaunch{};
  };
  for (size_t t = 0; t < sizes.size(); ++t) {
    const int64_t size = sizes[t];
    if (size < 0)
      throw std::invalid_argument("plan_chunks: tensor " + std::to_string(t) + " has a negative size");
    if (size == 0) continue;
    const int64_t chunks = (size + limits.chunk_elements - 1) / limits.chunk_elements;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const bool entered = !current.tensors.empty() && current.tensors.back() == static_cast<int>(t);
      if (!entered) {
        if (static_cast<int>(current.tensors.size()) == limits.max_tensors) flush();
        current.tensors.push_back(static_cast<int>(t));
      }
      current.blocks.push_back({static_cast<int>(current.tensors.size()) - 1, chunk});
      if (static_cast<int>(current.blocks.size()) == limits.max_blocks) {
        flush();
      }
    }
  }
  flush();
  return launches;
}

}  // namespace gacc::cuda
