#include "implementations/torch/grad_scaler.h"

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gacc::torch_recipes {

GradScaler::GradScaler(Options options) : options_(options) {
  if (!(std::isfinite(options.init_scale) && options.init_scale > 0.0)) {
    throw std::invalid_argument("GradScaler: init_scale must be positive and finite, not " +
                                std::to_string(options.init_scale));
  }
  if (!(options.growth_factor > 1.0) || !std::isfinite(options.growth_factor)) {
    throw std::invalid_argument("GradScaler: growth_factor must be > 1, not " +
                                std::to_string(options.growth_factor));
  }
  if (!(options.backoff_factor > 0.0 && options.backoff_factor < 1.0)) {
    throw std::invalid_argument("GradScaler: backoff_factor must be in (0, 1), not " +
                                std::to_string(options.backoff_factor));
  }
  if (options.growth_interval < 1) {
    throw std::invalid_argument("GradScaler: growth_interval must be >= 1, not " +
                                std::to_string(options.growth_interval));
  }
  scale_ = torch::full({}, options.init_scale, torch::kFloat32);
  growth_tracker_ = torch::zeros({}, torch::kInt32);
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const { return loss * scale_.to(loss.device()); }

void GradScaler::unscale_(torch::optim::Optimizer& optimizer) {
  auto& state = per_optimizer_[&optimizer];
  if (state.stage == Stage::unscaled) {
    throw std::logic_error(
        "GradScaler: unscale_() has already been called on this optimizer since the last update()");
  }
  if (state.stage == Stage::stepped)
    throw std::logic_error("GradScaler: unscale_() is being called after step()");
  // PyTorch takes the reciprocal in double and rounds it to fp32.
  const torch::Tensor inverse = scale_.to(torch::kFloat64).reciprocal().to(torch::kFloat32);
  state.found_inf = torch::zeros({}, torch::kFloat32);
  // The ATen kernel wants one device and dtype per call.
  std::map<std::pair<std::string, torch::ScalarType>, std::vector<torch::Tensor>> groups;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& param : group.params()) {
      const auto& grad = param.grad();
      if (!grad.defined()) continue;
      if (grad.scalar_type() == torch::kFloat16) {
        throw std::logic_error(
            "GradScaler: attempting to unscale fp16 gradients (keep the parameters in fp32)");
      }
      groups[{grad.device().str(), grad.scalar_type()}].push_back(grad);
    }
  }
  for (auto& [key, grads] : groups) {
    torch::Tensor found =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(grads.front().device()));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inverse.to(grads.front().device()));
    state.found_inf = state.found_inf + found.to(torch::kCPU);
  }
  state.stage = Stage::unscaled;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  auto& state = per_optimizer_[&optimizer];
  if (state.stage == Stage::stepped)
    throw std::logic_error("GradScaler: step() has already been called since the last update()");
  if (state.stage == Stage::ready) unscale_(optimizer);
  const bool stepped = state.found_inf.item<float>() == 0.0f;
  if (stepped) optimizer.step();
  state.stage = Stage::stepped;
  return stepped;
}

void GradScaler::update() {
  torch::Tensor found_inf;
  for (const auto& [optimizer, state] : per_optimizer_) {
    if (!state.found_inf.defined()) continue;
    found_inf = found_inf.defined() ? found_inf + state.found_inf : state.found_inf.clone();
  }
  if (!found_inf.defined())
    throw std::logic_error("GradScaler: no inf checks were recorded prior to update()");
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
  per_optimizer_.clear();
}

double GradScaler::get_scale() const { return scale_.item<double>(); }

int64_t GradScaler::growth_tracker() const { return growth_tracker_.item<int64_t>(); }

}  // namespace gacc::torch_recipes
