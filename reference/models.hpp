#pragma once
// Template bodies of reference/models.h; instantiated in reference/models.cpp.
//
// Every model is a chain of layers over row-major matrices (rows: examples, or the tokens of one
// sequence). Each layer has a forward that keeps what its backward needs, and a backward that adds
// its parameter gradients to order-free sums (see Note [tolerance], reference/bounded.h) and
// returns the gradient of its input. Where ATen's formula rounds differently from the textbook one,
// the layer computes ATen's (the same number in exact arithmetic).

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "reference/bounded.h"
#include "reference/models.h"
#include "reference/number_types.h"

namespace gacc::reference {
namespace detail {

template <class T>
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<T> data;
  /// Stored in the autocast format (an output of a low-precision op); see round_low.
  bool low = false;

  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), data(static_cast<size_t>(r * c), T(0)) {}
  T& operator()(int64_t r, int64_t c) { return data[static_cast<size_t>(r * cols + c)]; }
  const T& operator()(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
  const T* row(int64_t r) const { return data.data() + r * cols; }
};

/// The matrix as a low-precision op leaves it: every element stored in the autocast format. Outside
/// autocast (low_precision() null) nothing changes.
template <class T>
Matrix<T> stored_low(Matrix<T> m) {
  if (!low_precision()) return m;
  for (auto& v : m.data) round_low(v);
  m.low = true;
  return m;
}

/// The operand of a low-precision matrix product: cast into the autocast format unless it is there.
template <class T>
Matrix<T> cast_low(const Matrix<T>& m) {
  return m.low ? m : stored_low(m);
}

/// An elementwise op's output keeps its input's format (CPU autocast runs tanh, GELU, the norms,
/// softmax, pow, mean, rsqrt in the dtype they are given).
template <class T>
Matrix<T> like(const Matrix<T>& input, Matrix<T> output) {
  return input.low ? stored_low(std::move(output)) : output;
}

/// Per-parameter gradient sums, each over every term any example or token contributes.
template <class T>
struct Gradients {
  std::vector<Sum<T>> sums;
  std::vector<bool> low;  ///< see ModelEvaluation::grad_low
  explicit Gradients(int64_t size) : sums(static_cast<size_t>(size)), low(static_cast<size_t>(size), false) {}
  void add(int64_t index, const T& term) { sums[static_cast<size_t>(index)].add(term); }
  void mark_low(int64_t offset, int64_t count) {
    for (int64_t i = 0; i < count; ++i) low[static_cast<size_t>(offset + i)] = true;
  }
  /// The evaluation's gradient and format flags, in canonical order.
  void finish(ModelEvaluation<T>& out) const {
    out.grad.reserve(sums.size());
    for (size_t i = 0; i < sums.size(); ++i) {
      out.grad.push_back(sums[i].result());
      // A draw stores a low-precision product's gradient in its format once per evaluation (one
      // micro-batch); Bounded charges that rounding in Sum.
      if constexpr (std::is_same_v<T, Stochastic>) {
        if (low[i]) round_low(out.grad.back());
      }
    }
    out.grad_low = low;
  }
};

/// A view of a parameter tensor in the flat vector: its values and its offset.
template <class T>
struct Param {
  const T* values = nullptr;
  int64_t offset = -1;
  const T& operator[](int64_t i) const { return values[i]; }
  explicit operator bool() const { return values != nullptr; }
};

template <class T>
Param<T> param(const fixtures::ModelLayout& layout, const std::vector<T>& params, const std::string& name) {
  const auto& spec = layout.parameter(name);
  return {params.data() + spec.offset, spec.offset};
}

/// A dense layer y = W x (+ b): weight [out, in].
template <class T>
struct Dense {
  Param<T> weight, bias;
  int64_t in = 0, out = 0;
};

template <class T>
Dense<T> dense(const fixtures::ModelLayout& layout, const std::vector<T>& params, const std::string& name,
               bool has_bias = true) {
  const auto& spec = layout.parameter(name + ".weight");
  Dense<T> d{param(layout, params, name + ".weight"), {}, spec.shape[1], spec.shape[0]};
  if (has_bias) d.bias = param(layout, params, name + ".bias");
  return d;
}

/// Y = X W^T + b, the bias summed with the products (an implementation may add it in any order).
/// In autocast the product runs in the low-precision format: operands cast to it (the fp32 weights
/// too), accumulation in fp32, the output stored low.
template <class T>
Matrix<T> dense_forward(const Dense<T>& d, const Matrix<T>& input) {
  const Matrix<T> x = cast_low(input);
  Matrix<T> y(x.rows, d.out);
  const auto n = static_cast<size_t>(d.in);
  std::vector<T> lhs(n + 1), rhs(n + 1);
  for (int64_t r = 0; r < x.rows; ++r) {
    for (size_t k = 0; k < n; ++k) rhs[k] = x(r, static_cast<int64_t>(k));
    rhs[n] = T(1);
    for (int64_t o = 0; o < d.out; ++o) {
      for (size_t k = 0; k < n; ++k) {
        lhs[k] = d.weight[o * d.in + static_cast<int64_t>(k)];
        round_low(lhs[k]);
      }
      lhs[n] = d.bias ? d.bias[o] : T(0);
      round_low(lhs[n]);
      y(r, o) = dot_of(lhs.data(), rhs.data(), d.bias ? n + 1 : n);
    }
  }
  return stored_low(std::move(y));
}

/// Adds dW = dY^T X and db = sum dY to the gradients; returns dX = dY W. In autocast the
/// products run in the low-precision format (the weight gradients' rounding is charged by Sum on
/// their mass) and dX is stored low.
template <class T>
Matrix<T> dense_backward(const Dense<T>& d, const Matrix<T>& input, const Matrix<T>& upstream, Gradients<T>& grads) {
  const Matrix<T> x = cast_low(input), dy = cast_low(upstream);
  if (dy.low) {
    grads.mark_low(d.weight.offset, d.out * d.in);
    if (d.bias) grads.mark_low(d.bias.offset, d.out);
  }
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t o = 0; o < d.out; ++o) {
      for (int64_t k = 0; k < d.in; ++k) grads.add(d.weight.offset + o * d.in + k, dy(r, o) * x(r, k));
      if (d.bias) grads.add(d.bias.offset + o, dy(r, o));
    }
  }
  Matrix<T> dx(x.rows, d.in);
  std::vector<T> column(static_cast<size_t>(d.out));
  for (int64_t k = 0; k < d.in; ++k) {
    for (int64_t o = 0; o < d.out; ++o) {
      column[static_cast<size_t>(o)] = d.weight[o * d.in + k];
      round_low(column[static_cast<size_t>(o)]);
    }
    for (int64_t r = 0; r < x.rows; ++r) dx(r, k) = dot_of(column.data(), dy.row(r), static_cast<size_t>(d.out));
  }
  return stored_low(std::move(dx));
}

