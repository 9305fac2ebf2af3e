#include "ir/differentiate.h"

#include <cmath>
#include <numbers>
#include <unordered_map>

#include "ir/assert.h"

namespace nabla::ir {
namespace {

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
  const Node* cmp(Op op, const Node* a, double v) { return c_.binary(op, a, k(v)); }
  // `g` along `axis` put back to the shape of `like` (the adjoint of a reduction).
  const Node* expand(const Node* g, const Node* like, int64_t axis) {
    if (axis == kAllAxes) return c_.broadcast_to(g, like->shape());
    return c_.make(Op::Broadcast, {g}, axis, like->shape());
  }

  void push(const Node* n, const Node* g) {
    const Node* a = n->operand(0);
    const Node* b = n->arity() > 1 ? n->operand(1) : nullptr;
    switch (n->op()) {
      case Op::Constant:
      case Op::Var: return;
      // --- elementwise, one operand
      case Op::Neg: add(a, c_.neg(g)); return;                                   // -g
      case Op::Exp: add(a, mul(g, n)); return;                                   // exp' = exp
      case Op::Log: add(a, c_.div(g, a)); return;                                // 1/a
      case Op::Sqrt: add(a, c_.div(g, mul(k(2), n))); return;                     // 1/(2 sqrt a)
      case Op::Abs: add(a, mul(g, c_.unary(Op::Sign, a))); return;               // sign(a); 0 at 0
      case Op::Sign: return;                                                     // 0
      case Op::Sin: add(a, mul(g, c_.unary(Op::Cos, a))); return;                // cos
      case Op::Cos: add(a, c_.neg(mul(g, c_.unary(Op::Sin, a)))); return;        // -sin
      case Op::Erf:                                                              // 2/sqrt(pi) exp(-a^2)
        add(a, mul(g, mul(k(2 / std::sqrt(std::numbers::pi)),
                          c_.unary(Op::Exp, c_.neg(c_.pow(a, k(2)))))));
        return;
      case Op::Tanh: add(a, mul(g, c_.sub(k(1), c_.pow(n, k(2))))); return;      // 1 - tanh^2
      case Op::Sigmoid: add(a, mul(g, mul(n, c_.sub(k(1), n)))); return;         // s (1 - s)
      case Op::Softplus: add(a, mul(g, c_.unary(Op::Sigmoid, a))); return;       // sigmoid
      case Op::Relu: add(a, mul(g, cmp(Op::Gt, a, 0))); return;                  // a > 0
      case Op::HardSigmoid:                                                      // 0.25 on (-2, 2)
        add(a, mul(g, mul(k(0.25), mul(cmp(Op::Gt, a, -2), cmp(Op::Lt, a, 2)))));
        return;
      case Op::HardTanh: add(a, mul(g, mul(cmp(Op::Gt, a, -1), cmp(Op::Lt, a, 1)))); return;
      case Op::Gelu: {  // Phi(a) + a phi(a)
        const Node* phi = mul(k(1 / std::sqrt(2 * std::numbers::pi)),
                              c_.unary(Op::Exp, mul(k(-0.5), c_.pow(a, k(2)))));
        const Node* Phi = mul(k(0.5), c_.add(k(1), c_.unary(Op::Erf, mul(k(1 / std::numbers::sqrt2), a))));
        add(a, mul(g, c_.add(Phi, mul(a, phi))));
        return;
      }
      case Op::GeluTanh: {  // t = tanh(c (a + 0.044715 a^3)): 0.5 (1 + t) + 0.5 a (1 - t^2) c (1 + 3 0.044715 a^2)
        const double cc = std::sqrt(2 / std::numbers::pi);
        const Node* t = c_.unary(Op::Tanh, mul(k(cc), c_.add(a, mul(k(0.044715), c_.pow(a, k(3))))));
        const Node* du = mul(k(cc), c_.add(k(1), mul(k(3 * 0.044715), c_.pow(a, k(2)))));
        const Node* d = c_.add(mul(k(0.5), c_.add(k(1), t)),
                               mul(mul(k(0.5), a), mul(c_.sub(k(1), c_.pow(t, k(2))), du)));
        add(a, mul(g, d));
        return;
      }
      case Op::GeluSigmoid: {  // s = sigmoid(1.702 a): s + 1.702 a s (1 - s)
        const Node* s = c_.unary(Op::Sigmoid, mul(k(1.702), a));
        add(a, mul(g, c_.add(s, mul(mul(k(1.702), a), mul(s, c_.sub(k(1), s))))));
        return;
      }
      // --- elementwise, two operands
      case Op::Add: add(a, g); add(b, g); return;
      case Op::Sub: add(a, g); add(b, c_.neg(g)); return;
      case Op::Mul: add(a, mul(g, b)); add(b, mul(g, a)); return;
      case Op::Div: add(a, c_.div(g, b)); add(b, c_.neg(c_.div(mul(g, n), b))); return;  // -a/b^2 = -n/b
      case Op::Pow:  // b a^(b-1) (none for a constant b = 0);  n log(a), 0 where a = 0 (as PyTorch)
        if (b->is_constant()) {
          if (!b->is_constant(0)) add(a, mul(g, mul(b, c_.pow(a, c_.sub(b, k(1))))));
        } else {
          add(a, mul(g, mul(b, c_.pow(a, c_.sub(b, k(1))))));
        }
        if (!b->is_constant())
          add(b, mul(g, c_.make(Op::Where, {c_.binary(Op::Eq, a, k(0)), k(0),
                                            mul(n, c_.unary(Op::Log, a))})));
        return;
      case Op::Max:
      case Op::Min: {  // the larger (smaller) operand takes g; a tie splits it
        const Op wins = n->op() == Op::Max ? Op::Gt : Op::Lt;
        const Node* tie = mul(k(0.5), c_.binary(Op::Eq, a, b));
        add(a, mul(g, c_.add(c_.binary(wins, a, b), tie)));
        add(b, mul(g, c_.add(c_.binary(wins, b, a), tie)));
        return;
      }
      case Op::LeakyRelu:  // x > 0 ? 1 : gamma;  d/dgamma = x > 0 ? 0 : x
        add(a, mul(g, c_.make(Op::Where, {cmp(Op::Gt, a, 0), k(1), b})));
        add(b, mul(g, c_.make(Op::Where, {cmp(Op::Gt, a, 0), k(0), a})));
        return;
      case Op::Elu: {  // x > 0 ? 1 : gamma exp(x);  d/dgamma = x > 0 ? 0 : exp(x) - 1
        const Node* e = c_.unary(Op::Exp, a);
        add(a, mul(g, c_.make(Op::Where, {cmp(Op::Gt, a, 0), k(1), mul(b, e)})));
        add(b, mul(g, c_.make(Op::Where, {cmp(Op::Gt, a, 0), k(0), c_.sub(e, k(1))})));
        return;
      }
      case Op::Swish: {  // s = sigmoid(beta x): s + beta x s (1 - s);  d/dbeta = x^2 s (1 - s)
        const Node* s = c_.unary(Op::Sigmoid, mul(b, a));
        const Node* ds = mul(s, c_.sub(k(1), s));
        add(a, mul(g, c_.add(s, mul(mul(b, a), ds))));
        add(b, mul(g, mul(c_.pow(a, k(2)), ds)));
        return;
      }
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: return;
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

}  // namespace

std::vector<const Node*> gradient(Context& ctx, const Node* root, std::span<const Node* const> wrt) {
  return Reverse(ctx).run(root, wrt);
}

}  // namespace nabla::ir
