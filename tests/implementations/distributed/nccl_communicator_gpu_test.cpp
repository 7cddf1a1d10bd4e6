// The NCCL backend on a device: a one-rank ProcessGroupNCCL (the most one GPU can hold; two ranks
// need two devices: tests/cli's nccl cases) moves each CPU tensor to the rank's device, all-reduces
// it there and copies the sum back, counting what it moved.

#include <catch2/catch.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include "implementations/distributed/communicator.h"

using namespace gacc::distributed;

TEST_CASE("a one-rank NCCL group sums CPU tensors on the device and counts them", "[nccl][gpu]") {
  const auto store = c10::make_intrusive<c10d::HashStore>();
  Communicator group(store, "group/1", 0, 1, std::chrono::milliseconds(20000),
                     ProcessGroupOptions{ProcessGroupBackend::nccl, true, 0});
  CHECK(group.rank() == 0);
  CHECK(group.world() == 1);

  torch::manual_seed(7);
  const torch::Tensor gradient = torch::randn({1000}, torch::kFloat32);
  torch::Tensor reduced = gradient.clone();
  group.all_reduce_gradients(reduced);
  CHECK(reduced.device().is_cpu());
  CHECK(torch::equal(reduced, gradient));  // one rank: the sum is the tensor itself, bit for bit

  torch::Tensor counts = torch::tensor({3.0, 5.0}, torch::kFloat64);
  group.all_reduce_metadata(counts);
  CHECK(counts[0].item<double>() == 3.0);
  CHECK(counts[1].item<double>() == 5.0);

  CHECK(group.gradient_collectives() == 1);
  CHECK(group.gradient_bytes() == 4000);
  CHECK(group.metadata_collectives() == 1);
  CHECK(group.collective_seconds() > 0.0);
  group.reset_counts();
  CHECK(group.gradient_collectives() == 0);
}
