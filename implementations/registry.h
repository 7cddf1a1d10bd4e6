#pragma once
/// The recipe registry: an explicit list (not static-initializer registration, which a linker may
/// drop). Add a recipe here and it runs against every property.

#include <memory>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "implementations/torch/training_loop.h"

namespace gacc {

/// Every recipe gacc knows: correct ones first, then the pitfalls. The data-parallel ones run the
/// loops of data_parallel_loops() on the shared rank pool.
std::vector<std::unique_ptr<Recipe>> all_recipes();

/// The loops that run as ranks of a process group (correct first, then pitfalls): what a
/// data-parallel recipe's ranks execute, looked up by name in each rank process.
std::vector<std::unique_ptr<torch_recipes::TorchTrainingLoop>> data_parallel_loops();

/// The loop of data_parallel_loops() named `name` (one instance per process), or null.
const torch_recipes::TorchTrainingLoop* find_data_parallel_loop(const std::string& name);

}  // namespace gacc
