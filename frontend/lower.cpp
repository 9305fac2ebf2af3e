#include "frontend/lower.h"

#include <unordered_map>

#include "ir/assert.h"

namespace nabla {
namespace {

using ir::Op;
using ir::Node;

class Lowerer {
public:
  Lowerer(ir::Context& ctx, std::vector<const Node*> inputs, std::vector<const Node*> labels,
          std::vector<const Node*> params, std::vector<const Node*> consts)
      : ctx_(ctx), inputs_(std::move(inputs)), labels_(std::move(labels)),
        params_(std::move(params)), consts_(std::move(consts)) {}

  const Node* lower(const TExpr* e) {
    if (auto it = memo_.find(e); it != memo_.end()) return it->second;
    const Node* n = lower_uncached(*e);
    memo_.emplace(e, n);
    return n;
  }

private:
  const Node* arg(const TExpr& e, size_t i) { return lower(e.args[i]); }
  int64_t axis_attr(const TExpr& e) { return e.axis ? *e.axis : ir::kAllAxes; }

  const Node* reduce(Op op, const Node* x, int64_t axis) {
    if (x->shape().is_scalar()) return x;  // a scalar reduces to itself
    return ctx_.make(op, {x}, axis);
  }

  const Node* lower_uncached(const TExpr& e) {
    using K = TExpr::Kind;
    switch (e.kind) {
      case K::Number: return ctx_.constant(e.number);
      case K::Ref:
        switch (e.ref) {
          case RefKind::Input: return inputs_.at(static_cast<size_t>(e.index));
          case RefKind::Label: return labels_.at(static_cast<size_t>(e.index));
          case RefKind::Param: return params_.at(static_cast<size_t>(e.index));
          case RefKind::Const: return consts_.at(static_cast<size_t>(e.index));
          case RefKind::Let: return arg(e, 0);
        }
        break;
      case K::Unary: return ctx_.neg(arg(e, 0));
      case K::Transpose: return transpose(arg(e, 0));
      case K::Binary:
      case K::Compare: return binary(e.op, arg(e, 0), arg(e, 1));
      case K::Call: return call(e);
      case K::Error: break;
    }
    NABLA_ASSERT(false, "lowering an expression that failed to check");
    return nullptr;
  }

  const Node* binary(ast::Op op, const Node* a, const Node* b) {
    switch (op) {
      case ast::Op::Add: return ctx_.add(a, b);
      case ast::Op::Sub: return ctx_.sub(a, b);
      case ast::Op::Mul: return ctx_.mul(a, b);
      case ast::Op::Div: return ctx_.div(a, b);
      case ast::Op::MatMul: return ctx_.make(Op::MatMul, {a, b});
      case ast::Op::Pow: return ctx_.pow(a, b);
      case ast::Op::Lt: return ctx_.binary(Op::Lt, a, b);
      case ast::Op::Le: return ctx_.binary(Op::Le, a, b);
      case ast::Op::Gt: return ctx_.binary(Op::Gt, a, b);
      case ast::Op::Ge: return ctx_.binary(Op::Ge, a, b);
      case ast::Op::Eq: return ctx_.binary(Op::Eq, a, b);
      case ast::Op::Ne: return ctx_.binary(Op::Ne, a, b);
      case ast::Op::Neg:
      case ast::Op::Plus: break;
    }
    NABLA_ASSERT(false, "not a binary operator");
    return nullptr;
  }

