// Gloo's headers come from Debian's libgloo-dev (the torch wheel ships LibTorch's c10d headers but
// not Gloo's); only the declarations are used, the code is LibTorch's own. NCCL's process group
// comes from the plugin (nccl_plugin.h).
#include "implementations/distributed/communicator.h"

#include <cstdlib>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "core/errors.h"
#include "implementations/distributed/nccl_plugin.h"

namespace gacc::distributed {

Communicator::Communicator(const c10::intrusive_ptr<c10d::Store>& store, const std::string& prefix, int rank,
                           int world, std::chrono::milliseconds timeout, const ProcessGroupOptions& options)
    : rank_(rank), world_(world) {
  const auto prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
  if (options.backend == ProcessGroupBackend::nccl) {
    group_ = make_nccl_process_group(prefixed, rank, world, timeout, options.device);
    device_ = options.device;
    return;
  }
  try {
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    gloo->devices.push_back(
        options.loopback          ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
        : interface && *interface ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                  : c10d::ProcessGroupGloo::createDefaultDevice());
    gloo->threads = 1;
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, gloo);
  } catch (const std::exception& e) {
    throw EnvironmentError("rank " + std::to_string(rank) + " of " + std::to_string(world) +
                           ": cannot form the Gloo process group: " + e.what());
  }
}

Communicator::~Communicator() = default;

void Communicator::all_reduce(torch::Tensor& tensor) {
  const auto start = std::chrono::steady_clock::now();
  // NCCL reduces on the rank's device: a copy there, and the sum copied back (which waits for it).
  std::vector<at::Tensor> tensors{
      device_ < 0 ? tensor : tensor.to(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device_)))};
  group_->allreduce(tensors)->wait();
  if (device_ >= 0) tensor.copy_(tensors.front());
  collective_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Communicator::all_reduce_gradients(torch::Tensor& tensor) {
  all_reduce(tensor);
  ++gradient_collectives_;
  gradient_bytes_ += static_cast<int64_t>(tensor.numel()) * static_cast<int64_t>(tensor.element_size());
}

void Communicator::all_reduce_metadata(torch::Tensor& tensor) {
  all_reduce(tensor);
  ++metadata_collectives_;
}

}  // namespace gacc::distributed
