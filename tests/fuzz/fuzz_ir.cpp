#include "fuzz_ir.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace nabla::fuzz {

using ir::Node;
using ir::Op;

const std::vector<Shape>& shape_table() {
  static const std::vector<Shape> shapes{{}, {2}, {3}, {6}, {2, 2}, {2, 3}, {3, 2}};
  return shapes;
}

// ---------------------------------------------------------------------------
// ExprGen

ExprGen::ExprGen(ir::Context& ctx, ByteReader& in, std::vector<const Node*> vars, GenLimits limits)
    : c_(ctx), in_(in), vars_(std::move(vars)), limits_(limits) {}

Shape ExprGen::shape() {
  if (!limits_.tensors) return {};
  const auto& t = shape_table();
  return t[static_cast<size_t>(in_.pick(static_cast<int>(t.size())))];
}

const Node* ExprGen::constant() {
  // Exact and inexact (0.1, 1e-3) values, large and small ones.
  static constexpr double kConstants[] = {0, 1, -1, 2, 0.5, -2, 3, -0.5, 0.1, 1.5, 10, -3, 0.25, 100, 1e-3, 4};
  const uint8_t b = in_.byte();
  if (b < 240) return c_.constant(kConstants[b % 16]);
  return c_.constant((static_cast<int>(in_.byte()) - 128) / 16.0);
}

Shape ExprGen::operand_shape(const Shape& s) {
  switch (in_.pick(3)) {
    case 0: return s;
    case 1: return {};
    default: return s.rank() == 2 ? Shape{s[1]} : s;
  }
}

const Node* ExprGen::gen(const Shape& s, int depth) {
  if (depth <= 0 || in_.exhausted() || made_ >= limits_.max_nodes) return leaf(s);
  ++made_;
  const Node* n = nullptr;
  switch (in_.pick(12)) {
    case 0: n = leaf(s); break;
    case 1: case 2: case 3: n = elementwise(s, depth); break;
    case 4: case 5: n = pow_or_branch(s, depth); break;
    case 6: case 7: n = limits_.tensors ? reshaping(s, depth) : elementwise(s, depth); break;
    case 8: n = pattern(s, depth); break;
    case 9: n = limits_.tensors ? tensor_pattern(s, depth) : pattern(s, depth); break;
    default: n = reuse(s, depth); break;
  }
  pool_.push_back(n);
  return n;
}

// A var of shape `s`, a constant, or a scalar var broadcast to `s`.
const Node* ExprGen::leaf(const Shape& s) {
  std::vector<const Node*> same, scalars;
  for (const Node* v : vars_) {
    if (v->shape() == s) same.push_back(v);
    if (v->shape().is_scalar()) scalars.push_back(v);
  }
  const int k = in_.pick(static_cast<int>(same.size()) + 2);
  if (k < static_cast<int>(same.size())) return same[static_cast<size_t>(k)];
  if (k == static_cast<int>(same.size()) || scalars.empty()) return c_.broadcast_to(constant(), s);
  return c_.broadcast_to(scalars[static_cast<size_t>(in_.pick(static_cast<int>(scalars.size())))], s);
}

// Every unary op; every binary and comparison op, operands broadcasting.
const Node* ExprGen::elementwise(const Shape& s, int depth) {
  static constexpr Op kUnary[] = {Op::Neg, Op::Exp, Op::Log, Op::Sqrt, Op::Abs, Op::Sign, Op::Sin,
                                  Op::Cos, Op::Erf, Op::Tanh, Op::Sigmoid, Op::Softplus, Op::Relu,
                                  Op::HardSigmoid, Op::HardTanh, Op::Gelu, Op::GeluTanh, Op::GeluSigmoid};
  static constexpr Op kBinary[] = {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::LeakyRelu,
                                   Op::Elu, Op::Swish, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne};
  constexpr int kUnaryCount = sizeof kUnary / sizeof kUnary[0];
  constexpr int kBinaryCount = sizeof kBinary / sizeof kBinary[0];
  const int k = in_.pick(kUnaryCount + kBinaryCount);
  if (k < kUnaryCount) return c_.unary(kUnary[k], gen(s, depth - 1));
  const Op op = kBinary[k - kUnaryCount];
  const Node* a = gen(s, depth - 1);
  // leaky_relu, elu and swish take a parameter: mostly a constant.
  const bool parameter = op == Op::LeakyRelu || op == Op::Elu || op == Op::Swish;
  const Node* b = parameter && in_.pick(4) != 0 ? constant() : gen(operand_shape(s), depth - 1);
  if (!parameter && in_.pick(2) == 1) std::swap(a, b);
  return c_.binary(op, a, b);
}