  // A builtin call: the known functions are IR ops; losses and norms lower to
  // their definitions.
  const Node* call(const TExpr& e) {
    auto u = [&](Op op) { return ctx_.unary(op, arg(e, 0)); };
    auto b = [&](Op op) { return ctx_.binary(op, arg(e, 0), arg(e, 1)); };
    switch (e.fn) {
      case Builtin::Sigmoid: return u(Op::Sigmoid);
      case Builtin::Tanh: return u(Op::Tanh);
      case Builtin::HardSigmoid: return u(Op::HardSigmoid);
      case Builtin::HardTanh: return u(Op::HardTanh);
      case Builtin::Relu: return u(Op::Relu);
      case Builtin::LeakyRelu:
      case Builtin::Prelu: return b(Op::LeakyRelu);
      case Builtin::Elu: return b(Op::Elu);
      case Builtin::Softplus: return u(Op::Softplus);
      case Builtin::Swish: return b(Op::Swish);
      case Builtin::Gelu: return u(Op::Gelu);
      case Builtin::GeluTanh: return u(Op::GeluTanh);
      case Builtin::GeluSigmoid: return u(Op::GeluSigmoid);
      case Builtin::Maxout: return maxout(e);
      case Builtin::Softmax: return softmax(e, Op::Softmax);
      case Builtin::LogSoftmax: return softmax(e, Op::LogSoftmax);
      case Builtin::Exp: return u(Op::Exp);
      case Builtin::Log: return u(Op::Log);
      case Builtin::Sqrt: return u(Op::Sqrt);
      case Builtin::Abs: return u(Op::Abs);
      case Builtin::Sign: return u(Op::Sign);
      case Builtin::Sin: return u(Op::Sin);
      case Builtin::Cos: return u(Op::Cos);
      case Builtin::Erf: return u(Op::Erf);
      case Builtin::Where: return ctx_.make(Op::Where, {arg(e, 0), arg(e, 1), arg(e, 2)});
      case Builtin::Pow: return b(Op::Pow);
      case Builtin::Max: return e.args.size() == 2 ? b(Op::Max) : reduce(Op::MaxReduce, arg(e, 0), axis_attr(e));
      case Builtin::Min: return e.args.size() == 2 ? b(Op::Min) : reduce(Op::MinReduce, arg(e, 0), axis_attr(e));
      case Builtin::Sum: return reduce(Op::Sum, arg(e, 0), axis_attr(e));
      case Builtin::Mean: return reduce(Op::Mean, arg(e, 0), axis_attr(e));
      case Builtin::Logsumexp: return reduce(Op::LogSumExp, arg(e, 0), axis_attr(e));
      case Builtin::Dot: return dot(e);
      case Builtin::Outer: return outer(e);
      case Builtin::Transpose: return transpose(arg(e, 0));
      // nabla's extensions (the helpers derivatives print with).
      case Builtin::Broadcast: return broadcast(e);
      case Builtin::SumTo: return ctx_.sum_to(arg(e, 0), e.target);
      case Builtin::ArgmaxMask: return ctx_.make(Op::ArgmaxMask, {arg(e, 0)}, axis_attr(e));
      case Builtin::ArgminMask: return ctx_.make(Op::ArgminMask, {arg(e, 0)}, axis_attr(e));
      case Builtin::MaxoutMask: return ctx_.make(Op::MaxoutMask, {arg(e, 0)}, e.group);
      case Builtin::Repeat: return ctx_.make(Op::Repeat, {arg(e, 0)}, e.group);
      case Builtin::GroupSum: return ctx_.make(Op::GroupSum, {arg(e, 0)}, e.group);
      // Losses and norms: their definitions (docs/language.md).
      case Builtin::CrossEntropy: return cross_entropy(e);
      case Builtin::BinaryCrossEntropy: return binary_cross_entropy(e);
      case Builtin::Mse: return mse(e);
      case Builtin::Frobenius2: return sum_of_squares(arg(e, 0));                     // sum(W^2)
      case Builtin::Norm2: return ctx_.unary(Op::Sqrt, sum_of_squares(arg(e, 0)));  // sqrt(sum(v^2))
    }
    NABLA_ASSERT(false, "builtin not lowered");
    return nullptr;
  }

  // 0-D and 1-D tensors are their own transpose.
  const Node* transpose(const Node* a) { return a->shape().rank() < 2 ? a : ctx_.make(Op::Transpose, {a}); }

  // Groups of one: z itself.
  const Node* maxout(const TExpr& e) {
    const Node* z = arg(e, 0);
    return e.group == 1 ? z : ctx_.make(Op::Maxout, {z}, e.group);
  }

  // softmax and log_softmax; a scalar's only axis is all of it.
  const Node* softmax(const TExpr& e, Op op) {
    const Node* z = arg(e, 0);
    return ctx_.make(op, {z}, z->shape().is_scalar() ? ir::kAllAxes : axis_attr(e));
  }

  // Of scalars, dot and outer are products.
  const Node* dot(const TExpr& e) {
    const Node* x = arg(e, 0);
    const Node* y = arg(e, 1);
    return x->shape().is_scalar() ? ctx_.mul(x, y) : ctx_.make(Op::MatMul, {x, y});
  }

