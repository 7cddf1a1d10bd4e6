#pragma once
/// The C interface between gacc and its NCCL plugin (libgacc_c10d_nccl.so, c10d_nccl_plugin.cpp).
/// gacc links LibTorch's CPU libraries only; LibTorch's ProcessGroupNCCL lives in libtorch_cuda,
/// which gacc must not link (cmake/GaccTorch.cmake says why), so the plugin links it and gacc loads
/// the plugin at run time (nccl_plugin.h). Plain C types only: the plugin and gacc share LibTorch's
/// c10 and c10d classes through LibTorch's own shared libraries, never through this interface.

#include <cstddef>
#include <cstdint>

extern "C" {

/// Bumped whenever a signature below changes; gacc refuses a plugin of another version.
inline constexpr int kGaccNcclPluginAbi = 1;

/// The plugin's kGaccNcclPluginAbi.
using GaccNcclPluginAbiFn = int (*)();
inline constexpr const char* kGaccNcclPluginAbiSymbol = "gacc_c10d_nccl_plugin_abi";

/// The CUDA devices LibTorch sees; -1 with a message in `error` (at most `error_size` bytes,
/// terminated) when it cannot tell.
using GaccNcclDeviceCountFn = int (*)(char* error, std::size_t error_size);
inline constexpr const char* kGaccNcclDeviceCountSymbol = "gacc_c10d_nccl_device_count";

/// A c10d::ProcessGroupNCCL of `world` ranks as `rank`, on CUDA device `device`, meeting the others
/// through `store` (a c10d::Store*, borrowed: the group takes its own reference), every collective
/// bounded by `timeout_ms` (blocking waits: a collective that times out throws on the waiting rank).
/// Returns the group as an owning c10d::Backend* (one reference, for
/// c10::intrusive_ptr<c10d::Backend>::reclaim), or null with a message in `error`.
using GaccNcclMakeBackendFn = void* (*)(void* store, int rank, int world, std::int64_t timeout_ms, int device,
                                        char* error, std::size_t error_size);
inline constexpr const char* kGaccNcclMakeBackendSymbol = "gacc_c10d_nccl_make_backend";

}  // extern "C"
