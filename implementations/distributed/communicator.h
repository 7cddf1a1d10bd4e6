#pragma once
/// `Communicator`: one rank's view of a c10d process group (Gloo on CPU, or NCCL on this rank's
/// CUDA device), with the counts a Trace reports. Recipes see it as torch_recipes::Collectives, so
/// that Gloo's headers stay in communicator.cpp and NCCL's in the plugin (nccl_plugin.h).

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "implementations/distributed/process_group_backend.h"
#include "implementations/torch/collectives.h"

namespace c10d {
class Store;
class Backend;
}  // namespace c10d

namespace gacc::distributed {

struct ProcessGroupOptions {
  ProcessGroupBackend backend = ProcessGroupBackend::gloo;
  /// Gloo: over 127.0.0.1 (one machine); otherwise over the interface named by GLOO_SOCKET_IFNAME,
  /// else the host name's address.
  bool loopback = true;
  /// NCCL: this rank's CUDA device. The training loop runs on the CPU; each collective moves its
  /// tensor to the device, all-reduces it there over NCCL and copies the sum back.
  int device = 0;
};

class Communicator final : public torch_recipes::Collectives {
 public:
  /// Joins a process group of `world` ranks as `rank`, meeting the others through `store` under
  /// `prefix` (every rank passes the same prefix). Collectives that wait longer than `timeout`
  /// throw. Throws EnvironmentError when the group cannot be formed.
  Communicator(const c10::intrusive_ptr<c10d::Store>& store, const std::string& prefix, int rank, int world,
               std::chrono::milliseconds timeout, const ProcessGroupOptions& options = {});
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  /// Sums over the ranks in place and waits (the backend's allreduce).
  void all_reduce_gradients(torch::Tensor& tensor) override;
  void all_reduce_metadata(torch::Tensor& tensor) override;
  int64_t gradient_collectives() const override { return gradient_collectives_; }
  int64_t gradient_bytes() const override { return gradient_bytes_; }
  int64_t metadata_collectives() const override { return metadata_collectives_; }
  /// Wall time spent in collectives (gradients and metadata) since the last reset.
  double collective_seconds() const { return collective_seconds_; }
  /// Starts counting afresh (a new job on a group that lives on).
  void reset_counts() {
    gradient_collectives_ = gradient_bytes_ = metadata_collectives_ = 0;
    collective_seconds_ = 0.0;
  }

 private:
  void all_reduce(torch::Tensor& tensor);

  int rank_, world_;
  int device_ = -1;  ///< NCCL: the CUDA device collectives run on; -1: Gloo, on the CPU tensor itself
  int64_t gradient_collectives_ = 0, gradient_bytes_ = 0, metadata_collectives_ = 0;
  double collective_seconds_ = 0.0;
  c10::intrusive_ptr<c10d::Backend> group_;
};

}  // namespace gacc::distributed