template <class T>
Matrix<T> tanh_forward(const Matrix<T>& z) {
  Matrix<T> a = z;
  for (auto& v : a.data) v = tanh(v);
  return like(z, std::move(a));
}

/// tanh'(z) = 1 - tanh(z)^2, from the output (ATen's tanh_backward).
template <class T>
Matrix<T> tanh_backward(const Matrix<T>& a, const Matrix<T>& da) {
  Matrix<T> dz = da;
  for (size_t i = 0; i < dz.data.size(); ++i) dz.data[i] = da.data[i] * (T(1) - a.data[i] * a.data[i]);
  return like(a, std::move(dz));
}

/// Exact GELU, as ATen: x * 0.5 * (1 + erf(x * M_SQRT1_2)).
template <class T>
Matrix<T> gelu_forward(const Matrix<T>& z) {
  Matrix<T> a = z;
  // Constants computed in T: exact for the truth; for Bounded, the rounding of fp32's M_SQRT1_2.
  const T half = T(0.5), root_half = sqrt(half);
  for (auto& v : a.data) v = v * half * (T(1) + erf(v * root_half));
  return like(z, std::move(a));
}

/// GELU'(x) = cdf(x) + x pdf(x), as ATen: 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi).
template <class T>
Matrix<T> gelu_backward(const Matrix<T>& z, const Matrix<T>& da) {
  Matrix<T> dz = da;
  const T half = T(0.5), root_half = sqrt(half);
  const T alpha = T(1) / sqrt(T(2) * pi<T>());  // 1 / sqrt(2 pi)
  for (size_t i = 0; i < dz.data.size(); ++i) {
    const T& x = z.data[i];
    const T cdf = half * (T(1) + erf(x * root_half));
    const T pdf = alpha * exp(-half * x * x);
    dz.data[i] = da.data[i] * (cdf + x * pdf);
  }
  return like(z, std::move(dz));
}

/// Mean and reciprocal standard deviation of n values (two-pass; biased variance).
template <class T>
struct Moments {
  T mean, rstd;
};

template <class T>
Moments<T> moments(const std::vector<T>& x, const T& eps) {
  const T n = T(static_cast<double>(x.size()));
  const T mean = sum_of(x.data(), x.size()) / n;
  std::vector<T> squares(x.size());
  for (size_t i = 0; i < x.size(); ++i) squares[i] = (x[i] - mean) * (x[i] - mean);
  const T var = sum_of(squares.data(), squares.size()) / n;
  return {mean, T(1) / sqrt(var + eps)};
}

/// LayerNorm (and GroupNorm's per-group normalization) over one group of values, as ATen:
/// y_j = (x_j * rstd + (-rstd * mean)) * gamma_j + beta_j.
template <class T>
struct NormGroup {
  std::vector<T> x;
  Moments<T> m;
};

/// The backward of one normalized group, as ATen's LayerNorm/GroupNorm CPU kernels:
///   ds = sum dy gamma x, db = sum dy gamma, a = rstd, b = (db mean - ds) a^3 / n,
///   c = -b mean - db a / n, dx = a dy gamma + b x + c; dgamma += dy (a x - a mean), dbeta += dy.
template <class T>
std::vector<T> norm_group_backward(const NormGroup<T>& g, const std::vector<T>& dy, const std::vector<T>& gamma,
                                   std::vector<T>& dgamma_terms) {
  const size_t n = g.x.size();
  std::vector<T> dsx(n), dbx(n);
  for (size_t j = 0; j < n; ++j) {
    dbx[j] = dy[j] * gamma[j];
    dsx[j] = dbx[j] * g.x[j];
  }
  const T ds = sum_of(dsx.data(), n), db = sum_of(dbx.data(), n);
  const T a = g.m.rstd, scale = T(1) / T(static_cast<double>(n));
  const T b = (db * g.m.mean - ds) * a * a * a * scale;
  const T c = -b * g.m.mean - db * a * scale;
  std::vector<T> dx(n);
  for (size_t j = 0; j < n; ++j) {
    dx[j] = a * dy[j] * gamma[j] + b * g.x[j] + c;
    dgamma_terms[j] = dy[j] * (a * g.x[j] - a * g.m.mean);
  }
  return dx;
}

