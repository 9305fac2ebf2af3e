#include "ir/interpret.h"

#include <cmath>
#include <limits>
#include <unordered_map>

#include "ir/assert.h"
#include "ir/scalar_math.h"

namespace nabla::ir {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Strides of `s` as seen from a result of shape `out` (NumPy broadcasting):
// 0 on axes that `s` lacks or has as 1.
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  std::vector<int64_t> strides(static_cast<size_t>(out.rank()), 0);
  int64_t stride = 1;
  for (int i = s.rank() - 1, j = out.rank() - 1; i >= 0; --i, --j) {
    if (s[i] != 1) strides[static_cast<size_t>(j)] = stride;
    stride *= s[i];
  }
  return strides;
}

// Calls f(out_index, in_offsets...) over every element of `out`.
template <size_t N, typename F>
void for_each_broadcast(const Shape& out, const std::array<const Shape*, N>& ins, F f) {
  std::array<std::vector<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) strides[k] = broadcast_strides(*ins[k], out);
  const int rank = out.rank();
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  std::array<int64_t, N> off{};
  const int64_t total = out.numel();
  for (int64_t i = 0; i < total; ++i) {
    f(i, off);
    for (int d = rank - 1; d >= 0; --d) {
      const auto du = static_cast<size_t>(d);
      ++idx[du];
      for (size_t k = 0; k < N; ++k) off[k] += strides[k][du];
      if (idx[du] < out[d]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][du] * out[d];
      idx[du] = 0;
    }
  }
}

// [outer, n, inner] view of `s` around `axis` (kAllAxes: [1, numel, 1]).
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisView axis_view(const Shape& s, int64_t axis) {
  AxisView v;
  if (axis == kAllAxes) {
    v.n = s.numel();
    return v;
  }
  for (int i = 0; i < s.rank(); ++i) {
    if (i < axis) v.outer *= s[i];
    else if (i == axis) v.n = s[i];
    else v.inner *= s[i];
  }
  return v;
}

using Inputs = std::vector<const Tensor*>;

void eval_where(const Shape& shape, const Inputs& in, std::vector<double>& o) {
  for_each_broadcast<3>(shape, {&in[0]->shape, &in[1]->shape, &in[2]->shape}, [&](int64_t i, const auto& off) {
    o[static_cast<size_t>(i)] = scalar_op(Op::Where, in[0]->data[static_cast<size_t>(off[0])],
                                          in[1]->data[static_cast<size_t>(off[1])],
                                          in[2]->data[static_cast<size_t>(off[2])]);
  });
}

void eval_matmul(const Inputs& in, std::vector<double>& o) {
  const Shape& a = in[0]->shape;
  const Shape& b = in[1]->shape;
  const int64_t m = a.rank() == 2 ? a[0] : 1, k = a[a.rank() - 1];
  const int64_t p = b.rank() == 2 ? b[1] : 1;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < p; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t)
        acc += in[0]->data[static_cast<size_t>(i * k + t)] * in[1]->data[static_cast<size_t>(t * p + j)];
      o[static_cast<size_t>(i * p + j)] = acc;
    }
}

void eval_outer(const Inputs& in, std::vector<double>& o) {
  const size_t m = in[0]->data.size(), p = in[1]->data.size();
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < p; ++j) o[i * p + j] = in[0]->data[i] * in[1]->data[j];
}