// Bytes are consumed in a fixed order (operands first to last, never inside
// one call's arguments, whose order C++ leaves open), so an input decodes the
// same under every compiler.
const Node* ExprGen::pow_or_branch(const Shape& s, int depth) {
  static constexpr double kExponents[] = {2, 3, 0.5, -1, 1.5, 0, -2, 1};
  static constexpr Op kCompare[] = {Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne};
  const int choice = in_.pick(4);
  if (choice < 2) {
    const Node* base = gen(s, depth - 1);
    const Node* exponent = choice == 0 ? c_.constant(kExponents[in_.pick(8)]) : gen(operand_shape(s), depth - 1);
    return c_.pow(base, exponent);
  }
  if (choice == 2) {
    const Op op = kCompare[in_.pick(6)];
    const Shape cs = operand_shape(s);
    const Node* a = gen(cs, depth - 1);
    const Node* cond = c_.binary(op, a, gen(operand_shape(cs), depth - 1));
    return c_.make(Op::Where, {cond, gen(s, depth - 1), gen(operand_shape(s), depth - 1)});
  }
  // A condition that is any value (nonzero selects the first branch).
  return c_.make(Op::Where, {gen(operand_shape(s), depth - 1), gen(operand_shape(s), depth - 1), gen(s, depth - 1)});
}

// Ops that change the shape, picked among those that give `s`.
const Node* ExprGen::reshaping(const Shape& s, int depth) {
  const Node* n = nullptr;
  switch (in_.pick(4)) {
    case 0: n = reduction(s, depth); break;
    case 1: n = product(s, depth); break;
    case 2: n = along_axis(s, depth); break;
    default: n = broadcasting(s, depth); break;
  }
  return n ? n : elementwise(s, depth);
}

// Reductions over all axes or one; maxout and group sums; repeat.
const Node* ExprGen::reduction(const Shape& s, int depth) {
  struct Source {
    Shape from;
    int64_t attr;  // axis, or group size (Repeat: a negative count of copies)
  };
  std::vector<Source> sources;
  for (const Shape& t : shape_table()) {
    if (s.is_scalar() && !t.is_scalar()) sources.push_back({t, ir::kAllAxes});
    for (int axis = 0; axis < t.rank() && t.rank() == 2; ++axis)
      if (remove_axis(t, axis) == s) sources.push_back({t, axis});
    if (s.is_scalar() || t.rank() != s.rank() || (s.rank() == 2 && s[0] != t[0])) continue;
    const int64_t last = s[s.rank() - 1], from = t[t.rank() - 1];
    if (from > last && from % last == 0) sources.push_back({t, from / last});
    if (last > from && last % from == 0) sources.push_back({t, -(last / from)});
  }
  if (sources.empty()) return nullptr;
  const Source& src = sources[static_cast<size_t>(in_.pick(static_cast<int>(sources.size())))];
  const Node* a = gen(src.from, depth - 1);
  if (src.attr < 0 && src.attr != ir::kAllAxes) return c_.make(Op::Repeat, {a}, -src.attr);
  if (src.from.rank() == s.rank()) return c_.make(in_.pick(2) ? Op::Maxout : Op::GroupSum, {a}, src.attr);
  static constexpr Op kReduce[] = {Op::Sum, Op::Mean, Op::MaxReduce, Op::MinReduce, Op::LogSumExp};
  return c_.make(kReduce[in_.pick(5)], {a}, src.attr);
}

