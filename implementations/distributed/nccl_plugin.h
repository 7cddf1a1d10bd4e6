#pragma once
/// LibTorch's ProcessGroupNCCL, reached through gacc's plugin. ProcessGroupNCCL lives in
/// libtorch_cuda; gacc links LibTorch's CPU libraries only (linking libtorch whole let its copy of
/// std::filesystem::remove_all take over gacc's: cmake/GaccTorch.cmake), so the plugin
/// (libgacc_c10d_nccl.so, c10d_nccl_plugin.cpp) links libtorch_cuda and is loaded here on first use,
/// with RTLD_LOCAL: nothing gacc has already resolved changes. Loading it also registers LibTorch's
/// CUDA backend, so CPU tensors can then be moved to the rank's device.
///
/// The plugin is found as GACC_NCCL_PLUGIN, else beside the running executable, else where this
/// build put it. Built where the CUDA path is on and the LibTorch has CUDA.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace gacc::distributed {

/// The CUDA devices LibTorch sees, for one NCCL rank each. Throws EnvironmentError when the plugin
/// was not built or cannot be loaded, saying why.
int nccl_device_count();

/// The ranks of a local NCCL pool, one CUDA device each: `requested`, or with 0 one per device up to
/// 8. Throws EnvironmentError, its message starting with `what`, when that is fewer than 2 (a
/// data-parallel job has 2 ranks or more) or more than the devices.
int local_nccl_ranks(int requested, const std::string& what);

/// A ProcessGroupNCCL of `world` ranks as `rank` on CUDA device `device`, meeting through `store`;
/// a collective waiting longer than `timeout` throws on the waiting rank. Throws EnvironmentError
/// (the plugin, the device, NCCL) naming the rank.
c10::intrusive_ptr<c10d::Backend> make_nccl_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                          int world, std::chrono::milliseconds timeout,
                                                          int device);

}  // namespace gacc::distributed
