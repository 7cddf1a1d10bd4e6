#pragma once
// Recipes without LibTorch, for testing the harness itself: a correct accumulation loop that runs
// the oracle's own model code in fp32, and broken variants of it.

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/recipe.h"
#include "fixtures/fixtures.h"
#include "reference/bounded.h"
#include "reference/loss_scale.h"
#include "reference/models.h"
#include "reference/optimizers.h"
#include "reference/number_types.h"

namespace gacc::testing {

/// Accumulates micro-batch gradients in fp32, each micro-batch's summed loss divided by the
/// window's loss elements, then clipping and one optimizer step (with the scheduled rate) in fp32:
/// a correct recipe (with BatchNorm: ghost BatchNorm, as every accumulating recipe). Under bf16 and
/// fp16 autocast the oracle's model code rounds its ops' outputs to that format for real (to
/// infinity beyond fp16's range), each micro-batch's weight gradients too; fp16 adds GradScaler in
/// float: the backward scaled, one unscale, the whole step skipped on a non-finite gradient, the
/// scale updated once per window. `Broken` variants override one decision.
class Fp32Recipe : public Recipe {
 public:
  std::string name() const override { return "fp32-accumulate"; }
  RecipeKind kind() const override { return RecipeKind::correct; }
  std::string summary() const override { return "the oracle's model code in fp32, accumulated"; }
  /// Any world size: the ranks are simulated one after the other, their micro-batches' gradients
  /// summed as an all-reduce would sum them. Not BatchNorm on several ranks: its running statistics
  /// are per replica in a real data-parallel stack.
  bool supports(const Scenario& sc) const override { return sc.world_size == 1 || !is_batch_coupled(sc.model); }

  Trace run(const Scenario& sc) const override {
    const auto layout = fixtures::model_layout(sc.model);
    const auto w = fixtures::initial_weights(sc.model, sc.precision);
    const auto b = fixtures::initial_buffers(sc.model);
    std::vector<float> params(w.begin(), w.end()), buffers(b.begin(), b.end());
    reference::StateOf<float> state;
    const bool scaled = sc.precision == Precision::fp16;
    reference::LossScaleState scaler = reference::initial_loss_scale(sc.loss_scale);
    Trace trace;
    for (int s = 0; s < sc.steps; ++s) {
      std::vector<float> grad(params.size(), 0.0f);
      float loss = 0.0f;
      const int64_t window_elements = fixtures::window_loss_elements(sc, s);
      const double loss_scale = scaled ? scaler.scale : 1.0;
      for (int r = 0; r < sc.world_size; ++r) {
        std::vector<float> rank_grad(params.size(), 0.0f);
        for (int k = 0; k < micro_batch_count(sc, s); ++k) {
          if (r == 0) ++trace.counters.micro_batches;  // the trace is rank 0's
          if (r == 0 && zero_each_micro_batch()) ++trace.counters.zero_grads;
          const auto micro = fixtures::micro_batch(sc, s, r, k);
          reference::EvaluationOptions options;
          options.loss_elements = normalizer(micro.counted_targets(), window_elements);
          options.loss_scale = loss_scale;
          auto lg = reference::loss_and_gradient(sc, params, buffers, micro, options);
          buffers = lg.buffers_after;
          if (zero_each_micro_batch()) std::fill(rank_grad.begin(), rank_grad.end(), 0.0f);
          const reference::LowPrecisionScope autocast(sc.precision == Precision::fp32 ? nullptr : &format_of(sc.precision));
          bool finite = true;
          for (size_t i = 0; i < rank_grad.size(); ++i) {
            if (lg.grad_low[i]) reference::round_low(lg.grad[i]);  // a low-precision product's output
            finite = finite && std::isfinite(lg.grad[i]);
          }
          if (finite || !drop_overflowing_micro_batch()) {
            for (size_t i = 0; i < rank_grad.size(); ++i) rank_grad[i] += lg.grad[i];
          }
          loss += lg.loss;
        }
        for (size_t i = 0; i < grad.size(); ++i) grad[i] += rank_grad[i];  // the all-reduce
      }
      if (sc.world_size > 1) {  // one fp32 all-reduce of the whole gradient per window
        ++trace.counters.all_reduces;
        trace.counters.all_reduce_bytes += static_cast<int64_t>(grad.size() * sizeof(float));
      }
      StepRecord record;
      record.loss = loss;
      record.lr = reference::learning_rate<double>(sc, s);
      record.loss_scale = loss_scale;
      const bool found_inf = std::any_of(grad.begin(), grad.end(), [](float g) { return !std::isfinite(g); });
      if (scaled) {
        const auto inverse = static_cast<float>(1.0 / loss_scale);
        for (auto& g : grad) g *= inverse;
      }
      const float norm = reference::global_norm(layout, grad);
      record.pre_clip_norm = norm;
      if (found_inf) {
        record.skipped = true;  // GradScaler: no optimizer step at all
        record.grad.assign(grad.begin(), grad.end());
      } else {
        reference::clip(sc, norm, grad);
        record.grad.assign(grad.begin(), grad.end());
        reference::optimizer_step(sc, s, params, grad, state);
        ++trace.counters.optimizer_steps;
      }
      if (scaled) scaler = reference::update_loss_scale(sc.loss_scale, scaler, found_inf);
      record.params_after.assign(params.begin(), params.end());
      for (const auto& [name, values] : state) record.optimizer_state[name].assign(values.begin(), values.end());
      record.buffers_after.assign(buffers.begin(), buffers.end());
      trace.steps.push_back(std::move(record));
      if (!zero_each_micro_batch()) ++trace.counters.zero_grads;  // once per window
      if (sc.schedule.kind != ScheduleKind::constant) trace.counters.scheduler_steps += scheduler_steps_per_window();
    }
    return trace;
  }

