#pragma once
/// `Collectives`: what a data-parallel training loop needs from its process group — its rank, the
/// world, and sums over the ranks — with the counts a Trace reports. implementations/distributed
/// provides it over c10d; the LibTorch loop only sees this interface.

#include <torch/torch.h>

#include <cstdint>

namespace gacc::torch_recipes {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  /// Sums `tensor` over the ranks in place: a gradient collective.
  virtual void all_reduce_gradients(torch::Tensor& tensor) = 0;
  /// Sums a small tensor of metadata (token counts, flags) over the ranks in place.
  virtual void all_reduce_metadata(torch::Tensor& tensor) = 0;

  virtual int64_t gradient_collectives() const = 0;
  virtual int64_t gradient_bytes() const = 0;
  virtual int64_t metadata_collectives() const = 0;
};

}  // namespace gacc::torch_recipes
