#include "implementations/torch/tensor_conversions.h"

namespace gacc::torch_recipes {

torch::Tensor tensor_from(const double* values, const std::vector<int64_t>& shape, torch::Dtype dtype) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  return torch::from_blob(const_cast<double*>(values), {numel}, torch::kFloat64)
      .to(dtype)
      .reshape(shape)
      .clone();
}

BatchTensors to_tensors(const fixtures::Batch& batch, torch::Dtype dtype) {
  BatchTensors out;
  out.loss_elements = batch.counted_targets();
  if (!batch.lengths.empty() || !batch.tokens.empty()) {
    const auto options = torch::TensorOptions().dtype(torch::kInt64);
    out.inputs = torch::tensor(batch.tokens, options).reshape({batch.size, batch.max_length});
    out.targets = torch::tensor(batch.token_targets, options).reshape({batch.size, batch.max_length});
    return out;
  }
  out.inputs = tensor_from(batch.inputs.data(), {batch.size, batch.input_dim}, dtype);
  out.targets = tensor_from(batch.targets.data(), {batch.size, batch.output_dim}, dtype);
  return out;
}

std::vector<double> flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<double> out;
  for (const auto& t : tensors) {
    const auto flat = t.detach().to(torch::kFloat64).contiguous().reshape({-1});
    const double* data = flat.data_ptr<double>();
    out.insert(out.end(), data, data + flat.numel());
  }
  return out;
}

}  // namespace gacc::torch_recipes
