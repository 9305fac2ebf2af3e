#include "ir/node.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ir/assert.h"
#include "ir/interpret.h"

namespace nabla::ir {

namespace {
struct OpInfo {
  const char* name;
  const char* spelling;
  int arity;
  OpKind kind;
};
constexpr OpInfo kOps[] = {
#define NABLA_OP(name, spelling, arity, kind) {#name, spelling, arity, OpKind::kind},
#include "ir/ops.def"
#undef NABLA_OP
};

size_t mix(size_t h, size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }
}  // namespace

const char* op_name(Op op) { return kOps[static_cast<size_t>(op)].name; }
const char* op_spelling(Op op) { return kOps[static_cast<size_t>(op)].spelling; }
int op_arity(Op op) { return kOps[static_cast<size_t>(op)].arity; }
OpKind op_kind(Op op) { return kOps[static_cast<size_t>(op)].kind; }

bool is_elementwise(Op op) {
  const OpKind k = op_kind(op);
  return k == OpKind::Unary || k == OpKind::Binary || k == OpKind::Compare || op == Op::Where;
}

bool is_commutative(Op op) {
  return op == Op::Add || op == Op::Mul || op == Op::Max || op == Op::Min || op == Op::Eq ||
         op == Op::Ne;
}

const char* dtype_name(DType t) { return t == DType::F32 ? "f32" : "f64"; }

bool Context::Equal::operator()(const Node* a, const Node* b) const {
  if (a->op_ != b->op_ || a->attr_ != b->attr_ || a->shape_ != b->shape_ ||
      a->operands_ != b->operands_)
    return false;
  if (a->op_ == Op::Constant) return std::memcmp(&a->value_, &b->value_, sizeof(double)) == 0;
  if (a->op_ == Op::Var)
    return a->var_kind_ == b->var_kind_ && a->var_index_ == b->var_index_ && a->name_ == b->name_;
  return true;
}

const Node* Context::intern(Node&& n) {
  size_t h = mix(static_cast<size_t>(n.op_), static_cast<size_t>(n.attr_));
  for (const Node* o : n.operands_) h = mix(h, o->id_);
  for (int64_t d : n.shape_.dims()) h = mix(h, static_cast<size_t>(d));
  uint64_t bits;
  std::memcpy(&bits, &n.value_, sizeof bits);
  h = mix(h, bits);
  if (n.op_ == Op::Var) h = mix(mix(h, static_cast<size_t>(n.var_kind_)), std::hash<std::string>{}(n.name_));
  n.hash_ = h;
  if (auto it = table_.find(&n); it != table_.end()) return *it;
  n.id_ = static_cast<uint32_t>(arena_.size());
  for (const Node* o : n.operands_) n.depth_ = std::max(n.depth_, o->depth_ + 1);
  arena_.push_back(std::move(n));
  const Node* stored = &arena_.back();
  table_.insert(stored);
  return stored;
}

const Node* Context::constant(double v) {
  if (v == 0) v = 0.0;  // one zero: -0.0 and 0.0 intern alike
  if (std::isnan(v)) v = std::numeric_limits<double>::quiet_NaN();  // one NaN
  Node n;
  n.op_ = Op::Constant;
  n.value_ = v;
  return intern(std::move(n));
}

const Node* Context::var(VarKind kind, int index, const std::string& name, const Shape& shape,
                         double value) {
  Node n;
  n.op_ = Op::Var;
  n.var_kind_ = kind;
  n.var_index_ = index;
  n.name_ = name;
  n.shape_ = shape;
  n.value_ = value;
  return intern(std::move(n));
}

Shape Context::infer_shape(Op op, const std::vector<const Node*>& ops, int64_t attr) const {
  // The rules are ir/shape.h's, which sema also applies (with messages for
  // users); here a failure is an internal error.
  auto verdict = [](const ShapeResult& r, const char* what) {
    NABLA_ASSERT(r.shape.has_value(), std::string(what) + ": " + r.error);
    return *r.shape;
  };
  switch (op_kind(op)) {
    case OpKind::Leaf: NABLA_ASSERT(false, "leaves are made by constant() and var()");
    case OpKind::Unary: return ops[0]->shape();
    case OpKind::Binary:
    case OpKind::Compare: return verdict(check_broadcast(ops[0]->shape(), ops[1]->shape()), op_name(op));
    case OpKind::Other: break;
  }
  switch (op) {
    case Op::Where:
      return verdict(check_broadcast(verdict(check_broadcast(ops[0]->shape(), ops[1]->shape()), "where"),
                                     ops[2]->shape()),
                     "where");
    case Op::MatMul: return verdict(check_matmul(ops[0]->shape(), ops[1]->shape()), "matmul");
    case Op::Outer: {
      auto s = outer_shape(ops[0]->shape(), ops[1]->shape());
      NABLA_ASSERT(s.has_value(), "outer takes vectors");
      return *s;
    }
    case Op::Transpose: return transposed(ops[0]->shape());
    case Op::Sum:
    case Op::Mean:
    case Op::MaxReduce:
    case Op::MinReduce:
    case Op::LogSumExp:
      NABLA_ASSERT(attr == kAllAxes || (attr >= 0 && attr < ops[0]->shape().rank()), "reduction axis out of range");
      return reduce_shape(ops[0]->shape(), attr == kAllAxes ? std::nullopt : std::optional<int64_t>(attr));
    case Op::Softmax:
    case Op::LogSoftmax:
    case Op::ArgmaxMask:
    case Op::ArgminMask: return ops[0]->shape();
    case Op::MaxoutMask:
      NABLA_ASSERT(attr > 0, "maxout_mask: a group size of at least 1");
      verdict(check_groups(ops[0]->shape(), attr), "maxout_mask");
      return ops[0]->shape();
    case Op::Maxout:
    case Op::GroupSum:
      NABLA_ASSERT(attr > 0, std::string(op_name(op)) + ": a group size of at least 1");
      return verdict(check_groups(ops[0]->shape(), attr), op_name(op));
    case Op::Repeat:
      NABLA_ASSERT(attr > 0, "repeat: a count of at least 1");
      return verdict(check_repeat(ops[0]->shape(), attr), "repeat");
    // Leaves, Unary, Binary and Compare ops were handled above by their kind;
    // broadcast and sum_to are given their shape.
    case Op::Constant: case Op::Var:
    case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
    case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
    case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
    case Op::Broadcast: case Op::SumTo:
      break;
  }
  NABLA_ASSERT(false, "shape rule missing");
  return {};
}

const Node* Context::make(Op op, std::vector<const Node*> operands, int64_t attr,
                          const Shape& shape) {
  NABLA_ASSERT(static_cast<int>(operands.size()) == op_arity(op), "wrong number of operands");
  // Constant folding: elementwise operations on scalar constants.
  if (is_elementwise(op) &&
      std::all_of(operands.begin(), operands.end(), [](const Node* o) { return o->is_constant(); })) {
    double args[3] = {0, 0, 0};
    for (size_t i = 0; i < operands.size(); ++i) args[i] = operands[i]->value();
    return constant(scalar_op(op, args[0], args[1], args[2]));
  }
  if (is_commutative(op)) {
    // A constant goes first in products (2 * x) and last elsewhere (x + 1).
    // Other operands keep their order: the simplifier's collect rules sort
    // sums and products, and keeping chains left-nested keeps them readable.
    const bool first = op == Op::Mul;
    if (operands[first ? 1 : 0]->is_constant() && !operands[first ? 0 : 1]->is_constant())
      std::swap(operands[0], operands[1]);
  }
  // One spelling per meaning: reducing the only axis of a vector is reducing
  // all axes; broadcasting a scalar needs no axis.
  switch (op) {
    case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
    case Op::ArgmaxMask: case Op::ArgminMask:
      if (operands[0]->shape().rank() == 1 && attr == 0) attr = kAllAxes;
      break;
    case Op::Broadcast:
      if (operands[0]->shape().is_scalar()) attr = kAllAxes;
      break;
    // The others keep their attribute.
    case Op::Constant: case Op::Var:
    case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
    case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
    case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
    case Op::Where: case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Softmax: case Op::LogSoftmax:
    case Op::Maxout: case Op::SumTo: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
      break;
  }
  Node n;
  n.op_ = op;
  n.attr_ = attr;
  n.shape_ = (op == Op::Broadcast || op == Op::SumTo) ? shape : infer_shape(op, operands, attr);
  n.operands_ = std::move(operands);
  return intern(std::move(n));
}

const Node* Context::broadcast_to(const Node* a, const Shape& shape) {
  if (a->shape() == shape) return a;
  NABLA_ASSERT(broadcasts_to(a->shape(), shape), "broadcast_to: shapes do not broadcast");
  return make(Op::Broadcast, {a}, kAllAxes, shape);
}

const Node* Context::sum_to(const Node* a, const Shape& shape) {
  if (a->shape() == shape) return a;
  NABLA_ASSERT(broadcasts_to(shape, a->shape()), "sum_to: not a broadcast shape");
  // Spelled as sums where the language has them: to a scalar, sum(x); when
  // only leading axes go, sum(x, axis=0) once per axis.
  if (shape.is_scalar()) return make(Op::Sum, {a});
  const int extra = a->shape().rank() - shape.rank();
  bool leading_only = true;
  for (int i = 0; i < shape.rank(); ++i) leading_only = leading_only && shape[i] == a->shape()[i + extra];
  if (leading_only) {
    for (int i = 0; i < extra; ++i) a = make(Op::Sum, {a}, 0);
    return a;
  }
  return make(Op::SumTo, {a}, kAllAxes, shape);
}

std::vector<const Node*> reachable(std::span<const Node* const> roots) {
  std::vector<const Node*> out, stack(roots.begin(), roots.end());
  std::unordered_set<const Node*> seen;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    out.push_back(n);
    for (const Node* o : n->operands()) stack.push_back(o);
  }
  std::sort(out.begin(), out.end(), [](const Node* a, const Node* b) { return a->id() < b->id(); });
  return out;
}

}  // namespace nabla::ir
