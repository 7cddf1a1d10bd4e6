#include "bench/oracle_bench.h"

#include <cstdio>

#include <torch/torch.h>

#include "bench/timing.h"
#include "fixtures/fixtures.h"
#include "implementations/torch/zoo_model.h"
#include "reference/models.h"
#include "reference/number_types.h"
#include "reference/optimizers.h"
#include "reference/oracle.h"

namespace gacc::bench {
namespace {

constexpr int kBatch = 16;

Scenario language_model_step() {
  Scenario sc;
  sc.model.arch = Architecture::causal_lm;
  sc.model.vocab_size = 32;
  sc.model.d_model = 16;
  sc.model.max_seq_len = 12;
  sc.model.init_seed = 1;
  sc.loss = {LossKind::cross_entropy, Reduction::token_mean};
  sc.data.seed = 2;
  sc.data.global_batch = kBatch;
  sc.data.windows = {{{kBatch}}};
  for (int i = 0; i < kBatch; ++i) sc.data.sequence_lengths.push_back(1 + (7 * i + 3) % 12);
  sc.data.ignored_fraction = 0.25;
  sc.optimizer.kind = OptimizerKind::adam;
  sc.optimizer.lr = 1e-3;
  sc.accumulation_steps = 1;
  sc.steps = 1;
  validate(sc);
  return sc;
}

/// One large-batch step of the oracle's own code in T: loss, gradient, Adam.
template <class T>
double oracle_step_seconds(const Scenario& sc, const fixtures::Batch& batch) {
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  return fastest_seconds([&] {
    std::vector<T> params(w.begin(), w.end());
    reference::StateOf<T> state;
    const auto evaluation = reference::loss_and_gradient(sc, params, std::vector<T>{}, batch);
    reference::optimizer_step(sc, 0, params, evaluation.grad, state);
  });
}

}  // namespace

nlohmann::json run_oracle_bench(std::ostream& out) {
  const Scenario sc = language_model_step();
  const auto batch = fixtures::window_batch(sc, 0);
  const auto layout = fixtures::model_layout(sc.model);

  const double high = oracle_step_seconds<reference::HighPrecision>(sc, batch);
  const double fast = oracle_step_seconds<double>(sc, batch);
  const double whole = fastest_seconds([&] { reference::Oracle oracle(sc); }, 3, 1.0);

  torch::set_num_threads(1);
  const auto w = fixtures::initial_weights(sc.model, sc.precision);
  const auto tensors = torch_recipes::to_tensors(batch, torch::kFloat64);
  torch_recipes::ZooModel model(sc.model, torch::kFloat64, w);
  auto optimizer = torch_recipes::make_optimizer(sc, model->ordered_parameters());
  const double libtorch = fastest_seconds([&] {
    optimizer->zero_grad();
    torch_recipes::batch_loss(sc, model->forward(tensors.inputs), tensors.targets).backward();
    optimizer->step();
  });

  nlohmann::json figures = {
      {"model", "causal_lm d_model 16, vocabulary 32, sequences 1..12 tokens, batch 16, Adam"},
      {"parameters", layout.size},
      {"tokens", batch.counted_targets()},
      {"cpp_bin_float_50_step_seconds", high},
      {"double_step_seconds", fast},
      {"oracle_seconds", whole},
      {"libtorch_float64_step_seconds", libtorch},
      {"cpp_bin_float_50_over_double", high / fast},
      {"cpp_bin_float_50_over_libtorch_float64", high / libtorch},
      {"target_seconds", 0.25}};
  char line[160];
  out << "oracle on the tiny causal LM (" << layout.size << " parameters, batch " << kBatch << ", "
      << batch.counted_targets() << " counted tokens), one Adam step, fastest of several runs:\n";
  std::snprintf(line, sizeof line, "  cpp_bin_float_50 (the truth)     %9.2f ms   %6.2f of the 250 ms target\n",
                high * 1e3, high / 0.25);
  out << line;
  std::snprintf(line, sizeof line, "  double                           %9.2f ms   cpp_bin_float_50 costs %.0fx\n",
                fast * 1e3, high / fast);
  out << line;
  std::snprintf(line, sizeof line, "  LibTorch float64                 %9.2f ms   cpp_bin_float_50 costs %.0fx\n",
                libtorch * 1e3, high / libtorch);
  out << line;
  std::snprintf(line, sizeof line, "  whole Oracle (truth + bounds)    %9.2f ms\n", whole * 1e3);
  out << line;
  return figures;
}

}  // namespace gacc::bench
