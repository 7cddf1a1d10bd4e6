#pragma once
/// `Scenario`: one complete, self-contained training situation to check — model, data and its
/// split into windows and micro-batches, loss, optimizer, schedule, clipping, precision. A plain
/// value, serializable to JSON; a failing case prints its Scenario JSON and `gacc repro` reruns it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gacc {

/// The model zoo (fixtures/ lays the parameters out, reference/ differentiates, recipes train).
/// The MLPs are fc1 -> [norm] -> activation -> fc2; the norm variants use tanh. mlp_routed replaces
/// fc2 by two experts and routes each example to one of them.
enum class Architecture {
  linear,          ///< y = W x + b
  mlp_tanh,        ///< y = W2 tanh(W1 x + b1) + b2
  mlp_gelu,        ///< y = W2 gelu(W1 x + b1) + b2 (exact, erf form)
  mlp_layer_norm,  ///< LayerNorm over the hidden features
  mlp_group_norm,  ///< GroupNorm with `groups` groups of hidden features
  mlp_rms_norm,    ///< RMSNorm over the hidden features (weight only)
  mlp_batch_norm,  ///< BatchNorm1d in train mode: batch statistics, running statistics
  mlp_routed,      ///< y = E_e tanh(W1 x + b1) + c_e, expert e = 0 if x[0] >= 0 else 1 (hard top-1
                   ///< routing): an expert no example of a batch is routed to takes no part in it
  causal_lm,       ///< embedding, single-head causal attention + residual, LayerNorm, head
};

enum class LossKind {
  mse,            ///< regressors
  cross_entropy,  ///< causal_lm: next-token targets, some ignored (ignore_index)
};

/// How per-element losses combine into the window's loss, always over the window's large batch
/// (all micro-batches, all ranks): `mean` averages MSE over every output element, `token_mean`
/// averages cross-entropy over every counted (not ignored) target token, `sum` adds.
enum class Reduction { mean, sum, token_mean };

enum class OptimizerKind { sgd, adam, adamw };

/// Learning-rate schedules, with PyTorch's meaning, stepped once per optimizer step.
enum class ScheduleKind {
  constant,
  step,           ///< StepLR(step_size, gamma)
  linear_warmup,  ///< LinearLR(start_factor, end_factor = 1, total_iters = warmup_steps)
  cosine,         ///< CosineAnnealingLR(T_max = t_max, eta_min)
};

enum class ClippingKind {
  none,
  norm,   ///< clip_grad_norm_(max_norm): scale by max_norm / (norm + 1e-6) when that is below 1
  value,  ///< clip_grad_value_(clip_value)
};

/// How the recipe computes. Weights are fp32 in every policy (master weights).
enum class Precision {
  fp32,
  bf16,  ///< bf16 autocast: matrix products in bf16, accumulation and optimizer in fp32
  fp16,  ///< fp16 autocast with dynamic loss scaling (GradScaler semantics)
};

struct ModelSpec {
  Architecture arch = Architecture::linear;
  int64_t input_dim = 0;   ///< regressors
  int64_t hidden_dim = 0;  ///< mlp_*
  int64_t output_dim = 0;  ///< regressors
  int64_t groups = 0;      ///< mlp_group_norm: divides hidden_dim
  double norm_eps = 1e-5;  ///< the norm layers' epsilon (LayerNorm, GroupNorm, RMSNorm, BatchNorm)
  double batch_norm_momentum = 0.1;  ///< mlp_batch_norm: running statistics' momentum
  int64_t vocab_size = 0;            ///< causal_lm
  int64_t d_model = 0;               ///< causal_lm
  int64_t max_seq_len = 0;           ///< causal_lm
  uint64_t init_seed = 0;            ///< seeds the initial weights (fixtures' own generator)
};

/// The data and how it is cut. `windows[s][r]` lists the micro-batch sizes (examples) of rank r in
/// the window of optimizer step s. Every window but the last holds exactly `accumulation_steps`
/// micro-batches per rank and `global_batch` examples in all; the last may be partial (fewer
/// micro-batches, or fewer examples). Examples are numbered consecutively through windows, ranks,
/// micro-batches, so re-splitting a window never changes which examples it holds.
struct DataSpec {
  uint64_t seed = 0;
  int64_t global_batch = 1;
  std::vector<std::vector<std::vector<int64_t>>> windows;
  /// causal_lm: tokens in each example, in example order, 0..max_seq_len (0: an all-padding row).
  std::vector<int64_t> sequence_lengths;
  /// causal_lm: share of target tokens set to ignore_index (drawn from the data seed; the first
  /// target of each window's first non-empty sequence is always counted).
  double ignored_fraction = 0.0;
};

