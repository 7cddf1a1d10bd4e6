#pragma once
/// The correct gradient-accumulation loop on LibTorch, written as a stack would write it, with each
/// decision a stack makes in a hook of its own: pitfall recipes (implementations/pitfalls/) are this
/// loop with one hook done wrong, the way a real bug did it.

#include <torch/torch.h>

#include <any>
#include <functional>
#include <memory>
#include <string>

#include "core/recipe.h"
#include "implementations/torch/collectives.h"
#include "implementations/torch/grad_scaler.h"
#include "implementations/torch/schedules.h"
#include "implementations/torch/zoo_model.h"

namespace gacc::torch_recipes {

/// Everything the loop's hooks may touch while the scenario runs.
struct LoopState {
  const Scenario& scenario;
  ZooModel& model;
  torch::optim::Optimizer& optimizer;
  Schedule* schedule;  ///< null for a constant rate
  Trace& trace;
  int step = 0;                 ///< window index
  int micro_count = 0;          ///< micro-batches in this window (on every rank)
  int64_t window_elements = 0;  ///< loss elements (MSE elements, counted tokens) in the window, all ranks
  torch::Tensor window_loss;    ///< sum of the micro-batch losses handed to backward
  /// Tensors a loop keeps across micro-batches and windows (its own gradient buffers), one per
  /// parameter when used.
  std::vector<torch::Tensor> buffers;
  /// Dynamic loss scaling under fp16; null otherwise.
  GradScaler* scaler = nullptr;
  /// Data parallel: this rank's process group; null on one rank.
  Collectives* collectives = nullptr;
  int rank = 0;
  /// Whatever else a loop keeps across its hooks (an accumulator of its own, say).
  std::any loop_data;
};

/// Accumulate gradients over the window's micro-batches, each micro-batch's summed loss divided by
/// the whole window's loss elements (mean and token-mean losses: right for uneven sizes, partial
/// windows and micro-batches without a counted token), then clipping, one optimizer step, one
/// scheduler step and one zero_grad per window. Under bf16 and fp16 the forward pass and the loss
/// run under CPU autocast with fp32 parameters and gradients; fp16 adds dynamic loss scaling
/// (GradScaler): every backward scaled, one unscale before clipping, the step skipped on a
/// non-finite gradient, one update per window.
///
/// The same loop runs as one rank of a data-parallel group (run_rank): it takes its own rank's
/// micro-batches, learns the window's loss elements from a sum over the ranks, and sums the
/// accumulated gradients over the ranks once per window, before unscaling and clipping.
class TorchTrainingLoop : public Recipe {
 public:
  std::string name() const override { return "torch-accumulate"; }
  RecipeKind kind() const override { return RecipeKind::correct; }
  std::string summary() const override;
  /// One rank (world_size 1; data-parallel recipes run through implementations/distributed), and
  /// what the loop accepts.
  bool supports(const Scenario& scenario) const override;
  /// The scenarios this loop makes sense for, whatever the world size. Correct: all; a pitfall
  /// narrows it to where its bug exists (an fp16 bug to fp16, say).
  virtual bool accepts(const Scenario& scenario) const;
  /// run_rank on one rank without a process group; throws std::invalid_argument for world_size > 1.
  Trace run(const Scenario& scenario) const final;
  /// The loop as rank collectives->rank() of collectives->world() (null: the only rank). The trace
  /// is this rank's; its counters include the group's collectives. `progress`, when given, is
  /// called after each micro-batch with the step and micro-batch index.
  Trace run_rank(const Scenario& scenario, Collectives* collectives,
                 const std::function<void(int, int)>& progress = {}) const;

 protected:
  /// The window's loss elements, from this rank's `local` count. Correct: summed over the ranks (a
  /// metadata collective); on one rank, `local`.
  virtual int64_t window_loss_elements(LoopState& state, int64_t local) const;
  /// Before micro-batch `micro`'s forward pass. Correct: nothing (gradients were zeroed after the
  /// previous step).
  virtual void begin_micro_batch(LoopState& state, int micro) const;
  /// The loss handed to backward for micro-batch `micro`, from its loss summed over its own
  /// `micro_elements` loss elements. Correct: divided by the window's loss elements (for sum
  /// reduction: as it is).
  virtual torch::Tensor micro_batch_loss(LoopState& state, int micro, const torch::Tensor& summed,
                                         int64_t micro_elements) const;
  /// Backward for micro-batch `micro` on the `loss` micro_batch_loss gave; returns what the loop
  /// records as that micro-batch's share of the window's loss. Correct: backward on the scaled
  /// loss under fp16 (on the loss otherwise); records the loss itself, unscaled.
  virtual torch::Tensor backward(LoopState& state, int micro, const torch::Tensor& loss) const;
  /// After micro-batch `micro`'s backward. Correct: nothing (gradients accumulate in .grad).
  virtual void after_backward(LoopState& state, int micro) const;
  /// After the window's last backward. Correct: synchronize (data parallel), unscale (fp16), clip,
  /// one optimizer step, one scheduler step, then zero_grad.
  virtual void end_window(LoopState& state) const;
  /// Data parallel: the window's accumulated gradients summed over the ranks in one collective
  /// (every gradient flattened into one buffer, as a single DDP bucket). Nothing on one rank.
  virtual void synchronize_gradients(LoopState& state) const;
  /// The window's loss as the loop reports it. Correct: the sum of what the micro-batches handed to
  /// backward, summed over the ranks (a metadata collective) when data parallel.
  virtual double reported_loss(LoopState& state) const;

  /// Under fp16, GradScaler's unscale_ of the accumulated gradients (once per step, before anything
  /// reads or clips them); nothing otherwise.
  void unscale_gradients(LoopState& state) const;
  /// Clips as the scenario says and returns the pre-clip global norm.
  double clip_gradients(LoopState& state) const;
  /// optimizer.step() — under fp16 scaler.step() and scaler.update(), which skip the step on a
  /// non-finite gradient — recording what the optimizer was handed (after clipping;
  /// `pre_clip_norm`), the loss scale in force, and what it did. A parameter the window never
  /// reached is handed a zero gradient, so that every parameter is stepped, as in the oracle.
  void optimizer_step(LoopState& state, double pre_clip_norm) const;
  /// scheduler.step(), counted.
  void schedule_step(LoopState& state) const;
  /// optimizer.zero_grad(), counted.
  void zero_grad(LoopState& state) const;
  /// Gives every parameter without a gradient (one no micro-batch reached so far: an mlp_routed
  /// expert) a zero gradient, so that code reading .grad() sees a tensor.
  static void materialize_gradients(const std::vector<torch::Tensor>& params);
  /// The parameters, in canonical order.
  static const std::vector<torch::Tensor>& parameters(LoopState& state) {
    return state.model->ordered_parameters();
  }
  /// Sums `parts` over the ranks as one gradient collective (flattened into one bucket, as a single
  /// DDP bucket); returns the sums, shaped as the parts (views into the bucket).
  static std::vector<torch::Tensor> sum_over_ranks(LoopState& state, const std::vector<torch::Tensor>& parts);
  /// The gradients of `tensors` (zero where undefined) replaced by their sums over the ranks, as one
  /// gradient collective.
  static void all_reduce_as_one(LoopState& state, const std::vector<torch::Tensor>& tensors);
};

}  // namespace gacc::torch_recipes
