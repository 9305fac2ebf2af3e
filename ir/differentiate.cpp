#include "ir/differentiate.h"

#include <cmath>
#include <numbers>
#include <unordered_map>

#include "ir/assert.h"

namespace nabla::ir {
namespace {

// The partial derivatives of an elementwise node with respect to each of
// its operands (nullptr where it is zero), elementwise, reusing the node.
std::vector<const Node*> elementwise_partials(Context& c, const Node* n) {
  const Node* a = n->operand(0);
  const Node* b = n->arity() > 1 ? n->operand(1) : nullptr;
  auto k = [&](double v) { return c.constant(v); };
  auto mul = [&](const Node* x, const Node* y) { return c.mul(x, y); };
  auto cmp = [&](Op op, const Node* x, double v) { return c.binary(op, x, k(v)); };
  switch (n->op()) {
    case Op::Neg: return {k(-1)};
    case Op::Exp: return {n};                                             // exp' = exp
    case Op::Log: return {c.div(k(1), a)};                                // 1/a
    case Op::Sqrt: return {c.div(k(0.5), n)};                             // 1/(2 sqrt a)
    case Op::Abs: return {c.unary(Op::Sign, a)};                          // sign(a); 0 at 0
    case Op::Sign: return {nullptr};
    case Op::Sin: return {c.unary(Op::Cos, a)};
    case Op::Cos: return {c.neg(c.unary(Op::Sin, a))};
    case Op::Erf:                                                         // 2/sqrt(pi) exp(-a^2)
      return {mul(k(2 / std::sqrt(std::numbers::pi)), c.unary(Op::Exp, c.neg(c.pow(a, k(2)))))};
    case Op::Tanh: return {c.sub(k(1), c.pow(n, k(2)))};                  // 1 - tanh^2
    case Op::Sigmoid: return {mul(n, c.sub(k(1), n))};                    // s (1 - s)
    case Op::Softplus: return {c.unary(Op::Sigmoid, a)};                  // sigmoid
    case Op::Relu: return {cmp(Op::Gt, a, 0)};                            // a > 0 (0 at 0)
    case Op::HardSigmoid: return {mul(k(0.25), mul(cmp(Op::Gt, a, -2), cmp(Op::Lt, a, 2)))};
    case Op::HardTanh: return {mul(cmp(Op::Gt, a, -1), cmp(Op::Lt, a, 1))};
    case Op::Gelu: {  // Phi(a) + a phi(a)
      const Node* phi = mul(k(1 / std::sqrt(2 * std::numbers::pi)), c.unary(Op::Exp, mul(k(-0.5), c.pow(a, k(2)))));
      const Node* Phi = mul(k(0.5), c.add(k(1), c.unary(Op::Erf, mul(k(1 / std::numbers::sqrt2), a))));
      return {c.add(Phi, mul(a, phi))};
    }
    case Op::GeluTanh: {  // t = tanh(s (a + 0.044715 a^3)): 0.5 (1 + t) + 0.5 a (1 - t^2) s (1 + 3 0.044715 a^2)
      const double s = std::sqrt(2 / std::numbers::pi);
      const Node* t = c.unary(Op::Tanh, mul(k(s), c.add(a, mul(k(0.044715), c.pow(a, k(3))))));
      const Node* du = mul(k(s), c.add(k(1), mul(k(3 * 0.044715), c.pow(a, k(2)))));
      return {c.add(mul(k(0.5), c.add(k(1), t)), mul(mul(k(0.5), a), mul(c.sub(k(1), c.pow(t, k(2))), du)))};
    }
    case Op::GeluSigmoid: {  // s = sigmoid(1.702 a): s + 1.702 a s (1 - s)
      const Node* s = c.unary(Op::Sigmoid, mul(k(1.702), a));
      return {c.add(s, mul(mul(k(1.702), a), mul(s, c.sub(k(1), s))))};
    }
    case Op::Add: return {k(1), k(1)};
    case Op::Sub: return {k(1), k(-1)};
    case Op::Mul: return {b, a};
    case Op::Div: return {c.div(k(1), b), c.neg(c.div(n, b))};            // 1/b, -a/b^2 = -n/b
    case Op::Pow:  // b a^(b-1) (none for a constant b = 0);  n log(a), 0 where a = 0 (as PyTorch)
      return {b->is_constant(0) ? nullptr : mul(b, c.pow(a, c.sub(b, k(1)))),
              b->is_constant() ? nullptr
                               : c.make(Op::Where, {c.binary(Op::Eq, a, k(0)), k(0), mul(n, c.unary(Op::Log, a))})};
    case Op::Max:
    case Op::Min: {  // the larger (smaller) operand takes it; a tie splits it
      const Op wins = n->op() == Op::Max ? Op::Gt : Op::Lt;
      const Node* tie = mul(k(0.5), c.binary(Op::Eq, a, b));
      return {c.add(c.binary(wins, a, b), tie), c.add(c.binary(wins, b, a), tie)};
    }
    case Op::LeakyRelu:  // x > 0 ? 1 : gamma;  d/dgamma = x > 0 ? 0 : x
      return {c.make(Op::Where, {cmp(Op::Gt, a, 0), k(1), b}), c.make(Op::Where, {cmp(Op::Gt, a, 0), k(0), a})};
    case Op::Elu: {  // x > 0 ? 1 : gamma exp(x);  d/dgamma = x > 0 ? 0 : exp(x) - 1
      const Node* e = c.unary(Op::Exp, a);
      return {c.make(Op::Where, {cmp(Op::Gt, a, 0), k(1), mul(b, e)}),
              c.make(Op::Where, {cmp(Op::Gt, a, 0), k(0), c.sub(e, k(1))})};
    }
    case Op::Swish: {  // s = sigmoid(beta x): s + beta x s (1 - s);  d/dbeta = x^2 s (1 - s)
      const Node* s = c.unary(Op::Sigmoid, mul(b, a));
      const Node* ds = mul(s, c.sub(k(1), s));
      return {c.add(s, mul(mul(b, a), ds)), mul(c.pow(a, k(2)), ds)};
    }
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: return {nullptr, nullptr};
    // Leaves and the other ops have no elementwise partials.
    case Op::Constant: case Op::Var:
    case Op::Where: case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Sum:
    case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp: case Op::Softmax:
    case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast: case Op::SumTo: case Op::ArgmaxMask:
    case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
      break;
  }
  NABLA_ASSERT(false, "not an elementwise op with partials");
  return {};
}

// `g`, reduced along `axis` (kAllAxes: everything), put back to the shape of
// `like`: the adjoint of a reduction, and the tangent's broadcast in forward mode.
const Node* expand_along(Context& c, const Node* g, const Node* like, int64_t axis) {
  if (axis == kAllAxes) return c.broadcast_to(g, like->shape());
  return c.make(Op::Broadcast, {g}, axis, like->shape());
}

class Reverse {
public:
  explicit Reverse(Context& ctx) : c_(ctx) {}