// Matrix products in every 1-D/2-D form, outer products, transposes.
const Node* ExprGen::product(const Shape& s, int depth) {
  std::vector<std::pair<Shape, Shape>> matmuls;
  for (const Shape& a : shape_table())
    for (const Shape& b : shape_table())
      if (!a.is_scalar() && !b.is_scalar() && matmul_shape(a, b) == s) matmuls.emplace_back(a, b);
  const int choice = in_.pick(3);
  if (s.rank() == 2 && choice == 1)
    return c_.make(Op::Outer, {gen(Shape{s[0]}, depth - 1), gen(Shape{s[1]}, depth - 1)});
  if (s.rank() == 2 && choice == 2) return c_.make(Op::Transpose, {gen(transposed(s), depth - 1)});
  if (matmuls.empty()) return nullptr;
  const auto& [a, b] = matmuls[static_cast<size_t>(in_.pick(static_cast<int>(matmuls.size())))];
  return c_.make(Op::MatMul, {gen(a, depth - 1), gen(b, depth - 1)});
}

// Softmax and log_softmax along an axis; argmax/argmin and maxout masks.
const Node* ExprGen::along_axis(const Shape& s, int depth) {
  if (s.is_scalar()) return nullptr;
  const Node* a = gen(s, depth - 1);
  const int64_t axis = in_.pick(s.rank());
  switch (in_.pick(4)) {
    case 0: return c_.make(Op::Softmax, {a}, axis);
    case 1: return c_.make(Op::LogSoftmax, {a}, axis);
    case 2: {
      const Op op = in_.pick(2) ? Op::ArgmaxMask : Op::ArgminMask;
      return c_.make(op, {a}, in_.pick(3) ? axis : ir::kAllAxes);
    }
    default: {
      const int64_t last = s[s.rank() - 1];
      int64_t k = 1 + in_.pick(static_cast<int>(last));
      while (last % k != 0) --k;
      return c_.make(Op::MaxoutMask, {a}, k);
    }
  }
}

// NumPy and new-axis broadcasts to `s`; sums of broadcast axes down to `s`.
const Node* ExprGen::broadcasting(const Shape& s, int depth) {
  std::vector<Shape> wider, narrower;
  for (const Shape& t : shape_table()) {
    if (t == s) continue;
    if (broadcast(t, s) == s) narrower.push_back(t);
    if (broadcast(s, t) == t) wider.push_back(t);
  }
  const int choice = in_.pick(3);
  if (choice == 0 && !wider.empty()) {
    const Shape& t = wider[static_cast<size_t>(in_.pick(static_cast<int>(wider.size())))];
    const Node* a = gen(t, depth - 1);
    return in_.pick(2) ? c_.make(Op::SumTo, {a}, ir::kAllAxes, s) : c_.sum_to(a, s);
  }
  if (choice == 1 && s.rank() > 0) {
    const int axis = in_.pick(s.rank());
    return c_.make(Op::Broadcast, {gen(remove_axis(s, axis), depth - 1)}, axis, s);
  }
  if (narrower.empty()) return nullptr;
  const Shape& t = narrower[static_cast<size_t>(in_.pick(static_cast<int>(narrower.size())))];
  return c_.broadcast_to(gen(t, depth - 1), s);
}

