#include "implementations/cuda/nccl_buckets.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "implementations/cuda/cuda_check.h"

namespace gacc::cuda {
namespace {

void check_nccl(ncclResult_t status, const char* call) {
  if (status != ncclSuccess && status != ncclInProgress) {
    throw std::runtime_error(std::string("NCCL error: ") + ncclGetErrorString(status) + " in " + call);
  }
}
#define GACC_NCCL_CHECK(call) check_nccl((call), #call)

using Clock = std::chrono::steady_clock;

}  // namespace

struct NcclGroup::State {
  ncclComm_t comm = nullptr;
  int rank = 0, world = 1, device = 0;
  double timeout_seconds = 30.0;
  int64_t collectives = 0, bytes = 0;

  /// Polls until `done()` or NCCL reports an error or the timeout passes; on an error or timeout
  /// the communicator is aborted (so no kernel waits forever for a peer) and the call throws.
  template <class Done>
  void wait(const char* what, Done&& done) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
    for (;;) {
      ncclResult_t async = ncclSuccess;
      GACC_NCCL_CHECK(ncclCommGetAsyncError(comm, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        abort();
        throw std::runtime_error(std::string("NCCL error in ") + what + " on rank " + std::to_string(rank) +
                                 ": " + ncclGetErrorString(async));
      }
      if (async == ncclSuccess && done()) return;
      if (Clock::now() > deadline) {
        abort();
        throw std::runtime_error(
            std::string(what) + ": rank " + std::to_string(rank) + " of " + std::to_string(world) +
            " waited " + std::to_string(timeout_seconds) +
            " s for the other ranks (one crashed, hung or exited early); communicator aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void abort() {
    if (comm != nullptr) ncclCommAbort(comm);
    comm = nullptr;
  }
};

NcclGroupId new_nccl_group_id() {
  ncclUniqueId id;
  GACC_NCCL_CHECK(ncclGetUniqueId(&id));
  NcclGroupId out;
  static_assert(sizeof(id.internal) == sizeof(NcclGroupId), "NCCL's unique id is 128 bytes");
  std::memcpy(out.data(), id.internal, out.size());
  return out;
}

NcclGroup::NcclGroup(const NcclGroupId& id, int rank, int world, int device, double timeout_seconds)
    : state_(std::make_unique<State>()) {
  if (world < 1 || rank < 0 || rank >= world) {
    throw std::invalid_argument("NcclGroup: rank " + std::to_string(rank) + " of a world of " +
                                std::to_string(world));
  }
  if (!(timeout_seconds > 0)) throw std::invalid_argument("NcclGroup: the timeout must be positive");
  State& s = *state_;
  s.rank = rank, s.world = world, s.device = device, s.timeout_seconds = timeout_seconds;
  GACC_CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId unique;
  std::memcpy(unique.internal, id.data(), id.size());
  // Non-blocking: the init returns at once and is polled, so a peer that never comes is a timeout.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  GACC_NCCL_CHECK(ncclCommInitRankConfig(&s.comm, world, unique, rank, &config));
  s.wait("joining the NCCL group", [] { return true; });
}

NcclGroup::~NcclGroup() {
  if (state_ && state_->comm != nullptr) ncclCommDestroy(state_->comm);
}

int NcclGroup::rank() const { return state_->rank; }
int NcclGroup::world() const { return state_->world; }
int NcclGroup::device() const { return state_->device; }
double NcclGroup::timeout_seconds() const { return state_->timeout_seconds; }
int64_t NcclGroup::collectives() const { return state_->collectives; }
int64_t NcclGroup::bytes() const { return state_->bytes; }

void all_reduce_buckets(GradAccumulator& accumulator, NcclGroup& group, BucketReduction reduction) {
  auto& s = *group.state_;
  if (s.comm == nullptr) throw std::runtime_error("all_reduce_buckets: the NCCL group was aborted");
  if (accumulator.device() != s.device) {
    throw std::invalid_argument("all_reduce_buckets: the accumulator is on device " +
                                std::to_string(accumulator.device()) + ", the group's rank on device " +
                                std::to_string(s.device));
  }
  GACC_CUDA_CHECK(cudaSetDevice(s.device));
  auto stream = static_cast<cudaStream_t>(accumulator.stream());
  float* buffer = accumulator.device_buffer();
  const ncclRedOp_t op = reduction == BucketReduction::sum ? ncclSum : ncclAvg;
  GACC_NCCL_CHECK(ncclGroupStart());
  for (const auto& bucket : accumulator.buckets()) {
    float* data = buffer + bucket.begin;
    GACC_NCCL_CHECK(ncclAllReduce(data, data, static_cast<size_t>(bucket.end - bucket.begin), ncclFloat32, op,
                                  s.comm, stream));
  }
  GACC_NCCL_CHECK(ncclGroupEnd());
  s.wait("all_reduce_buckets", [&] {
    const cudaError_t status = cudaStreamQuery(stream);
    if (status == cudaErrorNotReady) return false;
    GACC_CUDA_CHECK(status);
    return true;
  });
  s.collectives += static_cast<int64_t>(accumulator.buckets().size());
  s.bytes += accumulator.layout().total * static_cast<int64_t>(sizeof(float));
}

}  // namespace gacc::cuda