  std::vector<const Node*> run(const Node* root, std::span<const Node* const> wrt) {
    NABLA_ASSERT(root->shape().is_scalar(), "gradient: the root must be a scalar");
    adjoint_[root] = c_.constant(1);
    std::vector<const Node*> order = reachable(std::span<const Node* const>(&root, 1));
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const Node* n = *it;
      auto adj = adjoint_.find(n);
      if (adj == adjoint_.end() || n->arity() == 0) continue;
      push(n, adj->second);
    }
    std::vector<const Node*> out;
    for (const Node* w : wrt) {
      auto it = adjoint_.find(w);
      out.push_back(it != adjoint_.end() ? it->second : c_.broadcast_to(c_.constant(0), w->shape()));
    }
    return out;
  }

private:
  // Adds `contribution` (of the user's shape) to the adjoint of `operand`,
  // summed down to the operand's shape where the user broadcast it.
  void add(const Node* operand, const Node* contribution) {
    if (operand->is_constant()) return;
    if (contribution->is_constant(0)) return;
    const Node* g = c_.sum_to(contribution, operand->shape());
    auto [it, fresh] = adjoint_.emplace(operand, g);
    if (!fresh) it->second = c_.add(it->second, g);
  }

  const Node* k(double v) { return c_.constant(v); }
  const Node* mul(const Node* a, const Node* b) { return c_.mul(a, b); }
  const Node* expand(const Node* g, const Node* like, int64_t axis) { return expand_along(c_, g, like, axis); }