  const Node* outer(const TExpr& e) {
    const Node* x = arg(e, 0);
    const Node* y = arg(e, 1);
    if (x->shape().is_scalar() || y->shape().is_scalar()) return ctx_.mul(x, y);
    return ctx_.make(Op::Outer, {x, y});
  }

  // broadcast(x, shape) as NumPy aligns shapes; broadcast(x, shape, axis=K)
  // along a new axis K.
  const Node* broadcast(const TExpr& e) {
    const Node* x = arg(e, 0);
    if (!e.axis) return ctx_.broadcast_to(x, e.target);
    return ctx_.make(Op::Broadcast, {x}, *e.axis, e.target);
  }

  const Node* cross_entropy(const TExpr& e) {  // -sum(y * log(p))
    const Node* y = arg(e, 0);
    const Node* p = arg(e, 1);
    return ctx_.neg(reduce(Op::Sum, ctx_.mul(y, ctx_.unary(Op::Log, p)), ir::kAllAxes));
  }

  const Node* binary_cross_entropy(const TExpr& e) {  // -sum(y log(p) + (1 - y) log(1 - p))
    const Node* y = arg(e, 0);
    const Node* p = arg(e, 1);
    const Node* one = ctx_.constant(1);
    const Node* t = ctx_.add(ctx_.mul(y, ctx_.unary(Op::Log, p)),
                             ctx_.mul(ctx_.sub(one, y), ctx_.unary(Op::Log, ctx_.sub(one, p))));
    return ctx_.neg(reduce(Op::Sum, t, ir::kAllAxes));
  }

  const Node* mse(const TExpr& e) {  // mean((y - yhat)^2)
    const Node* d = ctx_.sub(arg(e, 0), arg(e, 1));
    return reduce(Op::Mean, ctx_.pow(d, ctx_.constant(2)), ir::kAllAxes);
  }

  const Node* sum_of_squares(const Node* x) { return reduce(Op::Sum, ctx_.pow(x, ctx_.constant(2)), ir::kAllAxes); }

  ir::Context& ctx_;
  std::vector<const Node*> inputs_, labels_, params_, consts_;
  std::unordered_map<const TExpr*, const Node*> memo_;
};

}  // namespace

LoweredModel lower_model(const CheckedModel& model, ir::Context& ctx) {
  LoweredModel out;
  for (size_t i = 0; i < model.inputs.size(); ++i)
    out.inputs.push_back(ctx.var(ir::VarKind::Input, static_cast<int>(i), model.inputs[i].name, model.inputs[i].shape));
  for (size_t i = 0; i < model.labels.size(); ++i)
    out.labels.push_back(ctx.var(ir::VarKind::Label, static_cast<int>(i), model.labels[i].name, model.labels[i].shape));
  for (const LabelDecl& l : model.labels) out.label_distribution.push_back(l.distribution);
  for (size_t i = 0; i < model.params.size(); ++i)
    out.params.push_back(ctx.var(ir::VarKind::Param, static_cast<int>(i), model.params[i].name, model.params[i].shape));
  for (size_t i = 0; i < model.consts.size(); ++i)
    out.consts.push_back(ctx.var(ir::VarKind::Const, static_cast<int>(i), model.consts[i].name, {},
                                 model.consts[i].value));
  Lowerer lowerer(ctx, out.inputs, out.labels, out.params, out.consts);
  for (const LetDecl& l : model.lets) out.lets.emplace_back(l.name, lowerer.lower(l.value));
  for (const OutputDecl& o : model.outputs) out.outputs.emplace_back(o.name, lowerer.lower(o.value));
  if (model.loss) out.loss = lowerer.lower(model.loss);
  return out;
}

LoweredExpr lower_expression(const CheckedExpr& expr, ir::Context& ctx,
                             const std::map<std::string, const ir::Node*>* vars) {
  LoweredExpr out;
  for (size_t i = 0; i < expr.vars.size(); ++i) {
    auto it = vars ? vars->find(expr.vars[i]) : std::map<std::string, const ir::Node*>::const_iterator{};
    out.vars.push_back(vars && it != vars->end()
                           ? it->second
                           : ctx.var(ir::VarKind::Input, static_cast<int>(i), expr.vars[i], {}));
  }
  Lowerer lowerer(ctx, out.vars, {}, {}, {});
  out.root = lowerer.lower(expr.root);
  return out;
}

}  // namespace nabla