/// LayerNorm over each row (features), or GroupNorm over `groups` groups of each row.
template <class T>
struct GroupedNorm {
  Param<T> weight, bias;
  int64_t groups = 1;
  T eps;
  std::vector<std::vector<NormGroup<T>>> saved;  // [row][group]
  bool low = false;                               // the input's (and so the output's) format

  Matrix<T> forward(const Matrix<T>& x) {
    low = x.low;
    Matrix<T> y(x.rows, x.cols);
    const int64_t width = x.cols / groups;
    saved.assign(static_cast<size_t>(x.rows), std::vector<NormGroup<T>>(static_cast<size_t>(groups)));
    for (int64_t r = 0; r < x.rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        auto& group = saved[static_cast<size_t>(r)][static_cast<size_t>(g)];
        group.x.assign(x.row(r) + g * width, x.row(r) + (g + 1) * width);
        group.m = moments(group.x, eps);
        const T shift = -group.m.rstd * group.m.mean;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t c = g * width + j;
          y(r, c) = (x(r, c) * group.m.rstd + shift) * weight[c] + bias[c];
        }
      }
    }
    return like(x, std::move(y));
  }

  Matrix<T> backward(const Matrix<T>& dy, Gradients<T>& grads) const {
    Matrix<T> dx(dy.rows, dy.cols);
    const int64_t width = dy.cols / groups;
    std::vector<T> gamma(static_cast<size_t>(width)), d(static_cast<size_t>(width)), dgamma(static_cast<size_t>(width));
    for (int64_t r = 0; r < dy.rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t j = 0; j < width; ++j) {
          gamma[static_cast<size_t>(j)] = weight[g * width + j];
          d[static_cast<size_t>(j)] = dy(r, g * width + j);
        }
        const auto dxg = norm_group_backward(saved[static_cast<size_t>(r)][static_cast<size_t>(g)], d, gamma, dgamma);
        for (int64_t j = 0; j < width; ++j) {
          const int64_t c = g * width + j;
          dx(r, c) = dxg[static_cast<size_t>(j)];
          grads.add(weight.offset + c, dgamma[static_cast<size_t>(j)]);
          grads.add(bias.offset + c, d[static_cast<size_t>(j)]);
        }
      }
    }
    return low ? stored_low(std::move(dx)) : dx;
  }
};

/// RMSNorm as its composite ops compute it: y = x * rsqrt(mean(x^2) + eps) * w, and its autograd.
/// In autocast each op keeps its input's format, but the last multiply by the fp32 weight promotes
/// the output to fp32 (as PyTorch's type promotion does).
template <class T>
struct RmsNorm {
  Param<T> weight;
  T eps;
  Matrix<T> x, normalized;
  std::vector<T> rstd;

  /// Stores v as an op on an input of the forward input's format would.
  void keep(T& v) const {
    if (x.low) round_low(v);
  }

  Matrix<T> forward(const Matrix<T>& input) {
    x = input;
    normalized = Matrix<T>(x.rows, x.cols);
    normalized.low = x.low;
    rstd.assign(static_cast<size_t>(x.rows), T(0));
    Matrix<T> y(x.rows, x.cols);
    std::vector<T> squares(static_cast<size_t>(x.cols));
    for (int64_t r = 0; r < x.rows; ++r) {
      for (int64_t c = 0; c < x.cols; ++c) {
        squares[static_cast<size_t>(c)] = x(r, c) * x(r, c);
        keep(squares[static_cast<size_t>(c)]);
      }
      T mean_square = sum_of(squares.data(), squares.size()) / T(static_cast<double>(x.cols));
      keep(mean_square);
      T shifted = mean_square + eps;
      keep(shifted);
      T& s = rstd[static_cast<size_t>(r)];
      s = T(1) / sqrt(shifted);
      keep(s);
      for (int64_t c = 0; c < x.cols; ++c) {
        normalized(r, c) = x(r, c) * s;
        keep(normalized(r, c));
        y(r, c) = normalized(r, c) * weight[c];  // fp32 weight: an fp32 result
      }
    }
    return y;
  }

  Matrix<T> backward(const Matrix<T>& dy, Gradients<T>& grads) const {
    Matrix<T> dx(x.rows, x.cols);
    std::vector<T> dr_terms(static_cast<size_t>(x.cols));
    const T n = T(static_cast<double>(x.cols));
    for (int64_t r = 0; r < x.rows; ++r) {
      const T& s = rstd[static_cast<size_t>(r)];
      std::vector<T> dnormalized(static_cast<size_t>(x.cols));
      for (int64_t c = 0; c < x.cols; ++c) {
        grads.add(weight.offset + c, dy(r, c) * normalized(r, c));
        dnormalized[static_cast<size_t>(c)] = dy(r, c) * weight[c];
        keep(dnormalized[static_cast<size_t>(c)]);  // the gradient of a low input is low
        dr_terms[static_cast<size_t>(c)] = dnormalized[static_cast<size_t>(c)] * x(r, c);
        keep(dr_terms[static_cast<size_t>(c)]);
      }
      T dr = sum_of(dr_terms.data(), dr_terms.size());
      keep(dr);
      T dmean_square = dr * T(-0.5) * (s * s * s);  // rsqrt'(v) = -0.5 rsqrt(v)^3
      keep(dmean_square);
      T dsquare = dmean_square / n;
      keep(dsquare);
      for (int64_t c = 0; c < x.cols; ++c) {
        T direct = dnormalized[static_cast<size_t>(c)] * s, through_mean = T(2) * x(r, c) * dsquare;
        keep(direct);
        keep(through_mean);
        dx(r, c) = direct + through_mean;
        keep(dx(r, c));
      }
    }
    dx.low = x.low;
    return dx;
  }
};