 protected:
  /// What a micro-batch's mean loss divides by. Correct: the whole window's loss elements.
  virtual int64_t normalizer(int64_t /*micro_elements*/, int64_t window_elements) const { return window_elements; }
  virtual bool zero_each_micro_batch() const { return false; }
  /// Whether a micro-batch whose gradient overflowed is left out of the window. Correct: no (it
  /// makes the window's gradient non-finite, and GradScaler skips the whole step).
  virtual bool drop_overflowing_micro_batch() const { return false; }
  virtual int scheduler_steps_per_window() const { return 1; }
};

/// Broken! Each micro-batch's own mean, never divided by K (forgotten loss scaling).
class Fp32ForgottenScaling final : public Fp32Recipe {
 public:
  std::string name() const override { return "fp32-forgotten-scaling"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }

 protected:
  int64_t normalizer(int64_t micro_elements, int64_t) const override { return micro_elements; }
};

/// Broken! Gradients zeroed before each micro-batch (only the last survives).
class Fp32ZeroEachMicroBatch final : public Fp32Recipe {
 public:
  std::string name() const override { return "fp32-zero-each-micro-batch"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }

 protected:
  bool zero_each_micro_batch() const override { return true; }
};

/// Broken! Counts a scheduler step per micro-batch (the rates themselves stay right).
class Fp32MiscountedScheduler final : public Fp32Recipe {
 public:
  std::string name() const override { return "fp32-miscounted-scheduler"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }

 protected:
  int scheduler_steps_per_window() const override { return 2; }
};

/// Broken! Drops a micro-batch whose fp16 gradient overflowed and steps on the rest of the window.
class Fp32DropOverflowingMicroBatch final : public Fp32Recipe {
 public:
  std::string name() const override { return "fp32-drop-overflowing-micro-batch"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }

 protected:
  bool drop_overflowing_micro_batch() const override { return true; }
};

/// A pitfall no property can see: it is correct. The harness must report it as escaping.
class Fp32DisguisedAsPitfall final : public Fp32Recipe {
 public:
  std::string name() const override { return "fp32-not-really-broken"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }
};

/// A recipe that throws: its failure is a failing verdict with the message, not a crash.
class ThrowingRecipe final : public Fp32Recipe {
 public:
  std::string name() const override { return "throws"; }
  Trace run(const Scenario&) const override { throw std::runtime_error("device on fire"); }
};

/// Supports no scenario: every row is skipped.
class UnsupportedRecipe final : public Fp32Recipe {
 public:
  std::string name() const override { return "unsupported"; }
  bool supports(const Scenario&) const override { return false; }
};

/// A pitfall that supports no scenario: never judged, so neither caught nor escaping.
class UnjudgedPitfall final : public Fp32Recipe {
 public:
  std::string name() const override { return "never-applies"; }
  RecipeKind kind() const override { return RecipeKind::pitfall; }
  bool supports(const Scenario&) const override { return false; }
};

}  // namespace gacc::testing