// out[j_r-1..j_0] = in[j_0..j_r-1]: walk the input, scatter reversed.
void eval_transpose(const Shape& shape, const Inputs& in, std::vector<double>& o) {
  const Shape& s = in[0]->shape;
  const int r = s.rank();
  std::vector<int64_t> out_strides(static_cast<size_t>(r), 1);
  for (int d = r - 2; d >= 0; --d) out_strides[static_cast<size_t>(d)] = out_strides[static_cast<size_t>(d + 1)] * shape[d + 1];
  std::vector<int64_t> idx(static_cast<size_t>(r), 0);
  for (size_t i = 0; i < in[0]->data.size(); ++i) {
    int64_t off = 0;
    for (int d = 0; d < r; ++d) off += idx[static_cast<size_t>(d)] * out_strides[static_cast<size_t>(r - 1 - d)];
    o[static_cast<size_t>(off)] = in[0]->data[i];
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < s[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
}

// One reduction (sum, mean, max, min, logsumexp) of `n` values.
template <typename At>
double reduce(Op op, int64_t n, const At& at) {
  double r = 0;
  if (op == Op::Sum || op == Op::Mean) {
    for (int64_t j = 0; j < n; ++j) r += at(j);
    return op == Op::Mean ? r / static_cast<double>(n) : r;
  }
  if (op == Op::MaxReduce || op == Op::MinReduce) {
    r = at(0);
    for (int64_t j = 1; j < n; ++j) r = op == Op::MaxReduce ? scalar::max2(r, at(j)) : scalar::min2(r, at(j));
    return r;
  }
  double m = -std::numeric_limits<double>::infinity();  // logsumexp
  for (int64_t j = 0; j < n; ++j) m = scalar::max2(m, at(j));
  if (std::isinf(m)) return m;
  for (int64_t j = 0; j < n; ++j) r += std::exp(at(j) - m);
  return m + std::log(r);
}

void eval_reduction(Op op, int64_t attr, const Inputs& in, std::vector<double>& o) {
  const AxisView v = axis_view(in[0]->shape, attr);
  for (int64_t a = 0; a < v.outer; ++a)
    for (int64_t c = 0; c < v.inner; ++c)
      o[static_cast<size_t>(a * v.inner + c)] = reduce(
          op, v.n, [&](int64_t j) { return in[0]->data[static_cast<size_t>((a * v.n + j) * v.inner + c)]; });
}

// softmax, log_softmax (the last axis by default) and the argmax/argmin masks.
void eval_along_axis(Op op, const Shape& shape, int64_t attr, const Inputs& in, std::vector<double>& o) {
  const bool mask = op == Op::ArgmaxMask || op == Op::ArgminMask;
  const AxisView v = axis_view(in[0]->shape, attr == kAllAxes && !mask && shape.rank() > 0 ? shape.rank() - 1 : attr);
  const auto& x = in[0]->data;
  for (int64_t a = 0; a < v.outer; ++a)
    for (int64_t c = 0; c < v.inner; ++c) {
      auto idx = [&](int64_t j) { return static_cast<size_t>((a * v.n + j) * v.inner + c); };
      if (mask) {
        int64_t best = 0;
        for (int64_t j = 1; j < v.n; ++j)
          if (op == Op::ArgmaxMask ? x[idx(j)] > x[idx(best)] : x[idx(j)] < x[idx(best)]) best = j;
        o[idx(best)] = 1;
        continue;
      }
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < v.n; ++j) m = scalar::max2(m, x[idx(j)]);
      double s = 0;
      for (int64_t j = 0; j < v.n; ++j) s += std::exp(x[idx(j)] - m);
      for (int64_t j = 0; j < v.n; ++j)
        o[idx(j)] = op == Op::Softmax ? std::exp(x[idx(j)] - m) / s : x[idx(j)] - m - std::log(s);
    }
}

void eval_maxout(Op op, int64_t k, const Inputs& in, std::vector<double>& o) {
  const size_t groups = in[0]->data.size() / static_cast<size_t>(k);
  for (size_t g = 0; g < groups; ++g) {
    size_t best = g * static_cast<size_t>(k);
    for (size_t j = best + 1; j < (g + 1) * static_cast<size_t>(k); ++j)
      if (in[0]->data[j] > in[0]->data[best]) best = j;
    if (op == Op::Maxout) o[g] = in[0]->data[best];
    else o[best] = 1;
  }
}

void eval_broadcast(const Shape& shape, int64_t attr, const Inputs& in, std::vector<double>& o) {
  if (attr == kAllAxes) {
    for_each_broadcast<1>(shape, {&in[0]->shape}, [&](int64_t i, const auto& off) {
      o[static_cast<size_t>(i)] = in[0]->data[static_cast<size_t>(off[0])];
    });
    return;
  }
  const AxisView v = axis_view(shape, attr);
  for (int64_t a = 0; a < v.outer; ++a)
    for (int64_t j = 0; j < v.n; ++j)
      for (int64_t c = 0; c < v.inner; ++c)
        o[static_cast<size_t>((a * v.n + j) * v.inner + c)] = in[0]->data[static_cast<size_t>(a * v.inner + c)];
}

Tensor eval_node(const Node* n, const Inputs& in) {
  const Shape& shape = n->shape();
  Tensor out = Tensor::zeros(shape);
  auto& o = out.data;
  const Op op = n->op();
  if (op_kind(op) == OpKind::Unary) {
    for (size_t i = 0; i < o.size(); ++i) o[i] = scalar_op(op, in[0]->data[i]);
    return out;
  }
  if (op_kind(op) == OpKind::Binary || op_kind(op) == OpKind::Compare) {
    for_each_broadcast<2>(shape, {&in[0]->shape, &in[1]->shape}, [&](int64_t i, const auto& off) {
      o[static_cast<size_t>(i)] = scalar_op(op, in[0]->data[static_cast<size_t>(off[0])],
                                            in[1]->data[static_cast<size_t>(off[1])]);
    });
    return out;
  }
  const int64_t attr = n->attr();
  switch (op) {
    case Op::Where: eval_where(shape, in, o); return out;
    case Op::MatMul: eval_matmul(in, o); return out;
    case Op::Outer: eval_outer(in, o); return out;
    case Op::Transpose: eval_transpose(shape, in, o); return out;
    case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
      eval_reduction(op, attr, in, o);
      return out;
    case Op::Softmax: case Op::LogSoftmax: case Op::ArgmaxMask: case Op::ArgminMask:
      eval_along_axis(op, shape, attr, in, o);
      return out;
    case Op::Maxout: case Op::MaxoutMask: eval_maxout(op, attr, in, o); return out;
    case Op::GroupSum:
      for (size_t i = 0; i < in[0]->data.size(); ++i) o[i / static_cast<size_t>(attr)] += in[0]->data[i];
      return out;
    case Op::Repeat:
      for (size_t i = 0; i < o.size(); ++i) o[i] = in[0]->data[i / static_cast<size_t>(attr)];
      return out;
    case Op::Broadcast: eval_broadcast(shape, attr, in, o); return out;
    case Op::SumTo:
      for_each_broadcast<1>(in[0]->shape, {&shape}, [&](int64_t i, const auto& off) {
        o[static_cast<size_t>(off[0])] += in[0]->data[static_cast<size_t>(i)];
      });
      return out;
    // Leaves are not evaluated here; Unary, Binary and Compare ops were handled above.
    case Op::Constant: case Op::Var:
    case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
    case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
    case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
      break;
  }
  NABLA_ASSERT(false, "interpreter: op not handled");
  return out;
}

}  // namespace