/// BatchNorm1d in training mode over consecutive virtual batches of rows, as ATen's CPU kernels:
/// mean, var_sum = sum (x - mean)^2, invstd = 1 / sqrt(var_sum / n + eps);
/// y = x * alpha + (beta - mean * alpha), alpha = invstd * gamma; running statistics updated once per
/// virtual batch with the unbiased variance.
template <class T>
struct BatchNorm {
  Param<T> weight, bias;
  T eps, momentum;
  std::vector<int64_t> virtual_batches;
  Matrix<T> x;
  std::vector<std::vector<T>> means, invstds;  // [virtual batch][feature]

  Matrix<T> forward(const Matrix<T>& input, std::vector<T>& buffers) {
    x = input;
    Matrix<T> y(x.rows, x.cols);
    const int64_t features = x.cols;
    T* running_mean = buffers.data();
    T* running_var = buffers.data() + features;
    T* tracked = buffers.data() + 2 * features;
    const T keep = T(1) - momentum;
    means.clear();
    invstds.clear();
    int64_t begin = 0;
    for (int64_t size : virtual_batches) {
      const T n = T(static_cast<double>(size));
      auto& mean = means.emplace_back(static_cast<size_t>(features));
      auto& invstd = invstds.emplace_back(static_cast<size_t>(features));
      std::vector<T> column(static_cast<size_t>(size)), squares(static_cast<size_t>(size));
      for (int64_t c = 0; c < features; ++c) {
        for (int64_t r = 0; r < size; ++r) column[static_cast<size_t>(r)] = x(begin + r, c);
        mean[c] = sum_of(column.data(), column.size()) / n;
        for (int64_t r = 0; r < size; ++r) {
          squares[static_cast<size_t>(r)] = (column[static_cast<size_t>(r)] - mean[c]) * (column[static_cast<size_t>(r)] - mean[c]);
        }
        const T var_sum = sum_of(squares.data(), squares.size());
        invstd[c] = T(1) / sqrt(var_sum / n + eps);
        const T alpha = invstd[c] * weight[c];
        const T shift = bias[c] - mean[c] * alpha;
        for (int64_t r = 0; r < size; ++r) y(begin + r, c) = x(begin + r, c) * alpha + shift;
        running_mean[c] = momentum * mean[c] + keep * running_mean[c];
        running_var[c] = momentum * (var_sum / T(static_cast<double>(size - 1))) + keep * running_var[c];
      }
      *tracked = *tracked + T(1);
      begin += size;
    }
    return like(x, std::move(y));
  }

  /// dx = (dy - mean(dy) - (x - mean) invstd^2 dotp / n) invstd gamma; dgamma = dotp invstd,
  /// dbeta = sum dy, with dotp = sum (x - mean) dy, per virtual batch.
  Matrix<T> backward(const Matrix<T>& dy, Gradients<T>& grads) const {
    Matrix<T> dx(x.rows, x.cols);
    int64_t begin = 0;
    for (size_t v = 0; v < virtual_batches.size(); ++v) {
      const int64_t size = virtual_batches[v];
      const T n = T(static_cast<double>(size));
      std::vector<T> dys(static_cast<size_t>(size)), products(static_cast<size_t>(size));
      for (int64_t c = 0; c < x.cols; ++c) {
        const T& mean = means[v][static_cast<size_t>(c)];
        const T& invstd = invstds[v][static_cast<size_t>(c)];
        for (int64_t r = 0; r < size; ++r) {
          dys[static_cast<size_t>(r)] = dy(begin + r, c);
          products[static_cast<size_t>(r)] = (x(begin + r, c) - mean) * dy(begin + r, c);
          grads.add(weight.offset + c, products[static_cast<size_t>(r)] * invstd);
          grads.add(bias.offset + c, dy(begin + r, c));
        }
        const T sum = sum_of(dys.data(), dys.size());
        const T dotp = sum_of(products.data(), products.size());
        const T grad_mean = sum / n;
        const T k = dotp * invstd * invstd / n;
        for (int64_t r = 0; r < size; ++r) {
          dx(begin + r, c) = (dy(begin + r, c) - grad_mean - (x(begin + r, c) - mean) * k) * invstd * weight[c];
        }
      }
      begin += size;
    }
    return x.low ? stored_low(std::move(dx)) : dx;
  }
};

/// The rows of `m` listed in `rows`, in that order: an exact copy (index_select), format kept.
template <class T>
Matrix<T> gather_rows(const Matrix<T>& m, const std::vector<int64_t>& rows) {
  Matrix<T> out(static_cast<int64_t>(rows.size()), m.cols);
  out.low = m.low;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t c = 0; c < m.cols; ++c) out(static_cast<int64_t>(i), c) = m(rows[i], c);
  }
  return out;
}

/// Copies the rows of `part` into rows `rows` of `whole` (index_copy), which takes their format.
template <class T>
void scatter_rows(const Matrix<T>& part, const std::vector<int64_t>& rows, Matrix<T>& whole) {
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t c = 0; c < part.cols; ++c) whole(rows[i], c) = part(static_cast<int64_t>(i), c);
  }
  whole.low = part.low;
}

