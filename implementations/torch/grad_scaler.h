#pragma once
/// `GradScaler`: dynamic loss scaling for LibTorch, which has no C++ GradScaler. It follows
/// torch.amp.GradScaler's documented semantics and calls the same ATen kernels
/// (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), so a C++ training loop gets
/// the behaviour of the Python one:
///
///   scaler.scale(loss).backward();            // every micro-batch
///   scaler.unscale_(optimizer);               // once per step, only to clip or inspect gradients
///   clip_grad_norm_(...);
///   scaler.step(optimizer);                   // skips optimizer.step() on a non-finite gradient
///   scaler.update();                          // once per step: back off, or count towards growth
///
/// With gradient accumulation, unscale_, step and update belong to the iterations that step
/// (PyTorch PR 36601); the scaler refuses the misuses PyTorch refuses (a second unscale_ or step
/// before update, update with nothing recorded, fp16 gradients) with std::logic_error.

#include <torch/torch.h>

#include <cstdint>
#include <unordered_map>

namespace gacc::torch_recipes {

class GradScaler {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth_factor = 2.0;   ///< > 1
    double backoff_factor = 0.5;  ///< in (0, 1)
    int64_t growth_interval = 2000;
  };

  /// Throws std::invalid_argument on options GradScaler refuses (a non-positive or non-finite
  /// scale, growth_factor <= 1, backoff_factor outside (0, 1), growth_interval < 1).
  explicit GradScaler(Options options);

  /// `loss` times the current scale (an fp32 scalar): call backward on this.
  torch::Tensor scale(const torch::Tensor& loss) const;

  /// Multiplies the optimizer's gradients in place by the fp32 reciprocal of the scale (computed in
  /// double, as PyTorch does) and records whether any was non-finite. Once per step, before step().
  void unscale_(torch::optim::Optimizer& optimizer);

  /// unscale_ if it was not called, then optimizer.step() unless a gradient was non-finite.
  /// Returns whether the optimizer stepped. Once per update().
  bool step(torch::optim::Optimizer& optimizer);

  /// After the step: on a non-finite gradient the scale is multiplied by backoff_factor and the
  /// growth count restarts; otherwise the count grows, and at growth_interval the scale is
  /// multiplied by growth_factor (kept only if finite) and the count restarts.
  void update();

  /// The scale in force (for the next backward).
  double get_scale() const;
  /// Consecutive steps without a non-finite gradient since the scale last changed or backed off.
  int64_t growth_tracker() const;

 private:
  enum class Stage { ready, unscaled, stepped };
  struct PerOptimizer {
    Stage stage = Stage::ready;
    torch::Tensor found_inf;  ///< fp32 scalar, > 0 when a gradient was non-finite; undefined before unscale_
  };

  Options options_;
  torch::Tensor scale_;           ///< fp32 scalar
  torch::Tensor growth_tracker_;  ///< int32 scalar
  std::unordered_map<const torch::optim::Optimizer*, PerOptimizer> per_optimizer_;
};

}  // namespace gacc::torch_recipes
