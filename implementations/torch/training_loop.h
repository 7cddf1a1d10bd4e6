#pragma once
/// The correct gradient-accumulation loop on LibTorch, written as a stack would write it, with each
/// decision a stack makes in a hook of its own: pitfall recipes (implementations/pitfalls/) are this
/// loop with one hook done wrong, the way a real bug did it.

#include <memory>
#include <string>

#include <torch/torch.h>

#include "core/recipe.h"
#include "implementations/torch/zoo_model.h"

namespace gacc::torch_recipes {

/// Everything the loop's hooks may touch while a window runs.
struct LoopState {
  const Scenario& scenario;
  ZooModel& model;
  torch::optim::Optimizer& optimizer;
  Trace& trace;
  int step = 0;           ///< window index
  int micro_count = 0;    ///< micro-batches in this window
  int64_t examples = 0;   ///< examples in this window
  torch::Tensor window_loss;  ///< sum of the micro-batch losses handed to backward
};

/// Accumulate gradients over the window's micro-batches, each loss weighted by its share of the
/// window's examples (m_k / N for a mean loss: 1/K when sizes are equal, and right when they are
/// uneven or the last window is partial), then one optimizer step and one zero_grad.
class TorchTrainingLoop : public Recipe {
 public:
  std::string name() const override { return "torch-accumulate"; }
  RecipeKind kind() const override { return RecipeKind::correct; }
  std::string summary() const override;
  bool supports(const Scenario& scenario) const override;
  Trace run(const Scenario& scenario) const final;

 protected:
  /// Before micro-batch `micro`'s forward pass. Correct: nothing (gradients were zeroed after the
  /// previous step).
  virtual void begin_micro_batch(LoopState& state, int micro) const;
  /// The loss handed to backward for micro-batch `micro`, from its loss reduced over the
  /// micro-batch alone. Correct: weighted by the micro-batch's share of the window.
  virtual torch::Tensor micro_batch_loss(LoopState& state, int micro, const torch::Tensor& loss) const;
  /// After the window's last backward. Correct: one optimizer step, then zero_grad.
  virtual void end_window(LoopState& state) const;

  /// optimizer.step(), recording what the optimizer was handed and what it did.
  void optimizer_step(LoopState& state) const;
  /// optimizer.zero_grad(), counted.
  void zero_grad(LoopState& state) const;
};

}  // namespace gacc::torch_recipes