/// mlp_routed's experts: each a dense layer over the rows routed to it (fixtures::routed_expert), its
/// outputs copied back into those rows. Every row passes through exactly one expert, and gathering
/// and scattering rows are exact copies, so each output and each input gradient is one dense layer's
/// own. An expert no row is routed to is never evaluated: its gradient gets no term and stays exactly
/// zero (in LibTorch the expert is not in the autograd graph).
template <class T>
struct RoutedExperts {
  std::vector<Dense<T>> experts;
  std::vector<std::vector<int64_t>> rows;  // [expert]: the rows routed to it, in batch order
  std::vector<Matrix<T>> inputs;           // [expert]: those rows of the forward input

  RoutedExperts(const fixtures::ModelLayout& layout, const std::vector<T>& params, const fixtures::Batch& batch)
      : rows(fixtures::kRoutedExperts), inputs(fixtures::kRoutedExperts) {
    for (int e = 0; e < fixtures::kRoutedExperts; ++e) {
      experts.push_back(dense(layout, params, "expert" + std::to_string(e)));
    }
    for (int64_t r = 0; r < batch.size; ++r) {
      const double feature = batch.inputs[static_cast<size_t>(r * batch.input_dim + fixtures::kRoutingFeature)];
      rows[static_cast<size_t>(fixtures::routed_expert(feature))].push_back(r);
    }
  }

  Matrix<T> forward(const Matrix<T>& a) {
    Matrix<T> y(a.rows, experts[0].out);
    for (size_t e = 0; e < experts.size(); ++e) {
      if (rows[e].empty()) continue;
      inputs[e] = gather_rows(a, rows[e]);
      scatter_rows(dense_forward(experts[e], inputs[e]), rows[e], y);
    }
    return y;
  }

  Matrix<T> backward(const Matrix<T>& dy, Gradients<T>& grads) const {
    Matrix<T> da(dy.rows, experts[0].in);
    for (size_t e = 0; e < experts.size(); ++e) {
      if (rows[e].empty()) continue;
      scatter_rows(dense_backward(experts[e], inputs[e], gather_rows(dy, rows[e]), grads), rows[e], da);
    }
    return da;
  }
};

/// MSE over every element of a batch of outputs: the loss (sum / normalizer, or sum) and the
/// loss gradient with respect to the outputs, times the loss scale.
template <class T>
T mse(const Matrix<T>& y, const std::vector<double>& targets, Reduction reduction, int64_t normalizer,
      double loss_scale, Matrix<T>& dy) {
  dy = Matrix<T>(y.rows, y.cols);
  std::vector<T> squares(y.data.size());
  const T elements = T(static_cast<double>(normalizer));
  const T seed_scale = (reduction == Reduction::mean ? T(2) / elements : T(2)) * T(loss_scale);
  for (size_t i = 0; i < y.data.size(); ++i) {
    const T residual = y.data[i] - T(targets[i]);
    squares[i] = residual * residual;
    dy.data[i] = seed_scale * residual;
    rounding_allowance(dy.data[i], kScaleRoundings);
  }
  const T total = sum_of(squares.data(), squares.size());
  // The loss runs in fp32 on the upcast outputs; the gradient goes back through the upcast into the
  // outputs' own format.
  if (y.low) dy = stored_low(std::move(dy));
  return reduction == Reduction::mean ? total / elements : total;
}

/// The regressors: linear, fc1 -> [norm] -> activation -> fc2, and fc1 -> tanh -> routed experts.
template <class T>
ModelEvaluation<T> regressor(const Scenario& sc, const fixtures::ModelLayout& layout, const std::vector<T>& params,
                             const std::vector<T>& buffers, const fixtures::Batch& batch,
                             const EvaluationOptions& options) {
  const auto& m = sc.model;
  Matrix<T> x(batch.size, m.input_dim);
  for (size_t i = 0; i < x.data.size(); ++i) x.data[i] = T(batch.inputs[i]);
  Gradients<T> grads(layout.size);
  ModelEvaluation<T> out{T(0), {}, buffers, {}};
  const int64_t normalizer = options.loss_elements > 0 ? options.loss_elements : batch.size * m.output_dim;
  Matrix<T> dy;

  if (m.arch == Architecture::linear) {
    const auto layer = dense(layout, params, "linear");
    out.loss = mse(dense_forward(layer, x), batch.targets, sc.loss.reduction, normalizer, options.loss_scale, dy);
    dense_backward(layer, x, dy, grads);
  } else if (m.arch == Architecture::mlp_routed) {
    const auto fc1 = dense(layout, params, "fc1");
    RoutedExperts<T> experts(layout, params, batch);
    const Matrix<T> a = tanh_forward(dense_forward(fc1, x));
    out.loss = mse(experts.forward(a), batch.targets, sc.loss.reduction, normalizer, options.loss_scale, dy);
    dense_backward(fc1, x, tanh_backward(a, experts.backward(dy, grads)), grads);
  } else {
    const auto fc1 = dense(layout, params, "fc1"), fc2 = dense(layout, params, "fc2");
    const Matrix<T> z = dense_forward(fc1, x);
    const T eps = constant<T>(m.norm_eps);
    GroupedNorm<T> grouped{};
    RmsNorm<T> rms{};
    BatchNorm<T> bn{};
    Matrix<T> normalized;
    switch (m.arch) {
      case Architecture::mlp_layer_norm:
      case Architecture::mlp_group_norm:
        grouped = GroupedNorm<T>{param(layout, params, "norm.weight"), param(layout, params, "norm.bias"),
                                 m.arch == Architecture::mlp_group_norm ? m.groups : 1, eps, {}};
        normalized = grouped.forward(z);
        break;
      case Architecture::mlp_rms_norm:
        rms.weight = param(layout, params, "norm.weight");
        rms.eps = eps;
        normalized = rms.forward(z);
        break;
      case Architecture::mlp_batch_norm:
        bn.weight = param(layout, params, "norm.weight");
        bn.bias = param(layout, params, "norm.bias");
        bn.eps = eps;
        bn.momentum = constant<T>(m.batch_norm_momentum);
        bn.virtual_batches = options.virtual_batches.empty() ? std::vector<int64_t>{batch.size} : options.virtual_batches;
        normalized = bn.forward(z, out.buffers_after);
        break;
      default:
        normalized = z;
    }
    const bool gelu = m.arch == Architecture::mlp_gelu;
    const Matrix<T> a = gelu ? gelu_forward(normalized) : tanh_forward(normalized);
    out.loss = mse(dense_forward(fc2, a), batch.targets, sc.loss.reduction, normalizer, options.loss_scale, dy);
    const Matrix<T> da = dense_backward(fc2, a, dy, grads);
    Matrix<T> dz = gelu ? gelu_backward(normalized, da) : tanh_backward(a, da);
    switch (m.arch) {
      case Architecture::mlp_layer_norm:
      case Architecture::mlp_group_norm:
        dz = grouped.backward(dz, grads);
        break;
      case Architecture::mlp_rms_norm:
        dz = rms.backward(dz, grads);
        break;
      case Architecture::mlp_batch_norm:
        dz = bn.backward(dz, grads);
        break;
      default:
        break;
    }
    dense_backward(fc1, x, dz, grads);
  }
  rounding_allowance(out.loss, kScaleRoundings);
  grads.finish(out);
  return out;
}