// The elementwise forms the simplifier's rules look for.
const Node* ExprGen::pattern(const Shape& s, int depth) {
  const Node* e = gen(s, depth - 1);
  const Node* one = c_.constant(1);
  auto other = [&] { return gen(operand_shape(s), depth - 1); };
  auto sig = [&](const Node* a) { return c_.unary(Op::Sigmoid, a); };
  auto softplus = [&](const Node* a) { return c_.unary(Op::Softplus, a); };
  auto log = [&](const Node* a) { return c_.unary(Op::Log, a); };
  auto exp = [&](const Node* a) { return c_.unary(Op::Exp, a); };
  switch (in_.pick(17)) {
    case 0: return c_.div(one, c_.add(one, exp(c_.neg(e))));
    case 1: return log(c_.add(one, exp(e)));
    case 2: return log(sig(e));
    case 3: return log(c_.sub(one, sig(e)));
    case 4: return c_.mul(e, sig(in_.pick(2) ? e : c_.mul(constant(), e)));
    case 5: {  // binary cross-entropy of sigmoid(e) with a target y
      const Node *y = other(), *p = sig(e);
      return c_.neg(c_.add(c_.mul(y, log(p)), c_.mul(c_.sub(one, y), log(c_.sub(one, p)))));
    }
    case 6: return c_.div(exp(e), c_.add(exp(e), one));
    case 7: return c_.sub(c_.add(c_.mul(c_.constant(3), e), other()), e);
    case 8: return c_.div(c_.mul(e, other()), e);
    case 9: return exp(log(e));
    case 10: return log(exp(e));
    case 11: {
      const Node* k = constant();
      return c_.add(c_.mul(k, sig(e)), c_.mul(k, sig(c_.neg(e))));
    }
    case 12: return c_.sub(softplus(e), softplus(c_.neg(e)));
    case 13: {
      const Node* y = other();
      return c_.add(c_.mul(c_.sub(one, y), softplus(e)), c_.mul(y, softplus(c_.neg(e))));
    }
    case 14: return c_.pow(c_.add(c_.unary(Op::Abs, e), c_.constant(0.5)), other());
    case 15: return c_.make(Op::Where, {in_.pick(2) ? constant() : other(), e, in_.pick(2) ? e : other()});
    default: return c_.mul(c_.broadcast_to(gen({}, depth - 1), s), e);
  }
}

// The tensor forms the rules look for: log(softmax), A @ x + A @ y,
// outer(u, x) + outer(v, x), transposes that cancel, sums of scaled terms.
const Node* ExprGen::tensor_pattern(const Shape& s, int depth) {
  const int choice = in_.pick(4);
  if (s.is_scalar()) {
    const Shape t = shape_table()[static_cast<size_t>(1 + in_.pick(static_cast<int>(shape_table().size()) - 1))];
    const Node* a = gen(t, depth - 1);
    switch (choice) {
      case 0: return c_.make(Op::Sum, {c_.mul(gen({}, depth - 1), a)});
      case 1: return c_.make(Op::Sum, {c_.neg(a)});
      default: {  // cross-entropy with a target
        const Node* log_p = c_.unary(Op::Log, c_.make(Op::Softmax, {gen(t, depth - 1)}, t.rank() - 1));
        return c_.neg(c_.make(Op::Sum, {c_.mul(a, log_p)}));
      }
    }
  }
  const int64_t axis = in_.pick(s.rank());
  if (choice == 0) return c_.unary(Op::Log, c_.make(Op::Softmax, {gen(s, depth - 1)}, axis));
  if (choice == 1) return c_.unary(Op::Exp, c_.make(Op::LogSoftmax, {gen(s, depth - 1)}, axis));
  if (s.rank() == 2 && choice == 2) {
    const Node* m = c_.make(Op::Transpose, {gen(s, depth - 1)});
    return c_.make(Op::Transpose, {in_.pick(2) ? m : c_.make(Op::Transpose, {c_.make(Op::Transpose, {m})})});
  }
  // A shared factor: A @ x +- A @ y, x @ A +- y @ A, outer(u, x) +- outer(v, x).
  std::vector<std::pair<Shape, Shape>> forms;
  for (const Shape& a : shape_table())
    for (const Shape& b : shape_table())
      if (!a.is_scalar() && !b.is_scalar() && matmul_shape(a, b) == s) forms.emplace_back(a, b);
  const Op op = s.rank() == 2 && (forms.empty() || in_.pick(2)) ? Op::Outer : Op::MatMul;
  if (op == Op::Outer) forms = {{Shape{s[0]}, Shape{s[1]}}};
  if (forms.empty()) return pattern(s, depth);
  const auto& [sa, sb] = forms[static_cast<size_t>(in_.pick(static_cast<int>(forms.size())))];
  const bool left = in_.pick(2);
  const Node* shared = gen(left ? sa : sb, depth - 1);
  auto term = [&] {
    return left ? c_.make(op, {shared, gen(sb, depth - 1)}) : c_.make(op, {gen(sa, depth - 1), shared});
  };
  const Node* a = term();
  return in_.pick(2) ? c_.add(a, term()) : c_.sub(a, term());
}

