#pragma once
/// RapidCheck generators for scenarios, all in one place. They reach the corners that break
/// accumulation — K = 1, micro-batches of one example, uneven splits, a partial last window,
/// momentum with and without nesterov and dampening, weight decay, mean and sum losses — and
/// shrink towards small, readable counterexamples: K = 1, one step, size-1 micro-batches, one
/// input, no momentum, seeds 0.

#include <cstdint>
#include <ostream>
#include <vector>

#include <rapidcheck.h>

#include "core/scenario.h"

namespace gacc::properties {

/// Model: linear or tanh MLP, small dimensions. (Choices use sizedElement: gen::element does not
/// shrink.)
inline rc::Gen<ModelSpec> model_specs() {
  return rc::gen::apply(
      [](Architecture arch, int input, int hidden, int output, uint32_t seed) {
        ModelSpec m;
        m.arch = arch;
        m.input_dim = input;
        m.hidden_dim = arch == Architecture::linear ? 0 : hidden;
        m.output_dim = output;
        m.init_seed = seed;
        return m;
      },
      rc::gen::sizedElement(Architecture::linear, Architecture::mlp_tanh), rc::gen::inRange(1, 5),
      rc::gen::inRange(1, 7), rc::gen::inRange(1, 4), rc::gen::arbitrary<uint32_t>());
}

/// The data for K micro-batches and S steps: a base split of the global batch into K micro-batches
/// (uneven sizes; the first K of `base`), rotated by `rotations[s]` in window s, and, if `partial`,
/// a last window that keeps fewer micro-batches (or, for K = 1, fewer examples).
inline DataSpec make_data(int k, int steps, const std::vector<int>& base, const std::vector<int>& rotations,
                          bool partial, int kept, uint32_t seed) {
  DataSpec d;
  d.seed = seed;
  d.global_batch = 0;
  for (int i = 0; i < k; ++i) d.global_batch += base[i];
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> sizes;
    for (int i = 0; i < k; ++i) sizes.push_back(base[(i + rotations[s]) % k]);
    if (s + 1 == steps && partial) {
      if (k > 1) {
        sizes.resize(static_cast<size_t>(1 + kept % (k - 1)));  // 1..K-1 micro-batches
      } else if (sizes[0] > 1) {
        sizes[0] = 1 + kept % (sizes[0] - 1);  // one smaller micro-batch
      }
    }
    d.windows.push_back({sizes});
  }
  return d;
}

/// SGD hyperparameters, each exactly representable in fp32 (so fp32 recipes and the oracle see
/// the same numbers).
inline rc::Gen<OptimizerSpec> sgd_specs() {
  return rc::gen::apply(
      [](int lr_steps, double momentum, double dampening, bool nesterov, double weight_decay) {
        OptimizerSpec o;
        o.kind = OptimizerKind::sgd;
        o.lr = lr_steps / 256.0;
        o.momentum = momentum;
        o.dampening = dampening;
        o.nesterov = nesterov && momentum > 0.0 && dampening == 0.0;
        o.weight_decay = weight_decay;
        return o;
      },
      rc::gen::inRange(1, 33), rc::gen::sizedElement(0.0, 0.5, 0.875, 0.9375),
      rc::gen::sizedElement(0.0, 0.25, 0.5), rc::gen::arbitrary<bool>(),
      rc::gen::sizedElement(0.0, 1.0 / 128, 1.0 / 16));
}

constexpr int kMaxGeneratedK = 4;
constexpr int kMaxGeneratedSteps = 3;

/// Whole scenarios: one rank, K in 1..4, S in 1..3. Every part is an independent argument of one
/// `apply`, so each shrinks on its own without redrawing the others.
inline rc::Gen<Scenario> scenarios() {
  return rc::gen::apply(
      [](int k, int steps, ModelSpec model, std::vector<int> base, std::vector<int> rotations,
         bool partial, int kept, uint32_t data_seed, Reduction reduction, OptimizerSpec optimizer) {
        Scenario sc;
        sc.model = model;
        sc.data = make_data(k, steps, base, rotations, partial, kept, data_seed);
        sc.loss.reduction = reduction;
        sc.optimizer = optimizer;
        sc.world_size = 1;
        sc.accumulation_steps = k;
        sc.steps = steps;
        return sc;
      },
      rc::gen::inRange(1, kMaxGeneratedK + 1), rc::gen::inRange(1, kMaxGeneratedSteps + 1),
      model_specs(),
      rc::gen::container<std::vector<int>>(kMaxGeneratedK, rc::gen::inRange(1, 5)),
      rc::gen::container<std::vector<int>>(kMaxGeneratedSteps, rc::gen::inRange(0, kMaxGeneratedK)),
      rc::gen::map(rc::gen::inRange(0, 4), [](int i) { return i == 3; }), rc::gen::inRange(0, 8),
      rc::gen::arbitrary<uint32_t>(), rc::gen::sizedElement(Reduction::mean, Reduction::sum), sgd_specs());
}

}  // namespace gacc::properties

namespace gacc {

/// RapidCheck prints a scenario as its JSON (a reproduce line for `gacc repro`).
inline void showValue(const Scenario& scenario, std::ostream& os) { os << to_json_text(scenario); }

}  // namespace gacc

namespace rc {

template <>
struct Arbitrary<gacc::Scenario> {
  static Gen<gacc::Scenario> arbitrary() { return gacc::properties::scenarios(); }
};

}  // namespace rc