/// Causal self-attention of one sequence, one head: S = Q K^T / sqrt(d) masked to j <= t;
/// A = softmax(S) (ATen: exp(s - max) * (1 / sum)); O = A V. Forward keeps Q, K, V and A for the
/// backward. In autocast every op of it is low precision (round_low after each): the score and value
/// products, the scaling, softmax's output, and their gradients.
template <class T>
struct CausalAttention {
  T sqrt_d;
  Matrix<T> q, k, v, probabilities;

  Matrix<T> forward(Matrix<T> q_in, Matrix<T> k_in, Matrix<T> v_in) {
    q = std::move(q_in);
    k = std::move(k_in);
    v = std::move(v_in);
    const int64_t length = q.rows, d = q.cols;
    probabilities = Matrix<T>(length, length);
    Matrix<T> o(length, d);
    for (int64_t t = 0; t < length; ++t) {
      std::vector<T> scores(static_cast<size_t>(t + 1));
      T top = T(0);
      for (int64_t j = 0; j <= t; ++j) {
        T product = dot_of(q.row(t), k.row(j), static_cast<size_t>(d));
        round_low(product);
        T& score = scores[static_cast<size_t>(j)];
        score = product / sqrt_d;
        round_low(score);
        top = j == 0 ? scores[0] : max(top, score);
      }
      for (auto& s : scores) s = exp(s - top);
      const T inverse = T(1) / sum_of(scores.data(), scores.size());
      for (int64_t j = 0; j <= t; ++j) {
        probabilities(t, j) = scores[static_cast<size_t>(j)] * inverse;
        round_low(probabilities(t, j));
      }
      std::vector<T> column(static_cast<size_t>(t + 1));
      for (int64_t c = 0; c < d; ++c) {
        for (int64_t j = 0; j <= t; ++j) column[static_cast<size_t>(j)] = v(j, c);
        o(t, c) = dot_of(probabilities.row(t), column.data(), static_cast<size_t>(t + 1));
        round_low(o(t, c));
      }
    }
    o.low = q.low;
    return o;
  }

  /// dQ, dK, dV from dO: dA = dO V^T, dV = A^T dO; softmax backward dS = A (dA - sum(dA A)); / sqrt(d).
  void backward(const Matrix<T>& dout, Matrix<T>& dq, Matrix<T>& dk, Matrix<T>& dv) const {
    const int64_t length = q.rows, d = q.cols;
    dq = Matrix<T>(length, d);
    dk = Matrix<T>(length, d);
    dv = Matrix<T>(length, d);
    std::vector<T> terms;
    for (int64_t j = 0; j < length; ++j) {
      for (int64_t c = 0; c < d; ++c) {
        terms.clear();
        for (int64_t t = j; t < length; ++t) terms.push_back(probabilities(t, j) * dout(t, c));
        dv(j, c) = sum_of(terms.data(), terms.size());
        round_low(dv(j, c));
      }
    }
    std::vector<Sum<T>> dk_sums(static_cast<size_t>(length * d));
    for (int64_t t = 0; t < length; ++t) {
      std::vector<T> da(static_cast<size_t>(t + 1)), weighted(static_cast<size_t>(t + 1));
      for (int64_t j = 0; j <= t; ++j) {
        da[static_cast<size_t>(j)] = dot_of(dout.row(t), v.row(j), static_cast<size_t>(d));
        round_low(da[static_cast<size_t>(j)]);
        weighted[static_cast<size_t>(j)] = da[static_cast<size_t>(j)] * probabilities(t, j);
        round_low(weighted[static_cast<size_t>(j)]);
      }
      T total = sum_of(weighted.data(), weighted.size());
      round_low(total);
      std::vector<T> ds(static_cast<size_t>(t + 1));
      for (int64_t j = 0; j <= t; ++j) {
        T centered = da[static_cast<size_t>(j)] - total;
        round_low(centered);
        T scaled = probabilities(t, j) * centered;
        round_low(scaled);
        ds[static_cast<size_t>(j)] = scaled / sqrt_d;
        round_low(ds[static_cast<size_t>(j)]);
      }
      std::vector<T> column(static_cast<size_t>(t + 1));
      for (int64_t c = 0; c < d; ++c) {
        for (int64_t j = 0; j <= t; ++j) column[static_cast<size_t>(j)] = k(j, c);
        dq(t, c) = dot_of(ds.data(), column.data(), static_cast<size_t>(t + 1));
        round_low(dq(t, c));
        for (int64_t j = 0; j <= t; ++j) dk_sums[static_cast<size_t>(j * d + c)].add(ds[static_cast<size_t>(j)] * q(t, c));
      }
    }
    for (size_t e = 0; e < dk.data.size(); ++e) dk.data[e] = dk_sums[e].result();
    dq.low = dk.low = dv.low = q.low;
  }
};

