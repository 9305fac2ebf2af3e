// Random IR expressions for property tests: scalars over x, y, z and small
// tensors over v [3], u [3], A [2, 3], w6 [6], including the patterns the
// simplifier's rules look for.
#pragma once

#include <cmath>
#include <random>
#include <unordered_map>

#include "ir/interpret.h"
#include "ir/node.h"

namespace nabla::test {

class RandomIr {
public:
  RandomIr(ir::Context& ctx, unsigned seed) : c_(ctx), rng_(seed) {
    using ir::VarKind;
    x_ = c_.var(VarKind::Input, 0, "x", {});
    y_ = c_.var(VarKind::Input, 1, "y", {});
    z_ = c_.var(VarKind::Param, 0, "z", {});
    v_ = c_.var(VarKind::Input, 2, "v", {3});
    u_ = c_.var(VarKind::Param, 1, "u", {3});
    a_ = c_.var(VarKind::Param, 2, "A", {2, 3});
    w6_ = c_.var(VarKind::Param, 3, "w6", {6});
  }

  std::vector<const ir::Node*> scalar_vars() const { return {x_, y_, z_}; }
  std::vector<const ir::Node*> all_vars() const { return {x_, y_, z_, v_, u_, a_, w6_}; }

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }

  // A random scalar expression.
  const ir::Node* scalar(int depth) {
    using ir::Op;
    if (depth <= 0) {
      switch (pick(5)) {
        case 0: return x_;
        case 1: return y_;
        case 2: return z_;
        default: return c_.constant(static_cast<double>(pick(7)) - 2 + (pick(2) ? 0.5 : 0));
      }
    }
    const Op unary[] = {Op::Neg, Op::Exp, Op::Log, Op::Sqrt, Op::Abs, Op::Sin, Op::Cos, Op::Erf,
                        Op::Tanh, Op::Sigmoid, Op::Softplus, Op::Relu, Op::HardSigmoid,
                        Op::HardTanh, Op::Gelu, Op::GeluTanh, Op::GeluSigmoid};
    const Op binary[] = {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min,
                         Op::LeakyRelu, Op::Elu, Op::Swish};
    auto s = [&] { return scalar(depth - 1); };
    const ir::Node* one = c_.constant(1);
    switch (pick(12)) {
      case 0: case 1: return c_.unary(unary[pick(17)], s());
      case 2: case 3: case 4: return c_.binary(binary[pick(9)], s(), s());
      case 5: return c_.pow(s(), c_.constant(static_cast<double>(pick(4))));
      case 6: {  // known-function patterns
        const ir::Node* e = s();
        switch (pick(7)) {
          case 0: return c_.div(one, c_.add(one, c_.unary(Op::Exp, c_.neg(e))));
          case 1: return c_.unary(Op::Log, c_.add(one, c_.unary(Op::Exp, e)));
          case 2: return c_.unary(Op::Log, c_.unary(Op::Sigmoid, e));
          case 3: return c_.unary(Op::Log, c_.sub(one, c_.unary(Op::Sigmoid, e)));
          case 4: return c_.mul(e, c_.unary(Op::Sigmoid, e));
          case 5: {  // binary cross-entropy of sigmoid(e) with target y
            const ir::Node* p = c_.unary(Op::Sigmoid, e);
            return c_.neg(c_.add(c_.mul(y_, c_.unary(Op::Log, p)),
                                 c_.mul(c_.sub(one, y_), c_.unary(Op::Log, c_.sub(one, p)))));
          }
          default: return c_.div(c_.unary(Op::Exp, e), c_.add(c_.unary(Op::Exp, e), one));
        }
      }
      case 7: {  // like terms and factors
        const ir::Node* e = s();
        return pick(2) ? c_.sub(c_.add(c_.mul(c_.constant(3), e), s()), e) : c_.div(c_.mul(e, s()), e);
      }
      case 8: return c_.make(Op::Where, {c_.binary(pick(2) ? Op::Gt : Op::Le, s(), s()), s(), s()});
      case 9: return c_.pow(c_.add(c_.unary(Op::Abs, s()), c_.constant(0.5)), s());
      case 10: return c_.unary(Op::Exp, c_.unary(Op::Log, s()));
      default: return tensor_to_scalar(depth - 1);
    }
  }

