#pragma once
// Hand-written scenarios shared by tests.

#include "core/scenario.h"

namespace gacc::testing {

/// A tanh MLP, K = 3 uneven micro-batches, a partial last window, SGD with momentum and decay.
inline Scenario mlp_scenario() {
  Scenario sc;
  sc.model = {Architecture::mlp_tanh, 3, 4, 2, 7};
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
  sc.model = {Architecture::linear, 2, 0, 1, 3};
  sc.data.seed = 5;
  sc.data.global_batch = 4;
  sc.data.windows = {{{2, 2}}};
  sc.optimizer.lr = 0.25;
  sc.accumulation_steps = 2;
  sc.steps = 1;
  return sc;
}

}  // namespace gacc::testing