// An earlier node of shape `s` (a shared subexpression), else a new one.
const Node* ExprGen::reuse(const Shape& s, int depth) {
  std::vector<const Node*> same;
  for (const Node* n : pool_)
    if (n->shape() == s) same.push_back(n);
  if (same.empty()) return elementwise(s, depth);
  return same[static_cast<size_t>(in_.pick(static_cast<int>(same.size())))];
}

// ---------------------------------------------------------------------------
// Points and domains

ir::VarValues values_of(const Point& p) {
  return [&p](const Node* v) {
    if (v->var_kind() == ir::VarKind::Const) return ir::Tensor::scalar(v->value());
    const auto it = p.find(v);
    if (it == p.end()) {
      std::fprintf(stderr, "fuzz: no value for var %s\n", v->name().c_str());
      std::abort();
    }
    return it->second;
  };
}

Point random_point(std::span<const Node* const> vars, std::mt19937& rng, double lo, double hi) {
  static constexpr double kSpecial[] = {0, 1, -1, 0.5, 2};
  std::uniform_real_distribution<double> uniform(lo, hi);
  Point p;
  for (const Node* v : vars) {
    ir::Tensor t = ir::Tensor::zeros(v->shape());
    for (double& d : t.data) d = rng() % 8 == 0 ? kSpecial[rng() % 5] : uniform(rng);
    p[v] = std::move(t);
  }
  return p;
}

namespace {

// a and b so close that rounding may order them either way.
bool ties(double a, double b, const DomainOptions& o) {
  return std::fabs(a - b) <= o.tie * (std::fabs(a) + std::fabs(b)) + o.tie_floor;
}

bool any_pair_ties(const ir::Tensor& t, const DomainOptions& o) {
  for (size_t i = 0; i < t.data.size(); ++i)
    for (size_t j = i + 1; j < t.data.size(); ++j)
      if (ties(t.data[i], t.data[j], o)) return true;
  return false;
}

// Whether the value of `n` may jump when its operands move by rounding: a
// comparison or sign at a tie, a `where` condition near zero, a mask whose
// maximum or minimum ties, a power with a computed exponent of a base <= 0.
bool near_discontinuity(const Node* n, const std::unordered_map<const Node*, const ir::Tensor*>& value_of,
                        const DomainOptions& o) {
  auto value = [&](size_t i) -> const ir::Tensor& { return *value_of.at(n->operand(i)); };
  auto any = [](const ir::Tensor& t, auto pred) { return std::any_of(t.data.begin(), t.data.end(), pred); };
  if (ir::op_kind(n->op()) == ir::OpKind::Compare) {  // any pair, whatever the broadcast pairs
    for (double a : value(0).data)
      if (any(value(1), [&](double b) { return ties(a, b, o); })) return true;
    return false;
  }
  switch (n->op()) {
    case Op::Sign: return any(value(0), [&](double d) { return ties(d, 0, o); });
    case Op::Where:
      return ir::op_kind(n->operand(0)->op()) != ir::OpKind::Compare && !n->operand(0)->is_constant() &&
             any(value(0), [&](double d) { return ties(d, 0, o); });
    case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: return any_pair_ties(value(0), o);
    case Op::Pow: return !n->operand(1)->is_constant() && any(value(0), [&](double d) { return d <= o.tie_floor; });
    default: return false;
  }
}

}  // namespace

