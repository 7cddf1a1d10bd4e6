#pragma once
/// The all-reduce of the fused accumulator's buckets over NCCL, once per window: one process per
/// GPU, the buffer summed (or averaged) over the ranks bucket by bucket, on the accumulator's
/// stream, in one NCCL group. CUDA- and NCCL-free header.
///
/// Every wait is bounded: a rank that never arrives (crashed, hung, exited early) makes
/// `all_reduce_buckets` abort the communicator and throw after `timeout_seconds`, naming this rank;
/// a communicator that NCCL reports broken throws with NCCL's message.

#include <array>
#include <memory>
#include <string>

#include "implementations/cuda/grad_accumulator.h"

namespace gacc::cuda {

/// The id every rank of one group must be given (NCCL's 128-byte unique id), made by one rank and
/// handed to the others (gacc's rank pool sends it through its TCPStore).
using NcclGroupId = std::array<char, 128>;
NcclGroupId new_nccl_group_id();

enum class BucketReduction { sum, average };

/// This process's rank of a NCCL group over one GPU per rank.
class NcclGroup {
 public:
  /// Joins group `id` as `rank` of `world` on CUDA device `device`; waits at most `timeout_seconds`
  /// for the others. Throws std::invalid_argument on a bad rank or world, std::runtime_error when
  /// NCCL fails or the others do not arrive in time.
  NcclGroup(const NcclGroupId& id, int rank, int world, int device, double timeout_seconds = 30.0);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int rank() const;
  int world() const;
  int device() const;
  double timeout_seconds() const;
  /// Collectives and bytes (each rank's share of the buffer) all-reduced so far.
  int64_t collectives() const;
  int64_t bytes() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
  friend void all_reduce_buckets(GradAccumulator& accumulator, NcclGroup& group, BucketReduction reduction);
};

/// Sums (or averages) `accumulator`'s buffer over the group's ranks in place, one all-reduce per
/// bucket, and waits for it (bounded by the group's timeout). Every rank's accumulator must have the
/// same layout; the padding between slots stays zero. Throws std::invalid_argument when the
/// accumulator is on another device than the group, std::runtime_error on a NCCL error or timeout.
void all_reduce_buckets(GradAccumulator& accumulator, NcclGroup& group, BucketReduction reduction);

}  // namespace gacc::cuda