  void push(const Node* n, const Node* g) {
    const Node* a = n->operand(0);
    const Node* b = n->arity() > 1 ? n->operand(1) : nullptr;
    const OpKind kind = op_kind(n->op());
    if (kind == OpKind::Unary || kind == OpKind::Binary) {  // g times each partial
      const std::vector<const Node*> p = elementwise_partials(c_, n);
      for (size_t i = 0; i < p.size(); ++i)
        if (p[i]) add(n->operand(i), p[i]->is_constant(1) ? g : mul(g, p[i]));
      return;
    }
    switch (n->op()) {
      case Op::Constant:
      case Op::Var: return;
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: return;
      // Every Unary and Binary op was handled above, by its partials.
#define NABLA_CASE_Leaf(name)
#define NABLA_CASE_Compare(name)
#define NABLA_CASE_Other(name)
#define NABLA_CASE_Unary(name) case Op::name:
#define NABLA_CASE_Binary(name) case Op::name:
#define NABLA_OP(name, spelling, arity, kind) NABLA_CASE_##kind(name)
#include "ir/ops.def"
#undef NABLA_OP
#undef NABLA_CASE_Leaf
#undef NABLA_CASE_Compare
#undef NABLA_CASE_Other
#undef NABLA_CASE_Unary
#undef NABLA_CASE_Binary
        NABLA_ASSERT(false, "elementwise ops are handled by their partials");
        return;
      case Op::Where:  // only the branch taken
        add(n->operand(1), c_.make(Op::Where, {a, g, k(0)}));
        add(n->operand(2), c_.make(Op::Where, {a, k(0), g}));
        return;
      // --- tensor operations
      case Op::MatMul: matmul(a, b, g); return;
      case Op::Outer:  // u v^T: g v, g^T u
        add(a, c_.make(Op::MatMul, {g, b}));
        add(b, c_.make(Op::MatMul, {a, g}));
        return;
      case Op::Transpose: add(a, c_.make(Op::Transpose, {g})); return;
      case Op::Sum: add(a, expand(g, a, n->attr())); return;
      case Op::Mean: {
        const int64_t count = a->shape().numel() / std::max<int64_t>(1, n->shape().numel());
        add(a, expand(c_.div(g, k(static_cast<double>(count))), a, n->attr()));
        return;
      }
      case Op::MaxReduce:
      case Op::MinReduce: {  // to the first extremal element
        const Op mask = n->op() == Op::MaxReduce ? Op::ArgmaxMask : Op::ArgminMask;
        add(a, mul(expand(g, a, n->attr()), c_.make(mask, {a}, n->attr())));
        return;
      }
      case Op::LogSumExp: {  // softmax(a) along the axis
        const Node* sm = a->shape().rank() == 1 || n->attr() != kAllAxes
                             ? c_.make(Op::Softmax, {a}, n->attr() == kAllAxes ? 0 : n->attr())
                             : c_.unary(Op::Exp, c_.sub(a, expand(n, a, kAllAxes)));
        add(a, mul(expand(g, a, n->attr()), sm));
        return;
      }
      case Op::Softmax: {  // y (g - sum(g y))
        const Node* s = c_.make(Op::Sum, {mul(g, n)}, n->attr());
        add(a, mul(n, c_.sub(g, expand(s, a, n->attr()))));
        return;
      }
      case Op::LogSoftmax: {  // g - softmax(a) sum(g)
        const Node* sm = c_.make(Op::Softmax, {a}, n->attr());
        const Node* s = a->shape().is_scalar() ? g : c_.make(Op::Sum, {g}, n->attr());
        add(a, c_.sub(g, mul(sm, expand(s, a, n->attr()))));
        return;
      }
      case Op::Maxout:  // to the first maximum of each group
        add(a, mul(c_.make(Op::MaxoutMask, {a}, n->attr()), c_.make(Op::Repeat, {g}, n->attr())));
        return;
      case Op::Broadcast:
        add(a, n->attr() == kAllAxes ? g : c_.make(Op::Sum, {g}, n->attr()));
        return;
      case Op::SumTo: add(a, c_.broadcast_to(g, a->shape())); return;
      case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: return;  // piecewise constant
      case Op::Repeat: add(a, c_.make(Op::GroupSum, {g}, n->attr())); return;  // group sums
      case Op::GroupSum: add(a, c_.make(Op::Repeat, {g}, n->attr())); return;
    }
  }