bool in_domain(std::span<const Node* const> roots, const Point& p, const DomainOptions& options) {
  const auto nodes = ir::reachable(roots);
  const auto values = ir::interpret(nodes, values_of(p));
  std::unordered_map<const Node*, const ir::Tensor*> value_of;
  for (size_t i = 0; i < nodes.size(); ++i) {
    value_of[nodes[i]] = &values[i];
    for (double d : values[i].data) {
      const double a = std::fabs(d);
      if (options.check_finite && (!(a <= options.huge) || (a != 0 && a < options.tiny))) return false;
    }
  }
  for (const Node* n : nodes)
    if (near_discontinuity(n, value_of, options)) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Sensitivity

namespace {

// Ops whose result is exactly representable (no rounding of their own).
bool exact(Op op) {
  switch (op) {
    case Op::Neg: case Op::Abs: case Op::Sign: case Op::Relu: case Op::HardTanh: case Op::Max: case Op::Min:
    case Op::Where: case Op::Transpose: case Op::MaxReduce: case Op::MinReduce: case Op::Maxout:
    case Op::Broadcast: case Op::Repeat: case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask:
      return true;
    default: return ir::op_kind(op) == ir::OpKind::Compare;
  }
}

}  // namespace

Sensitivity::Sensitivity(ir::Context& ctx, std::span<const Node* const> roots, double delta, uint32_t seed,
                         bool inexact_f32_constants, int copies)
    : roots_(roots.size()) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> jitter(-delta, delta);
  const auto nodes = ir::reachable(roots);
  for (int k = 0; k < copies; ++k) {
    std::unordered_map<const Node*, const Node*> copy;
    for (const Node* n : nodes) {
      const Node* m = n;
      if (n->is_constant()) {
        const double v = n->value();
        if (inexact_f32_constants && std::isfinite(v) && static_cast<double>(static_cast<float>(v)) != v)
          m = ctx.constant(v * (1 + jitter(rng)));
      } else if (n->op() != Op::Var) {
        std::vector<const Node*> ops;
        for (const Node* o : n->operands()) ops.push_back(copy.at(o));
        m = ctx.make(n->op(), std::move(ops), n->attr(), n->shape());
        if (!exact(n->op())) m = ctx.mul(ctx.constant(1 + jitter(rng)), m);
      }
      copy[n] = m;
    }
    for (const Node* r : roots) copies_.push_back(copy.at(r));
  }
}

std::vector<std::vector<double>> Sensitivity::spread(const Point& p, const std::vector<ir::Tensor>& values) const {
  const auto got = ir::interpret(copies_, values_of(p));
  std::vector<std::vector<double>> out(roots_);
  for (size_t r = 0; r < roots_; ++r) out[r].assign(values[r].data.size(), 0.0);
  for (size_t k = 0; k < got.size(); ++k) {
    const size_t r = k % roots_;
    for (size_t e = 0; e < out[r].size(); ++e) {
      const double d = std::fabs(got[k].data[e] - values[r].data[e]);
      out[r][e] = d <= std::numeric_limits<double>::max() ? std::max(out[r][e], d)
                                                           : std::numeric_limits<double>::infinity();
    }
  }
  return out;
}

bool agrees(double a, double b, double spread, const Tolerance& t) {
  if (!std::isfinite(spread)) return true;  // rounding alone can change everything here
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= t.rtol * std::max(std::fabs(a), std::fabs(b)) + t.atol + t.spread_factor * spread;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::vector<ir::Tensor> evaluate(std::span<const Node* const> roots, const Point& p) {
  return ir::interpret(roots, values_of(p));
}

}  // namespace nabla::fuzz
