#include "implementations/cuda/load_torch_cuda.h"

#include <dlfcn.h>
#include <torch/torch.h>

namespace gacc::cuda {

bool load_torch_cuda() {
  static const bool available = [] {
    // Not linked (linking libtorch whole made its std::filesystem::remove_all interpose gacc's): a
    // library loaded now leaves gacc's already-resolved symbols alone.
    if (dlopen(GACC_TORCH_LIBRARY_DIR "/libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL) == nullptr) return false;
    try {
      return torch::cuda::is_available();
    } catch (...) {
      return false;
    }
  }();
  return available;
}

}  // namespace gacc::cuda