struct LossSpec {
  LossKind kind = LossKind::mse;
  Reduction reduction = Reduction::mean;
};

/// Optimizer hyperparameters with PyTorch's meaning (torch.optim.SGD, Adam, AdamW).
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.1;
  double weight_decay = 0.0;  ///< L2 for sgd and adam, decoupled for adamw
  double momentum = 0.0;      ///< sgd
  double dampening = 0.0;     ///< sgd
  bool nesterov = false;      ///< sgd
  double beta1 = 0.9;         ///< adam, adamw
  double beta2 = 0.999;       ///< adam, adamw
  double eps = 1e-8;          ///< adam, adamw: added to sqrt(v_hat)
  bool amsgrad = false;       ///< adam, adamw
};

struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t step_size = 1;        ///< step
  double gamma = 0.1;           ///< step
  int64_t warmup_steps = 1;     ///< linear_warmup
  double start_factor = 0.25;   ///< linear_warmup
  int64_t t_max = 1;            ///< cosine
  double eta_min = 0.0;         ///< cosine
};

struct ClippingSpec {
  ClippingKind kind = ClippingKind::none;
  double max_norm = 1.0;    ///< norm
  double clip_value = 1.0;  ///< value
};

/// torch.amp.GradScaler's parameters (fp16 only).
struct LossScaleSpec {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

struct Scenario {
  ModelSpec model;
  DataSpec data;
  LossSpec loss;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  ClippingSpec clipping;
  Precision precision = Precision::fp32;
  LossScaleSpec loss_scale;    ///< fp16 only
  int world_size = 1;          ///< W: data-parallel ranks
  int accumulation_steps = 1;  ///< K: micro-batches per rank per full window
  int steps = 1;               ///< S: optimizer steps (= windows)
};

/// Throws InputError naming the first invalid field (e.g. "scenario.accumulation_steps").
void validate(const Scenario& scenario);

/// Strict JSON: unknown or inapplicable keys, wrong types and invalid values throw InputError
/// naming the field. Optional fields take the defaults above.
Scenario scenario_from_json(const nlohmann::json& json);
/// Parses JSON text; malformed text throws InputError.
Scenario parse_scenario(std::string_view text);
/// Only the fields that apply to the scenario's model, loss, optimizer, schedule and precision.
nlohmann::json to_json(const Scenario& scenario);
/// Compact one-line JSON, as printed in reproduce lines.
std::string to_json_text(const Scenario& scenario);

// The shape of the data, derived from `windows`.

/// Micro-batches per rank in the window of `step` (K, or fewer in a partial last window).
int micro_batch_count(const Scenario& scenario, int step);
/// Examples in the window of `step`, all ranks together.
int64_t window_examples(const Scenario& scenario, int step);
/// Examples in the whole scenario.
int64_t total_examples(const Scenario& scenario);
/// Index of the first example of (step, rank, micro) in the scenario's example numbering.
int64_t first_example(const Scenario& scenario, int step, int rank, int micro);

/// Whether the model is the token model (cross-entropy over sequences).
bool is_token_model(const ModelSpec& model);
/// Whether the model normalizes over the batch (its gradient is not per-example separable).
bool is_batch_coupled(const ModelSpec& model);

std::string to_string(Architecture arch);
std::string to_string(LossKind kind);
std::string to_string(Reduction reduction);
std::string to_string(OptimizerKind kind);
std::string to_string(ScheduleKind kind);
std::string to_string(ClippingKind kind);
std::string to_string(Precision precision);

/// Every value of each enumeration, for `gacc list`.
std::vector<std::string> all_architectures();
std::vector<std::string> all_losses();
std::vector<std::string> all_optimizers();
std::vector<std::string> all_schedules();
std::vector<std::string> all_clippings();
std::vector<std::string> all_precisions();

}  // namespace gacc
