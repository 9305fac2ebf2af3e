// Semantic analysis (sema.h): builtin calls, in three steps. The arguments are
// bound to the builtin's parameters (builtins.def: positional, then keyword;
// counts; defaults), then elaborated (tensors, integer constants, shape
// literals), then the call's shape follows from its shape rule, using the
// rules of ir/shape.h that the IR checks its nodes with.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "frontend/const_eval.h"
#include "frontend/sema_pass.h"
#include "ir/assert.h"

namespace nabla::detail {
namespace {

using ast::ExprKind;

// What a builtin takes, for an arity error: "1 argument", "1 to 2 arguments".
std::string argument_count(const BuiltinInfo& info) {
  if (info.rule == ShapeRule::MaxMin) return "one tensor (and axis=K) or two tensors";
  const int lo = info.required_count();
  const int hi = static_cast<int>(info.params.size());
  return lo == hi ? plural(lo, "argument") : std::to_string(lo) + " to " + plural(hi, "argument");
}

ShapeResult failure(std::string why) { return {std::nullopt, std::move(why)}; }

// Elementwise: the tensor arguments broadcast together.
ShapeResult elementwise_shape(const TExpr& call) {
  Shape s = call.args[0]->shape;
  for (size_t i = 1; i < call.args.size(); ++i) {
    const Shape& next = call.args[i]->shape;
    ShapeResult both = check_broadcast(s, next);
    if (!both.shape)
      return failure("arguments of shapes " + s.str() + " and " + next.str() + " do not broadcast (" +
                     both.error + ")");
    s = std::move(*both.shape);
  }
  return {s, ""};
}

// Along an axis (softmax, argmax_mask) or reducing it (sum, max): the axis must
// exist, and is normalized. A scalar's axis 0 (or -1) is no axis at all.
ShapeResult axis_shape(TExpr& call, ShapeRule rule) {
  const Shape& x = call.args[0]->shape;
  if (call.axis && x.is_scalar() && (*call.axis == 0 || *call.axis == -1)) {
    call.axis.reset();
  } else if (call.axis) {
    const std::optional<int> axis = normalize_axis(*call.axis, x.rank());
    if (!axis) return failure("axis " + std::to_string(*call.axis) + " is out of range for shape " + x.str());
    call.axis = *axis;
  }
  return {rule == ShapeRule::Reduce ? reduce_shape(x, call.axis) : x, ""};
}

// Groups of k along the last axis: maxout and group_sum keep one value of each,
// maxout_mask marks it, repeat makes k copies of every value.
ShapeResult group_shape(const TExpr& call, ShapeRule rule) {
  const Shape& x = call.args[0]->shape;
  const int64_t k = call.group;
  if (k < 1)
    return failure(std::string(rule == ShapeRule::Maxout ? "the group size " : "") +
                   "k must be a positive integer, not " + std::to_string(k));
  if (rule == ShapeRule::Repeat) return check_repeat(x, k);
  ShapeResult groups = check_groups(x, k);
  if (rule == ShapeRule::GroupMask && groups.shape) groups.shape = x;
  return groups;
}

// broadcast(x, shape[, axis=K]) and sum_to(x, shape): the shape literal, which
// x must broadcast to (along the new axis K, when given), or broadcast to x.
ShapeResult target_shape(TExpr& call, ShapeRule rule) {
  const Shape& x = call.args[0]->shape;
  const Shape& to = call.target;
  if (rule == ShapeRule::SumTo) {
    if (!broadcasts_to(to, x)) return failure(x.str() + " cannot be summed down to " + to.str());
  } else if (!call.axis) {
    if (!broadcasts_to(x, to)) return failure(x.str() + " does not broadcast to " + to.str());
  } else {
    const std::optional<int> axis = normalize_axis(*call.axis, to.rank());
    if (!axis || x.rank() != to.rank() - 1 || remove_axis(to, *axis) != x)
      return failure(x.str() + " does not broadcast to " + to.str() + " along a new axis " +
                     std::to_string(*call.axis));
    call.axis = *axis;
  }
  return {to, ""};
}

// The call's shape by its builtin's shape rule (builtins.h), or why it has none.
ShapeResult rule_shape(TExpr& call, ShapeRule rule) {
  const Shape& x = call.args[0]->shape;
  switch (rule) {
    case ShapeRule::Elementwise: return elementwise_shape(call);
    case ShapeRule::AlongAxis:
    case ShapeRule::Mask:
    case ShapeRule::Reduce: return axis_shape(call, rule);
    case ShapeRule::MaxMin:  // max(a, b) is elementwise, max(t[, axis=K]) a reduction
      if (call.args.size() == 1) return axis_shape(call, ShapeRule::Reduce);
      if (call.axis) return failure("axis= goes with one tensor, not two");
      return elementwise_shape(call);
    case ShapeRule::Maxout:
    case ShapeRule::GroupMask:
    case ShapeRule::Repeat: return group_shape(call, rule);
    case ShapeRule::Dot: {
      const Shape& y = call.args[1]->shape;
      if (x.rank() > 1 || x != y)
        return failure("takes two vectors of the same length, got " + x.str() + " and " + y.str());
      return {Shape{}, ""};
    }
    case ShapeRule::Outer: {
      const Shape& y = call.args[1]->shape;
      if (std::optional<Shape> outer = outer_shape(x, y)) return {*outer, ""};
      return failure("takes two vectors, got " + x.str() + " and " + y.str());
    }
    case ShapeRule::Transpose: return {transposed(x), ""};
    case ShapeRule::Loss: {  // the target and the prediction broadcast; the loss is a scalar
      const Shape& y = call.args[1]->shape;
      const ShapeResult both = check_broadcast(x, y);
      if (!both.shape)
        return failure("the target " + x.str() + " and the prediction " + y.str() + " do not broadcast (" +
                       both.error + ")");
      return {Shape{}, ""};
    }
    case ShapeRule::Norm: return {Shape{}, ""};
    case ShapeRule::BroadcastTo:
    case ShapeRule::SumTo: return target_shape(call, rule);
  }
  NABLA_ASSERT(false, "shape rule missing");
  return {};
}

}  // namespace

const TExpr* Sema::elab_builtin(const ast::Expr& e, const BuiltinInfo& info, const Env& env) {
  const std::optional<std::vector<const ast::Arg*>> given = bind_arguments(e, info, env);
  if (!given) return error_node(e.range);
  TExpr* t = node(K::Call, {}, e.range);
  t->fn = info.id;
  if (!elab_arguments(*t, info, *given, env)) return error_node(e.range);
  for (const TExpr* a : t->args)
    if (a->label >= 0) t->label = a->label;
  if (!result_shape(*t, info, env)) return error_node(e.range);
  return t;
}

// The call's argument for each parameter, in signature order (nullptr: left
// out); nullopt once a binding error is reported.
std::optional<std::vector<const ast::Arg*>> Sema::bind_arguments(const ast::Expr& e, const BuiltinInfo& info,
                                                                 const Env& env) {
  const size_t n = info.params.size();
  std::vector<const ast::Arg*> given(n, nullptr);
  size_t positional = 0;
  if (!check_argument_order(e, env)) return std::nullopt;
  for (const ast::Arg& a : e.args) {
    if (a.keyword.empty()) {
      if (positional < n) given[positional] = &a;
      ++positional;
      continue;
    }
    auto p = std::find_if(info.params.begin(), info.params.end(),
                          [&](const BuiltinParam& bp) { return bp.name == a.keyword; });
    if (p == info.params.end()) {
      std::vector<std::string_view> names;
      for (const BuiltinParam& bp : info.params) names.push_back(bp.name);
      error(a.keyword_range, std::string(info.name) + " has no parameter '" + a.keyword + "'" +
                                 suggest(a.keyword, names) + " (" + info.signature() + ")", env);
      return std::nullopt;
    }
    const size_t i = static_cast<size_t>(p - info.params.begin());
    if (given[i]) {
      error(a.keyword_range, "parameter '" + a.keyword + "' of " + std::string(info.name) + " is given twice",
            env);
      return std::nullopt;
    }
    given[i] = &a;
  }
  bool arity_ok = positional <= n;
  for (size_t i = 0; arity_ok && i < n; ++i)
    if (!given[i] && !info.params[i].optional) arity_ok = false;
  if (!arity_ok) {
    error(e.range, std::string(info.name) + " takes " + argument_count(info) + ": " + info.signature() +
                       ", called with " + std::to_string(e.args.size()), env);
    return std::nullopt;
  }
  return given;
}

// Elaborates the bound arguments into the call: tensors in signature order
// (defaults filled in), integer constants into its axis or group size, a shape
// literal into its target. False when one failed (each failure is reported).
bool Sema::elab_arguments(TExpr& call, const BuiltinInfo& info, const std::vector<const ast::Arg*>& given,
                          const Env& env) {
  bool ok = true;
  for (size_t i = 0; i < info.params.size(); ++i) {
    const BuiltinParam& p = info.params[i];
    const ast::Arg* arg = given[i];
    if (p.is_shape) {
      std::optional<Shape> target = shape_argument(*arg, info, p, env);
      if (target) call.target = std::move(*target);
      ok = ok && target;
    } else if (p.is_int) {
      std::optional<int64_t> value;
      if (arg) {
        value = int_argument(*arg, info, p, env);
        ok = ok && value;
      } else if (p.default_value) {
        value = static_cast<int64_t>(*p.default_value);
      }
      if (value && p.name == "k") call.group = *value;
      else if (value) call.axis = *value;
    } else if (arg) {
      const TExpr* a = elab(arg->value, env);
      ok = ok && a->kind != K::Error;
      call.args.push_back(a);
    } else if (p.default_value) {
      TExpr* d = node(K::Number, {}, call.range);
      d->number = *p.default_value;
      call.args.push_back(d);
    }  // else an optional tensor left out (max/min's second operand)
  }
  return ok;
}

// A shape literal ([4, 5]), its sizes checked as a declaration's are.
std::optional<Shape> Sema::shape_argument(const ast::Arg& arg, const BuiltinInfo& info, const BuiltinParam& p,
                                          const Env& env) {
  const ast::Expr& literal = m_.expr(arg.value);
  if (literal.kind != ExprKind::ShapeLiteral) {
    error(literal.range, std::string(info.name) + ": " + p.name + " is a shape such as [4, 5]", env);
    return std::nullopt;
  }
  std::optional<std::vector<int64_t>> dims = sizes(literal.dims);
  if (!dims) return std::nullopt;
  return Shape(std::move(*dims));
}

// An axis or a group size: an integer written with numbers and consts only.
std::optional<int64_t> Sema::int_argument(const ast::Arg& arg, const BuiltinInfo& info, const BuiltinParam& p,
                                          const Env& env) {
  Env constant = env;
  constant.const_only = true;
  const TExpr* t = elab(arg.value, constant);
  if (t->kind == K::Error) return std::nullopt;
  if (!t->shape.is_scalar()) {
    error(t->range, std::string(info.name) + ": " + p.name + " must be a scalar integer", env);
    return std::nullopt;
  }
  const double v = eval_scalar(*t, [&](const TExpr& r) { return r.number; });
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 1e9) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    // A whole number past the bound is too large, not "not an integer".
    const bool whole = std::isfinite(v) && v == std::floor(v);
    error(t->range, std::string(info.name) + ": " + p.name +
                        (whole ? " must be at most 1e9 in magnitude, not " : " must be an integer, not ") +
                        std::string(buf, end),
          env);
    return std::nullopt;
  }
  return static_cast<int64_t>(v);
}

// The call's shape by its rule; false once "NAME: why not" is reported.
bool Sema::result_shape(TExpr& call, const BuiltinInfo& info, const Env& env) {
  ShapeResult result = rule_shape(call, info.rule);
  if (!result.shape) {
    error(call.range, std::string(info.name) + ": " + result.error, env);
    return false;
  }
  call.shape = std::move(*result.shape);
  return true;
}

}  // namespace nabla::detail
