#pragma once
// Hand-written scenarios shared by tests.

#include <vector>

#include "core/scenario.h"

namespace gacc::testing {

/// A tanh MLP, K = 3 uneven micro-batches, a partial last window, SGD with momentum and decay.
inline Scenario mlp_scenario() {
  Scenario sc;
  sc.model.arch = Architecture::mlp_tanh;
  sc.model.input_dim = 3;
  sc.model.hidden_dim = 4;
  sc.model.output_dim = 2;
  sc.model.init_seed = 7;
  sc.data.seed = 11;
  sc.data.global_batch = 6;
  sc.data.windows = {{{1, 3, 2}}, {{2, 2, 2}}, {{4, 1}}};
  sc.loss = {LossKind::mse, Reduction::mean};
  sc.optimizer.kind = OptimizerKind::sgd;
  sc.optimizer.lr = 0.125;
  sc.optimizer.momentum = 0.875;
  sc.optimizer.weight_decay = 1.0 / 64;
  sc.accumulation_steps = 3;
  sc.steps = 3;
  return sc;
}

/// Linear regression, one window of K = 2 equal micro-batches, plain SGD.
inline Scenario linear_scenario() {
  Scenario sc;
  sc.model.arch = Architecture::linear;
  sc.model.input_dim = 2;
  sc.model.output_dim = 1;
  sc.model.init_seed = 3;
  sc.data.seed = 5;
  sc.data.global_batch = 4;
  sc.data.windows = {{{2, 2}}};
  sc.optimizer.lr = 0.25;
  sc.accumulation_steps = 2;
  sc.steps = 1;
  return sc;
}

/// A tiny causal language model: W = 2 ranks, K = 2 uneven micro-batches, a partial last window
/// whose first sequence is all padding, some ignored targets, Adam.
inline Scenario causal_lm_scenario() {
  Scenario sc;
  sc.model.arch = Architecture::causal_lm;
  sc.model.vocab_size = 7;
  sc.model.d_model = 4;
  sc.model.max_seq_len = 5;
  sc.model.init_seed = 13;
  sc.data.seed = 17;
  sc.data.global_batch = 6;
  sc.data.windows = {{{1, 2}, {2, 1}}, {{2}, {1}}};
  sc.data.sequence_lengths = {3, 0, 5, 1, 4, 2, 0, 5, 1};
  sc.data.ignored_fraction = 0.25;
  sc.loss = {LossKind::cross_entropy, Reduction::token_mean};
  sc.optimizer.kind = OptimizerKind::adam;
  sc.optimizer.lr = 1.0 / 64;
  sc.world_size = 2;
  sc.accumulation_steps = 2;
  sc.steps = 2;
  return sc;
}

/// mlp_routed on mlp_scenario()'s shapes, with a data seed whose routes reach every case: by input
/// feature 0, the examples go to experts [1] [1 0 1] [1 1] | [1 0] [0 0] [1 0] | [0 0 0 0] [0]
/// (micro-batches in brackets, windows split by |). So micro-batches routed to both experts, to
/// expert 1 only and to expert 0 only, and a whole window (the last) that never reaches expert 1.
inline Scenario routed_scenario() {
  Scenario sc = mlp_scenario();
  sc.model.arch = Architecture::mlp_routed;
  sc.data.seed = 6;
  return sc;
}

/// A small valid scenario of any architecture: mlp_scenario() with the arch swapped in (GroupNorm
/// with 2 groups of 2; BatchNorm with micro-batches of at least 2 examples), routed_scenario(),
/// linear_scenario(), or causal_lm_scenario().
inline Scenario arch_scenario(Architecture arch) {
  if (arch == Architecture::linear) return linear_scenario();
  if (arch == Architecture::causal_lm) return causal_lm_scenario();
  if (arch == Architecture::mlp_routed) return routed_scenario();
  Scenario sc = mlp_scenario();
  sc.model.arch = arch;
  if (arch == Architecture::mlp_group_norm) sc.model.groups = 2;
  if (arch == Architecture::mlp_batch_norm) sc.data.windows = {{{2, 2, 2}}, {{2, 2, 2}}, {{3, 2}}};
  return sc;
}

/// Every architecture, in declaration order.
inline std::vector<Architecture> all_architecture_values() {
  return {Architecture::linear,         Architecture::mlp_tanh,       Architecture::mlp_gelu,
          Architecture::mlp_layer_norm, Architecture::mlp_group_norm, Architecture::mlp_rms_norm,
          Architecture::mlp_batch_norm, Architecture::mlp_routed,     Architecture::causal_lm};
}

}  // namespace gacc::testing