/// Cross-entropy of one sequence's logits through log_softmax (ATen: out = z - (max + log(sum
/// exp(z - max)))), over the tokens whose target is counted (not kIgnoreIndex). Forward keeps each
/// token's shift (max + log sum exp) for the backward.
template <class T>
struct CrossEntropy {
  std::vector<int64_t> targets;  ///< per token; kIgnoreIndex: not counted
  std::vector<T> shifts;         ///< per token (unset where not counted)

  /// Appends each counted token's loss, -(z[target] - shift), to `losses`.
  void forward(const Matrix<T>& z, const int64_t* token_targets, std::vector<T>& losses) {
    const int64_t length = z.rows, vocab = z.cols;
    targets.assign(token_targets, token_targets + length);
    shifts.assign(static_cast<size_t>(length), T(0));
    std::vector<T> exps(static_cast<size_t>(vocab));
    for (int64_t t = 0; t < length; ++t) {
      const int64_t target = targets[static_cast<size_t>(t)];
      if (target == fixtures::kIgnoreIndex) continue;
      if (target < 0 || target >= vocab) {
        throw std::invalid_argument("oracle: target id " + std::to_string(target) + " outside the vocabulary of " +
                                    std::to_string(vocab));
      }
      T top = z(t, 0);
      for (int64_t c = 1; c < vocab; ++c) top = max(top, z(t, c));
      for (int64_t c = 0; c < vocab; ++c) exps[static_cast<size_t>(c)] = exp(z(t, c) - top);
      const T shift = top + log(sum_of(exps.data(), exps.size()));
      shifts[static_cast<size_t>(t)] = shift;
      losses.push_back(-(z(t, target) - shift));
    }
  }

  /// dZ for an upstream gradient `g` of each counted token's loss term (-weight x the loss scale):
  /// dz = g onehot - exp(out) g, back through the loss' upcast of the logits into their format.
  Matrix<T> backward(const Matrix<T>& z, T g) const {
    rounding_allowance(g, kScaleRoundings);
    Matrix<T> dz(z.rows, z.cols);
    for (int64_t t = 0; t < z.rows; ++t) {
      const int64_t target = targets[static_cast<size_t>(t)];
      if (target == fixtures::kIgnoreIndex) continue;
      const T shift = shifts[static_cast<size_t>(t)];
      for (int64_t c = 0; c < z.cols; ++c) {
        const T probability = exp(z(t, c) - shift);
        dz(t, c) = (c == target ? g : T(0)) - probability * g;
      }
    }
    return z.low ? stored_low(std::move(dz)) : dz;
  }
};

