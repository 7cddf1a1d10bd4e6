#pragma once
/// `Scenario`: one complete, self-contained training situation to check — model, data and its
/// split into windows and micro-batches, loss, optimizer, precision. A plain value, serializable
/// to JSON; a failing case prints its Scenario JSON and `gacc repro` reruns it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gacc {

/// Model architectures of the zoo (fixtures/ builds them, reference/ differentiates them).
enum class Architecture {
  linear,    ///< y = W x + b
  mlp_tanh,  ///< y = W2 tanh(W1 x + b1) + b2
};

enum class LossKind { mse };

/// How per-element losses combine into the window's loss. `mean` averages over every element of
/// the window's large batch (all micro-batches, all ranks); `sum` adds them.
enum class Reduction { mean, sum };

enum class OptimizerKind { sgd };

/// Precision the recipe trains in (weights, activations, gradients).
enum class Precision { fp32 };

struct ModelSpec {
  Architecture arch = Architecture::linear;
  int64_t input_dim = 1;
  int64_t hidden_dim = 0;  ///< mlp_* only; 0 for architectures without a hidden layer
  int64_t output_dim = 1;
  uint64_t init_seed = 0;  ///< seeds the initial weights (fixtures' own generator)
};

/// The data and how it is cut. `windows[s][r]` lists the micro-batch sizes of rank r in the window
/// of optimizer step s. Every window but the last holds exactly `accumulation_steps` micro-batches
/// per rank and `global_batch` examples in all; the last may be partial (fewer micro-batches, or
/// fewer examples). Examples are numbered consecutively through windows, ranks, micro-batches, so
/// re-splitting a window never changes which examples it holds.
struct DataSpec {
  uint64_t seed = 0;
  int64_t global_batch = 1;
  std::vector<std::vector<std::vector<int64_t>>> windows;
};

struct LossSpec {
  LossKind kind = LossKind::mse;
  Reduction reduction = Reduction::mean;
};

/// Optimizer hyperparameters with PyTorch's meaning (torch.optim.SGD).
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

struct Scenario {
  ModelSpec model;
  DataSpec data;
  LossSpec loss;
  OptimizerSpec optimizer;
  Precision precision = Precision::fp32;
  int world_size = 1;          ///< W: data-parallel ranks
  int accumulation_steps = 1;  ///< K: micro-batches per rank per full window
  int steps = 1;               ///< S: optimizer steps (= windows)
};

/// Throws InputError naming the first invalid field (e.g. "scenario.accumulation_steps").
void validate(const Scenario& scenario);

/// Strict JSON: unknown keys, wrong types and invalid values throw InputError naming the field.
Scenario scenario_from_json(const nlohmann::json& json);
/// Parses JSON text; malformed text throws InputError.
Scenario parse_scenario(std::string_view text);
nlohmann::json to_json(const Scenario& scenario);
/// Compact one-line JSON, as printed in reproduce lines.
std::string to_json_text(const Scenario& scenario);

// The shape of the data, derived from `windows`.

/// Micro-batches per rank in the window of `step` (K, or fewer in a partial last window).
int micro_batch_count(const Scenario& scenario, int step);
/// Examples in the window of `step`, all ranks together.
int64_t window_examples(const Scenario& scenario, int step);
/// Index of the first example of (step, rank, micro) in the scenario's example numbering.
int64_t first_example(const Scenario& scenario, int step, int rank, int micro);

std::string to_string(Architecture arch);
std::string to_string(Reduction reduction);
std::string to_string(OptimizerKind kind);
std::string to_string(Precision precision);
std::string to_string(LossKind kind);

/// Every value of each enumeration, for `gacc list`.
std::vector<std::string> all_architectures();
std::vector<std::string> all_optimizers();
std::vector<std::string> all_losses();

}  // namespace gacc