  // A random scalar computed from tensors.
  const ir::Node* tensor_to_scalar(int depth) {
    using ir::Op;
    const ir::Node* t = vector3(depth);
    switch (pick(8)) {
      case 0: return c_.make(Op::Sum, {t});
      case 1: return c_.make(Op::Mean, {c_.mul(t, t)});
      case 2: return c_.make(Op::LogSumExp, {t});
      case 3: return c_.make(Op::MaxReduce, {t});
      case 4: return c_.make(Op::MatMul, {t, u_});
      case 5: return c_.make(Op::MatMul, {c_.unary(Op::Exp, c_.make(Op::LogSoftmax, {t}, 0)), u_});
      case 6: return c_.make(Op::Sum, {c_.mul(scalar(0), t)});
      default: {
        const ir::Node* log_p = c_.unary(Op::Log, c_.make(Op::Softmax, {t}, 0));
        return c_.neg(c_.make(Op::Sum, {c_.mul(v_, log_p)}));
      }
    }
  }

  // A random [3] vector.
  const ir::Node* vector3(int depth) {
    using ir::Op;
    if (depth <= 0) return pick(2) ? v_ : u_;
    auto t = [&] { return vector3(depth - 1); };
    switch (pick(10)) {
      case 0: return c_.unary(pick(2) ? Op::Tanh : Op::Sigmoid, t());
      case 1: return c_.add(t(), c_.mul(scalar(0), t()));
      case 2: return c_.make(Op::Softmax, {t()}, 0);
      case 3: return c_.make(Op::LogSoftmax, {t()}, 0);
      case 4: {  // A.T @ ((A.T).T @ t): transposes that cancel
        const ir::Node* at = c_.make(Op::Transpose, {a_});
        return c_.make(Op::MatMul, {at, c_.make(Op::MatMul, {c_.make(Op::Transpose, {at}), t()})});
      }
      case 5: {  // A.T @ (A @ t) + or - A.T @ (A @ t'): a shared factor
        const ir::Node* at = c_.make(Op::Transpose, {a_});
        const ir::Node* l = c_.make(Op::MatMul, {at, c_.make(Op::MatMul, {a_, t()})});
        const ir::Node* r = c_.make(Op::MatMul, {at, c_.make(Op::MatMul, {a_, t()})});
        return pick(2) ? c_.add(l, r) : c_.sub(l, r);
      }
      case 6: return c_.make(Op::Maxout, {c_.add(w6_, c_.make(Op::Repeat, {t()}, 2))}, 2);
      case 7: {  // an outer product summed over its second axis
        const ir::Node* o = c_.make(Op::Outer, {t(), c_.make(Op::MatMul, {a_, t()})});
        return c_.make(Op::Sum, {o}, 1);
      }
      case 8: return c_.binary(Op::LeakyRelu, t(), c_.constant(0.1));
      default: return c_.sub(t(), c_.broadcast_to(scalar(0), {3}));
    }
  }

  // Random values for every var.
  std::unordered_map<const ir::Node*, ir::Tensor> point() {
    std::unordered_map<const ir::Node*, ir::Tensor> p;
    for (const ir::Node* v : all_vars()) {
      ir::Tensor t = ir::Tensor::zeros(v->shape());
      for (double& d : t.data) d = uniform(-2, 2);
      p[v] = t;
    }
    return p;
  }

private:
  ir::Context& c_;
  std::mt19937 rng_;
  const ir::Node *x_, *y_, *z_, *v_, *u_, *a_, *w6_;
};

inline ir::VarValues values_of(const std::unordered_map<const ir::Node*, ir::Tensor>& p) {
  return [&p](const ir::Node* v) { return p.at(v); };
}

// |a - b| small relative to their size.
inline bool close(double a, double b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= atol + rtol * std::max(std::fabs(a), std::fabs(b));
}

}  // namespace nabla::test