/// The tiny causal language model, one sequence at a time (right padding never reaches a real
/// token through a causal mask, so padded positions are simply not computed):
///   X = E[tokens]; Q, K, V = X Wq^T, X Wk^T, X Wv^T; S = Q K^T / sqrt(d) masked to j <= t;
///   A = softmax(S); H = X + (A V) Wo^T; N = LayerNorm(H); Z = N Wh^T + bh;
///   loss = sum over counted targets of -log softmax(Z)[target], / counted (token_mean) or not.
template <class T>
ModelEvaluation<T> causal_lm(const Scenario& sc, const fixtures::ModelLayout& layout, const std::vector<T>& params,
                             const fixtures::Batch& batch, const EvaluationOptions& options) {
  const auto& m = sc.model;
  const int64_t d = m.d_model, vocab = m.vocab_size;
  const auto embedding = param(layout, params, "embedding.weight");
  const auto wq = dense(layout, params, "attention.query", false), wk = dense(layout, params, "attention.key", false);
  const auto wv = dense(layout, params, "attention.value", false), wo = dense(layout, params, "attention.output", false);
  const auto head = dense(layout, params, "head");
  const T eps = constant<T>(m.norm_eps);
  const T sqrt_d = sqrt(T(static_cast<double>(d)));
  const int64_t normalizer = options.loss_elements > 0 ? options.loss_elements : batch.counted_targets();
  const T weight = sc.loss.reduction == Reduction::token_mean ? T(1) / T(static_cast<double>(normalizer)) : T(1);

  Gradients<T> grads(layout.size);
  std::vector<T> token_losses;
  for (int64_t i = 0; i < batch.size; ++i) {
    const int64_t length = batch.lengths[static_cast<size_t>(i)];
    if (length == 0) continue;
    Matrix<T> x(length, d);
    for (int64_t t = 0; t < length; ++t) {
      const int64_t token = batch.tokens[static_cast<size_t>(i * batch.max_length + t)];
      if (token < 0 || token >= vocab) {
        throw std::invalid_argument("oracle: token id " + std::to_string(token) + " outside the vocabulary of " +
                                    std::to_string(vocab));
      }
      for (int64_t c = 0; c < d; ++c) x(t, c) = embedding[token * d + c];
    }
    CausalAttention<T> attention{sqrt_d, {}, {}, {}, {}};
    const Matrix<T> o = attention.forward(dense_forward(wq, x), dense_forward(wk, x), dense_forward(wv, x));
    const Matrix<T> p = dense_forward(wo, o);
    Matrix<T> h(length, d);  // fp32 + low promotes to fp32: the residual stream stays fp32
    for (size_t e = 0; e < h.data.size(); ++e) h.data[e] = x.data[e] + p.data[e];
    GroupedNorm<T> norm{param(layout, params, "norm.weight"), param(layout, params, "norm.bias"), 1, eps, {}};
    const Matrix<T> n = norm.forward(h);
    const Matrix<T> z = dense_forward(head, n);

    CrossEntropy<T> cross_entropy;
    cross_entropy.forward(z, batch.token_targets.data() + i * batch.max_length, token_losses);
    const Matrix<T> dz = cross_entropy.backward(z, -weight * T(options.loss_scale));
    const Matrix<T> dn = dense_backward(head, n, dz, grads);
    const Matrix<T> dh = norm.backward(dn, grads);
    const Matrix<T> dout = dense_backward(wo, o, dh, grads);
    Matrix<T> dq, dk, dv;
    attention.backward(dout, dq, dk, dv);
    const Matrix<T> dx_q = dense_backward(wq, x, dq, grads), dx_k = dense_backward(wk, x, dk, grads);
    const Matrix<T> dx_v = dense_backward(wv, x, dv, grads);
    T parts[4];
    for (int64_t t = 0; t < length; ++t) {
      const int64_t token = batch.tokens[static_cast<size_t>(i * batch.max_length + t)];
      for (int64_t c = 0; c < d; ++c) {
        parts[0] = dh(t, c);
        parts[1] = dx_q(t, c);
        parts[2] = dx_k(t, c);
        parts[3] = dx_v(t, c);
        grads.add(embedding.offset + token * d + c, sum_of(parts, 4));
      }
    }
  }

  ModelEvaluation<T> out{T(0), {}, {}, {}};
  const T total = sum_of(token_losses.data(), token_losses.size());
  out.loss = sc.loss.reduction == Reduction::token_mean ? total / T(static_cast<double>(normalizer)) : total;
  rounding_allowance(out.loss, kScaleRoundings);
  grads.finish(out);
  return out;
}

}  // namespace detail

template <class T>
ModelEvaluation<T> loss_and_gradient(const Scenario& scenario, const std::vector<T>& params,
                                     const std::vector<T>& buffers, const fixtures::Batch& batch,
                                     const EvaluationOptions& options) {
  const auto layout = fixtures::model_layout(scenario.model);
  if (static_cast<int64_t>(params.size()) != layout.size) {
    throw std::invalid_argument("oracle: expected " + std::to_string(layout.size) + " parameters, got " +
                                std::to_string(params.size()));
  }
  if (static_cast<int64_t>(buffers.size()) != layout.buffer_size) {
    throw std::invalid_argument("oracle: expected " + std::to_string(layout.buffer_size) + " buffer values, got " +
                                std::to_string(buffers.size()));
  }
  // bf16 and fp16 train under CPU autocast: the model's ops in that format (round_low), weights,
  // gradients and the optimizer in fp32.
  const LowPrecisionScope autocast(scenario.precision == Precision::fp32 ? nullptr : &format_of(scenario.precision));
  if (is_token_model(scenario.model)) {
    if (static_cast<int64_t>(batch.lengths.size()) != batch.size ||
        static_cast<int64_t>(batch.tokens.size()) != batch.size * batch.max_length ||
        batch.token_targets.size() != batch.tokens.size()) {
      throw std::invalid_argument("oracle: token batch of inconsistent shape");
    }
    return detail::causal_lm(scenario, layout, params, batch, options);
  }
  if (batch.input_dim != scenario.model.input_dim || batch.output_dim != scenario.model.output_dim ||
      static_cast<int64_t>(batch.inputs.size()) != batch.size * batch.input_dim ||
      static_cast<int64_t>(batch.targets.size()) != batch.size * batch.output_dim) {
    throw std::invalid_argument("oracle: batch of shape " + std::to_string(batch.size) + "x" +
                                std::to_string(batch.input_dim) + " -> " + std::to_string(batch.output_dim) +
                                " does not fit model " + std::to_string(scenario.model.input_dim) + " -> " +
                                std::to_string(scenario.model.output_dim));
  }
  int64_t virtual_total = 0;
  for (auto size : options.virtual_batches) virtual_total += size;
  if (!options.virtual_batches.empty() && virtual_total != batch.size) {
    throw std::invalid_argument("oracle: virtual batches cover " + std::to_string(virtual_total) + " of " +
                                std::to_string(batch.size) + " examples");
  }
  return detail::regressor(scenario, layout, params, buffers, batch, options);
}

}  // namespace gacc::reference
