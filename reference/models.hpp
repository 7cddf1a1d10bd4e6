#pragma once
// Template bodies of reference/models.h; instantiated in reference/models.cpp.

#include <cmath>
#include <stdexcept>
#include <string>

#include "reference/bounded.h"
#include "reference/models.h"
#include "reference/number_types.h"

namespace gacc::reference {
namespace detail {

/// Parameters of a dense layer, as views into the flat parameter vector.
template <class T>
struct DenseLayer {
  const T* weight;  ///< out x in, row-major
  const T* bias;    ///< out
  int64_t in;
  int64_t out;
};

/// z = W x + b, the bias summed with the products (an implementation may add it in any order).
template <class T>
void dense_forward(const DenseLayer<T>& layer, const T* x, T* z, std::vector<T>& lhs,
                   std::vector<T>& rhs) {
  const auto n = static_cast<size_t>(layer.in);
  lhs.resize(n + 1);
  rhs.resize(n + 1);
  for (size_t k = 0; k < n; ++k) rhs[k] = x[k];
  rhs[n] = T(1);
  for (int64_t j = 0; j < layer.out; ++j) {
    for (size_t k = 0; k < n; ++k) lhs[k] = layer.weight[j * layer.in + static_cast<int64_t>(k)];
    lhs[n] = layer.bias[j];
    z[j] = dot_of(lhs.data(), rhs.data(), n + 1);
  }
}

/// The structure of a scenario's model: its dense layers and whether a tanh follows the first.
template <class T>
struct Network {
  std::vector<DenseLayer<T>> layers;
};

template <class T>
Network<T> network_of(const Scenario& scenario, const std::vector<T>& params) {
  const auto& m = scenario.model;
  const auto layout = fixtures::model_layout(m);
  if (static_cast<int64_t>(params.size()) != layout.size) {
    throw std::invalid_argument("oracle: expected " + std::to_string(layout.size) +
                                " parameters, got " + std::to_string(params.size()));
  }
  Network<T> net;
  for (size_t p = 0; p + 1 < layout.parameters.size(); p += 2) {
    const auto& w = layout.parameters[p];
    net.layers.push_back({params.data() + w.offset, params.data() + layout.parameters[p + 1].offset,
                          w.shape[1], w.shape[0]});
  }
  return net;
}

}  // namespace detail

template <class T>
std::vector<T> forward(const Scenario& scenario, const std::vector<T>& params,
                       const fixtures::Batch& batch) {
  using std::tanh;
  const auto net = detail::network_of(scenario, params);
  const int64_t out_dim = scenario.model.output_dim;
  std::vector<T> outputs(static_cast<size_t>(batch.size * out_dim));
  std::vector<T> x, h, lhs, rhs;
  for (int64_t i = 0; i < batch.size; ++i) {
    x.assign(batch.inputs.begin() + i * batch.input_dim, batch.inputs.begin() + (i + 1) * batch.input_dim);
    for (size_t l = 0; l < net.layers.size(); ++l) {
      h.resize(static_cast<size_t>(net.layers[l].out));
      detail::dense_forward(net.layers[l], x.data(), h.data(), lhs, rhs);
      if (l + 1 < net.layers.size()) {
        for (auto& v : h) v = tanh(v);
      }
      x.swap(h);
    }
    for (int64_t o = 0; o < out_dim; ++o) outputs[static_cast<size_t>(i * out_dim + o)] = x[o];
  }
  return outputs;
}

template <class T>
LossAndGradient<T> loss_and_gradient(const Scenario& scenario, const std::vector<T>& params,
                                     const fixtures::Batch& batch) {
  using std::tanh;
  const auto net = detail::network_of(scenario, params);
  const auto& m = scenario.model;
  const int64_t n = batch.size;
  const auto layout = fixtures::model_layout(m);
  const bool hidden = net.layers.size() == 2;

  // Reduction weight: mean over every element of the large batch, or a plain sum.
  const T elements = T(static_cast<double>(n * m.output_dim));
  const T seed_scale = scenario.loss.reduction == Reduction::mean ? T(2) / elements : T(2);

  // contributions[p][i]: example i's term of gradient element p. The batch sum is taken per
  // element with sum_of, so a Bounded run bounds it for any summation order.
  std::vector<std::vector<T>> contributions(static_cast<size_t>(layout.size),
                                            std::vector<T>(static_cast<size_t>(n)));
  std::vector<T> squared_residuals(static_cast<size_t>(n * m.output_dim));
  std::vector<T> x(static_cast<size_t>(m.input_dim)), a1, z2(static_cast<size_t>(m.output_dim));
  std::vector<T> delta(static_cast<size_t>(m.output_dim)), column, lhs, rhs;

  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < m.input_dim; ++k) x[k] = T(batch.inputs[i * m.input_dim + k]);
    // Forward.
    const T* last_input = x.data();
    if (hidden) {
      a1.resize(static_cast<size_t>(net.layers[0].out));
      detail::dense_forward(net.layers[0], x.data(), a1.data(), lhs, rhs);
      for (auto& v : a1) v = tanh(v);
      last_input = a1.data();
    }
    const auto& top = net.layers.back();
    detail::dense_forward(top, last_input, z2.data(), lhs, rhs);
    // Loss terms and the loss gradient with respect to the outputs.
    for (int64_t o = 0; o < m.output_dim; ++o) {
      const T residual = z2[o] - T(batch.targets[i * m.output_dim + o]);
      squared_residuals[static_cast<size_t>(i * m.output_dim + o)] = residual * residual;
      delta[o] = seed_scale * residual;
      rounding_allowance(delta[o], kScaleRoundings);
    }
    // Backward through the top layer: its weight and bias terms, then into its input.
    const size_t top_param = hidden ? 2 : 0;
    const int64_t w_off = layout.parameters[top_param].offset;
    const int64_t b_off = layout.parameters[top_param + 1].offset;
    for (int64_t o = 0; o < top.out; ++o) {
      for (int64_t k = 0; k < top.in; ++k) {
        contributions[w_off + o * top.in + k][i] = delta[o] * last_input[k];
      }
      contributions[b_off + o][i] = delta[o];
    }
    if (!hidden) continue;
    const auto& first = net.layers[0];
    const int64_t w1_off = layout.parameters[0].offset;
    const int64_t b1_off = layout.parameters[1].offset;
    column.resize(static_cast<size_t>(top.out));
    for (int64_t j = 0; j < first.out; ++j) {
      for (int64_t o = 0; o < top.out; ++o) column[o] = top.weight[o * top.in + j];
      const T upstream = dot_of(column.data(), delta.data(), static_cast<size_t>(top.out));
      const T dz = upstream * (T(1) - a1[j] * a1[j]);  // tanh'(z) = 1 - tanh(z)^2
      for (int64_t k = 0; k < first.in; ++k) contributions[w1_off + j * first.in + k][i] = dz * x[k];
      contributions[b1_off + j][i] = dz;
    }
  }

  LossAndGradient<T> result;
  T total = sum_of(squared_residuals.data(), squared_residuals.size());
  result.loss = scenario.loss.reduction == Reduction::mean ? total / elements : total;
  rounding_allowance(result.loss, kScaleRoundings);
  result.grad.reserve(static_cast<size_t>(layout.size));
  for (const auto& terms : contributions) result.grad.push_back(sum_of(terms.data(), terms.size()));
  return result;
}

}  // namespace gacc::reference
