#include "frontend/const_eval.h"

#include <cmath>
#include <unordered_map>

#include "ir/scalar_math.h"

namespace nabla {

namespace {

using Memo = std::unordered_map<const TExpr*, double>;
double eval_node(const TExpr& e, const std::function<double(const TExpr&)>& ref_value, Memo& memo);

// Each node once: a DAG (a let or an inlined fn used twice) is evaluated in
// time linear in its nodes, not in the size of the tree it unfolds to.
double eval_memo(const TExpr& e, const std::function<double(const TExpr&)>& ref_value, Memo& memo) {
  if (auto it = memo.find(&e); it != memo.end()) return it->second;
  const double v = eval_node(e, ref_value, memo);
  memo.emplace(&e, v);
  return v;
}

double eval_node(const TExpr& e, const std::function<double(const TExpr&)>& ref_value, Memo& memo) {
  auto arg = [&](size_t i) { return eval_memo(*e.args[i], ref_value, memo); };
  using K = TExpr::Kind;
  using ast::Op;
  switch (e.kind) {
    case K::Number: return e.number;
    case K::Ref:
      if (e.ref == RefKind::Let) return arg(0);
      return ref_value(e);
    case K::Error: return std::nan("");
    case K::Transpose: return arg(0);
    case K::Unary: return -arg(0);
    case K::Compare: {
      const double a = arg(0), b = arg(1);
      bool holds = false;
      switch (e.op) {
        case Op::Lt: holds = a < b; break;
        case Op::Le: holds = a <= b; break;
        case Op::Gt: holds = a > b; break;
        case Op::Ge: holds = a >= b; break;
        case Op::Eq: holds = a == b; break;
        case Op::Ne: holds = a != b; break;
        default: break;
      }
      return holds ? 1.0 : 0.0;
    }
    case K::Binary: {
      const double a = arg(0), b = arg(1);
      switch (e.op) {
        case Op::Add: return a + b;
        case Op::Sub: return a - b;
        case Op::Mul: case Op::MatMul: return a * b;
        case Op::Div: return a / b;
        case Op::Pow: return std::pow(a, b);
        default: return std::nan("");
      }
    }
    case K::Call: break;
  }
  const size_t n = e.args.size();
  switch (e.fn) {
    case Builtin::Sigmoid: return scalar::sigmoid(arg(0));
    case Builtin::Tanh: return std::tanh(arg(0));
    case Builtin::HardSigmoid: return scalar::hard_sigmoid(arg(0));
    case Builtin::HardTanh: return scalar::hard_tanh(arg(0));
    case Builtin::Relu: return scalar::relu(arg(0));
    case Builtin::LeakyRelu: case Builtin::Prelu: return scalar::leaky_relu(arg(0), arg(1));
    case Builtin::Elu: return scalar::elu(arg(0), arg(1));
    case Builtin::Softplus: return scalar::softplus(arg(0));
    case Builtin::Swish: return scalar::swish(arg(0), arg(1));
    case Builtin::Gelu: return scalar::gelu(arg(0));
    case Builtin::GeluTanh: return scalar::gelu_tanh(arg(0));
    case Builtin::GeluSigmoid: return scalar::gelu_sigmoid(arg(0));
    case Builtin::Maxout: return arg(0);  // a scalar is one group of size 1
    case Builtin::Softmax: return std::isnan(arg(0)) ? std::nan("") : 1.0;
    case Builtin::LogSoftmax: return std::isnan(arg(0)) ? std::nan("") : 0.0;
    case Builtin::Exp: return std::exp(arg(0));
    case Builtin::Log: return std::log(arg(0));
    case Builtin::Sqrt: return std::sqrt(arg(0));
    case Builtin::Abs: return std::fabs(arg(0));
    case Builtin::Sign: return scalar::sign(arg(0));
    case Builtin::Sin: return std::sin(arg(0));
    case Builtin::Cos: return std::cos(arg(0));
    case Builtin::Erf: return std::erf(arg(0));
    case Builtin::Where: return arg(0) != 0 ? arg(1) : arg(2);
    case Builtin::Pow: return std::pow(arg(0), arg(1));
    case Builtin::Max: return n == 2 ? scalar::max2(arg(0), arg(1)) : arg(0);
    case Builtin::Min: return n == 2 ? scalar::min2(arg(0), arg(1)) : arg(0);
    case Builtin::Sum: case Builtin::Mean: case Builtin::Logsumexp: return arg(0);
    case Builtin::Dot: case Builtin::Outer: return arg(0) * arg(1);
    case Builtin::Transpose: return arg(0);
    case Builtin::CrossEntropy: return -(arg(0) * std::log(arg(1)));
    case Builtin::BinaryCrossEntropy: {
      const double y = arg(0), p = arg(1);
      return -(y * std::log(p) + (1 - y) * std::log(1 - p));
    }
    case Builtin::Mse: {
      const double d = arg(0) - arg(1);
      return d * d;
    }
    case Builtin::Frobenius2: {
      const double x = arg(0);
      return x * x;
    }
    case Builtin::Norm2: return std::fabs(arg(0));
    case Builtin::Broadcast: case Builtin::SumTo: case Builtin::Repeat: case Builtin::GroupSum:
      return arg(0);  // of a scalar, to a scalar
    case Builtin::ArgmaxMask: case Builtin::ArgminMask: case Builtin::MaxoutMask:
      return std::isnan(arg(0)) ? std::nan("") : 1.0;
  }
  return std::nan("");
}

}  // namespace

double eval_scalar(const TExpr& e, const std::function<double(const TExpr&)>& ref_value) {
  Memo memo;
  return eval_memo(e, ref_value, memo);
}

}  // namespace nabla
