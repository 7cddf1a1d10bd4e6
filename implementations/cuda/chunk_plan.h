#pragma once
/// The host-side planner of the multi-tensor accumulate: which chunk of which gradient each block of
/// each launch handles. A pure function, shared by the GPU launcher and the CPU twin (which walks the
/// same plan, so both see the same chunks), unit tested on the CPU.
///
/// A launch carries its metadata by value (kernel arguments are limited to a few KiB): at most
/// `max_tensors` tensor entries and `max_blocks` chunks. A tensor is cut into chunks of
/// `chunk_elements`; its chunks may span launches (the entry is repeated in the next launch, with
/// the chunks that remain). Empty tensors take no entry and no chunk.

#include <cstdint>
#include <vector>

namespace gacc::cuda {

struct ChunkPlanLimits {
  int64_t chunk_elements = 65536;  ///< elements per chunk (one block's work)
  int max_tensors = 110;           ///< tensor entries per launch
  int max_blocks = 320;            ///< chunks per launch
};

/// One block's work: chunk `chunk` of the launch's tensor entry `entry`.
struct PlannedBlock {
  int entry = 0;
  int64_t chunk = 0;  ///< index of the chunk within its tensor
};

struct PlannedLaunch {
  std::vector<int> tensors;  ///< entry -> index into the planned tensor list
  std::vector<PlannedBlock> blocks;
};

/// The launches that cover every element of tensors of `sizes` elements exactly once, in tensor
/// order and chunk order. Throws std::invalid_argument on a negative size or a limit below 1.
std::vector<PlannedLaunch> plan_chunks(const std::vector<int64_t>& sizes, const ChunkPlanLimits& limits = {});

/// The chunks of every launch of `plan`: one block each, one partial sum each in finalize.
inline int64_t chunk_count(const std::vector<PlannedLaunch>& plan) {
  int64_t chunks = 0;
  for (const auto& launch : plan) chunks += static_cast<int64_t>(launch.blocks.size());
  return chunks;
}

/// [begin, end) of chunk `chunk` of a tensor of `size` elements.
inline int64_t chunk_begin(int64_t chunk, const ChunkPlanLimits& limits) {
  return chunk * limits.chunk_elements;
}
inline int64_t chunk_end(int64_t chunk, int64_t size, const ChunkPlanLimits& limits) {
  const int64_t end = (chunk + 1) * limits.chunk_elements;
  return end < size ? end : size;
}

}  // namespace gacc::cuda