double scalar_op(Op op, double a, double b, double c) {
  switch (op) {
    case Op::Neg: return -a;
    case Op::Exp: return std::exp(a);
    case Op::Log: return std::log(a);
    case Op::Sqrt: return std::sqrt(a);
    case Op::Abs: return std::fabs(a);
    case Op::Sign: return scalar::sign(a);
    case Op::Sin: return std::sin(a);
    case Op::Cos: return std::cos(a);
    case Op::Erf: return std::erf(a);
    case Op::Tanh: return std::tanh(a);
    case Op::Sigmoid: return scalar::sigmoid(a);
    case Op::Softplus: return scalar::softplus(a);
    case Op::Relu: return scalar::relu(a);
    case Op::HardSigmoid: return scalar::hard_sigmoid(a);
    case Op::HardTanh: return scalar::hard_tanh(a);
    case Op::Gelu: return scalar::gelu(a);
    case Op::GeluTanh: return scalar::gelu_tanh(a);
    case Op::GeluSigmoid: return scalar::gelu_sigmoid(a);
    case Op::Add: return a + b;
    case Op::Sub: return a - b;
    case Op::Mul: return a * b;
    case Op::Div: return a / b;
    case Op::Pow: return std::pow(a, b);
    case Op::Max: return scalar::max2(a, b);
    case Op::Min: return scalar::min2(a, b);
    case Op::LeakyRelu: return scalar::leaky_relu(a, b);
    case Op::Elu: return scalar::elu(a, b);
    case Op::Swish: return scalar::swish(a, b);
    case Op::Lt: return a < b ? 1 : 0;
    case Op::Le: return a <= b ? 1 : 0;
    case Op::Gt: return a > b ? 1 : 0;
    case Op::Ge: return a >= b ? 1 : 0;
    case Op::Eq: return a == b ? 1 : 0;
    case Op::Ne: return a != b ? 1 : 0;
    case Op::Where: return a != 0 ? b : c;
    // Not elementwise.
    case Op::Constant: case Op::Var:
    case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Sum: case Op::Mean: case Op::MaxReduce:
    case Op::MinReduce: case Op::LogSumExp: case Op::Softmax: case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast:
    case Op::SumTo: case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
      break;
  }
  return kNaN;
}

std::vector<Tensor> interpret(std::span<const Node* const> roots, const VarValues& values) {
  std::unordered_map<const Node*, Tensor> memo;
  for (const Node* n : reachable(roots)) {
    if (n->op() == Op::Constant) {
      memo[n] = Tensor::scalar(n->value());
      continue;
    }
    if (n->op() == Op::Var) {
      Tensor t = values(n);
      NABLA_ASSERT(t.shape == n->shape(), "interpreter: a variable's value has the wrong shape");
      memo[n] = std::move(t);
      continue;
    }
    std::vector<const Tensor*> in;
    for (const Node* o : n->operands()) in.push_back(&memo.at(o));
    memo[n] = eval_node(n, in);
  }
  std::vector<Tensor> out;
  for (const Node* r : roots) out.push_back(memo.at(r));
  return out;
}

}  // namespace nabla::ir
