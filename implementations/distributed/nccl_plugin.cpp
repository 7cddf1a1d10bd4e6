#include "implementations/distributed/nccl_plugin.h"

#include <dlfcn.h>

#include <algorithm>
#include <string>

#include "core/errors.h"
#include "implementations/distributed/companion_files.h"
#include "implementations/distributed/nccl_plugin_abi.h"

#ifndef GACC_NCCL_PLUGIN_BUILD_PATH
#define GACC_NCCL_PLUGIN_BUILD_PATH ""  // this build has no plugin: only GACC_NCCL_PLUGIN can name one
#endif

namespace gacc::distributed {

namespace {

struct Plugin {
  GaccNcclDeviceCountFn device_count = nullptr;
  GaccNcclMakeBackendFn make_backend = nullptr;
  std::string failure;  ///< why it is unusable; empty when it loaded
};

Plugin load() {
  Plugin plugin;
  const std::string path = find_companion_file("libgacc_c10d_nccl.so", "GACC_NCCL_PLUGIN",
                                               GACC_NCCL_PLUGIN_BUILD_PATH, /*executable=*/false);
  if (path.empty()) {
    plugin.failure = std::string(GACC_NCCL_PLUGIN_BUILD_PATH).empty()
                         ? "this gacc was built without the NCCL backend (it needs the CUDA path and a LibTorch "
                           "with CUDA; set GACC_NCCL_PLUGIN to a libgacc_c10d_nccl.so built elsewhere)"
                         : "cannot find the NCCL plugin libgacc_c10d_nccl.so beside " + self_directory() +
                               " or at " GACC_NCCL_PLUGIN_BUILD_PATH "; set GACC_NCCL_PLUGIN";
    return plugin;
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    plugin.failure = "cannot load the NCCL plugin " + path + ": " + (why ? why : "unknown error");
    return plugin;
  }
  const auto abi = reinterpret_cast<GaccNcclPluginAbiFn>(dlsym(handle, kGaccNcclPluginAbiSymbol));
  plugin.device_count = reinterpret_cast<GaccNcclDeviceCountFn>(dlsym(handle, kGaccNcclDeviceCountSymbol));
  plugin.make_backend = reinterpret_cast<GaccNcclMakeBackendFn>(dlsym(handle, kGaccNcclMakeBackendSymbol));
  if (!abi || !plugin.device_count || !plugin.make_backend || abi() != kGaccNcclPluginAbi) {
    plugin.failure = "the NCCL plugin " + path + " is not of this gacc (interface version " +
                     (abi ? std::to_string(abi()) : std::string("unknown")) + ", expected " +
                     std::to_string(kGaccNcclPluginAbi) + ")";
  }
  // Never closed: LibTorch's CUDA backend, once registered, stays for the life of the process.
  return plugin;
}

const Plugin& plugin() {
  static const Plugin loaded = load();
  if (!loaded.failure.empty()) throw EnvironmentError(loaded.failure);
  return loaded;
}

}  // namespace

int nccl_device_count() {
  char error[512] = {};
  const int count = plugin().device_count(error, sizeof error);
  if (count < 0) throw EnvironmentError(std::string("NCCL backend: cannot count the CUDA devices: ") + error);
  return count;
}

int local_nccl_ranks(int requested, const std::string& what) {
  const int devices = nccl_device_count();
  const int ranks = requested > 0 ? requested : std::min(devices, 8);
  const std::string visible =
      std::to_string(devices) + " CUDA device" + (devices == 1 ? " is" : "s are") + " visible";
  if (ranks < 2) {
    throw EnvironmentError(what + " needs at least 2 CUDA devices (one per rank; a data-parallel job " +
                           "has 2 ranks or more): " + visible);
  }
  if (ranks > devices) {
    throw EnvironmentError(what + " --ranks " + std::to_string(ranks) + " needs " + std::to_string(ranks) +
                           " CUDA devices (one per rank): " + visible);
  }
  return ranks;
}

c10::intrusive_ptr<c10d::Backend> make_nccl_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                          int world, std::chrono::milliseconds timeout,
                                                          int device) {
  const auto& loaded = plugin();
  char error[1024] = {};
  void* group = loaded.make_backend(store.get(), rank, world, static_cast<std::int64_t>(timeout.count()), device,
                                    error, sizeof error);
  if (group == nullptr) {
    throw EnvironmentError("rank " + std::to_string(rank) + " of " + std::to_string(world) +
                           ": cannot form the NCCL process group: " + error);
  }
  return c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(group));
}

}  // namespace gacc::distributed
