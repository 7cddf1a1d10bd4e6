#pragma once
/// gacc links LibTorch's CPU libraries only. Code that hands LibTorch CUDA tensors (the adapter's
/// GPU test, `gacc bench accumulate`'s LibTorch rows) loads LibTorch's CUDA library at run time,
/// from the LibTorch gacc was built against, which registers its CUDA backend.

namespace gacc::cuda {

/// Loads libtorch_cuda once (where the LibTorch has it) and returns whether LibTorch now sees a
/// CUDA device. Never throws: false when there is no such library, no device or no driver.
bool load_torch_cuda();

}  // namespace gacc::cuda