  // numpy.matmul, 1-D and 2-D.
  void matmul(const Node* a, const Node* b, const Node* g) {
    const int ra = a->shape().rank(), rb = b->shape().rank();
    if (ra == 2 && rb == 1) {         // [m,k] @ [k] -> [m]
      add(a, c_.make(Op::Outer, {g, b}));
      add(b, c_.make(Op::MatMul, {c_.make(Op::Transpose, {a}), g}));
    } else if (ra == 1 && rb == 2) {  // [k] @ [k,n] -> [n]
      add(a, c_.make(Op::MatMul, {b, g}));
      add(b, c_.make(Op::Outer, {a, g}));
    } else if (ra == 2 && rb == 2) {  // [m,k] @ [k,n]
      add(a, c_.make(Op::MatMul, {g, c_.make(Op::Transpose, {b})}));
      add(b, c_.make(Op::MatMul, {c_.make(Op::Transpose, {a}), g}));
    } else {                          // [k] @ [k] -> []
      add(a, mul(g, b));
      add(b, mul(g, a));
    }
  }

  Context& c_;
  std::unordered_map<const Node*, const Node*> adjoint_;
};

class Forward {
public:
  explicit Forward(Context& ctx) : c_(ctx) {}

  const Node* run(const Node* root, const std::unordered_map<const Node*, const Node*>& tangents) {
    for (const Node* n : reachable(std::span<const Node* const>(&root, 1))) {
      if (n->arity() == 0) {
        if (auto it = tangents.find(n); it != tangents.end()) tangent_[n] = it->second;
        continue;
      }
      if (const Node* t = push(n)) tangent_[n] = c_.broadcast_to(t, n->shape());
    }
    auto it = tangent_.find(root);
    return it != tangent_.end() ? it->second : c_.broadcast_to(c_.constant(0), root->shape());
  }

private:
  const Node* t(const Node* n) const {
    auto it = tangent_.find(n);
    return it == tangent_.end() ? nullptr : it->second;
  }
  const Node* sum(const Node* a, const Node* b) { return !a ? b : !b ? a : c_.add(a, b); }
  const Node* expand(const Node* x, const Node* like, int64_t axis) { return expand_along(c_, x, like, axis); }

  // The tangent of `n` from its operands' tangents (nullptr: zero).
  const Node* push(const Node* n) {
    const Node* a = n->operand(0);
    const Node* ta = t(a);
    const Node* tb = n->arity() > 1 ? t(n->operand(1)) : nullptr;
    const OpKind kind = op_kind(n->op());
    if (kind == OpKind::Compare) return nullptr;
    if (kind == OpKind::Unary || kind == OpKind::Binary) {  // sum of partial * tangent
      const std::vector<const Node*> p = elementwise_partials(c_, n);
      const Node* out = nullptr;
      for (size_t i = 0; i < p.size(); ++i)
        if (p[i] && t(n->operand(i))) out = sum(out, c_.mul(p[i], t(n->operand(i))));
      return out;
    }
    const int64_t attr = n->attr();
    switch (n->op()) {
      case Op::Where: {
        const Node* c = n->operand(0);
        const Node* t1 = t(n->operand(1));
        const Node* t2 = t(n->operand(2));
        const Node* k0 = c_.constant(0);
        return sum(t1 ? c_.make(Op::Where, {c, t1, k0}) : nullptr, t2 ? c_.make(Op::Where, {c, k0, t2}) : nullptr);
      }
      case Op::MatMul:
        return sum(ta ? c_.make(Op::MatMul, {ta, n->operand(1)}) : nullptr,
                   tb ? c_.make(Op::MatMul, {a, tb}) : nullptr);
      case Op::Outer:
        return sum(ta ? c_.make(Op::Outer, {ta, n->operand(1)}) : nullptr,
                   tb ? c_.make(Op::Outer, {a, tb}) : nullptr);
      // Linear operations act on the tangent as they act on the value.
      case Op::Transpose: case Op::Sum: case Op::Mean: case Op::Repeat: case Op::GroupSum:
        return ta ? c_.make(n->op(), {ta}, attr) : nullptr;
      case Op::Broadcast: case Op::SumTo:
        return ta ? c_.make(n->op(), {ta}, attr, n->shape()) : nullptr;
      case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: return nullptr;
      case Op::MaxReduce:
      case Op::MinReduce:  // the first extremal element moves
        if (!ta) return nullptr;
        return c_.make(Op::Sum, {c_.mul(c_.make(n->op() == Op::MaxReduce ? Op::ArgmaxMask : Op::ArgminMask, {a}, attr), ta)}, attr);
      case Op::Maxout:
        if (!ta) return nullptr;
        return c_.make(Op::GroupSum, {c_.mul(c_.make(Op::MaxoutMask, {a}, attr), ta)}, attr);
      case Op::LogSumExp: {  // sum(softmax(a) ta)
        if (!ta) return nullptr;
        const Node* w = c_.unary(Op::Exp, c_.sub(a, expand(n, a, attr)));
        return c_.make(Op::Sum, {c_.mul(w, ta)}, attr);
      }
      case Op::Softmax: {  // y (ta - sum(y ta))
        if (!ta) return nullptr;
        const Node* s = c_.make(Op::Sum, {c_.mul(n, ta)}, attr);
        return c_.mul(n, c_.sub(ta, expand(s, a, attr)));
      }
      case Op::LogSoftmax: {  // ta - sum(softmax(a) ta)
        if (!ta) return nullptr;
        const Node* sm = c_.make(Op::Softmax, {a}, attr);
        return c_.sub(ta, expand(c_.make(Op::Sum, {c_.mul(sm, ta)}, attr), a, attr));
      }
      // Leaves have no operands; Unary, Binary and Compare ops were handled above.
      case Op::Constant: case Op::Var:
      case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
      case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
      case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
      case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
      case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
        break;
    }
    NABLA_ASSERT(false, "forward mode: op not handled");
    return nullptr;
  }

  Context& c_;
  std::unordered_map<const Node*, const Node*> tangent_;
};

}  // namespace

const Node* jvp(Context& ctx, const Node* root,
                const std::unordered_map<const Node*, const Node*>& tangents) {
  return Forward(ctx).run(root, tangents);
}

std::vector<const Node*> hvp(Context& ctx, const Node* root, std::span<const Node* const> wrt,
                             std::span<const Node* const> directions) {
  NABLA_ASSERT(wrt.size() == directions.size(), "hvp: one direction per variable");
  const std::vector<const Node*> g = gradient(ctx, root, wrt);
  const Node* dot = ctx.constant(0);
  for (size_t i = 0; i < g.size(); ++i)
    dot = ctx.add(dot, ctx.make(Op::Sum, {ctx.mul(g[i], directions[i])}));
  return gradient(ctx, dot, wrt);
}

std::vector<const Node*> gradient(Context& ctx, const Node* root, std::span<const Node* const> wrt) {
  return Reverse(ctx).run(root, wrt);
}

}  // namespace nabla::ir
