// Semantic analysis (sema.h): expressions. Names resolve to Ref nodes,
// operators get their shapes from the rules of ir/shape.h, and fn calls are
// inlined: bound to the fn's parameters and its body elaborated with them.
#include <algorithm>
#include <cmath>

#include "frontend/parser.h"
#include "frontend/sema_pass.h"

namespace nabla::detail {
namespace {

using ast::ExprId;
using ast::ExprKind;
using ast::Op;

// "[3] + [4]: the shapes do not broadcast (...)", "[4, 3] @ [4]: the inner sizes differ (...)...".
std::string binary_error(Op op, const Shape& a, const Shape& b, const std::string& why) {
  if (op != Op::MatMul)
    return a.str() + " " + ast::op_spelling(op) + " " + b.str() + ": the shapes do not broadcast (" + why + ")";
  std::string message = a.str() + " @ " + b.str() + ": " + why;
  // W @ x with W stored the other way round is a common slip.
  if (a.rank() == 2 && b.rank() >= 1 && matmul_shape(transposed(a), b))
    message += "; did you mean to transpose the left operand (.T)?";
  return message;
}

// "v, W, b"
std::string param_list(const ast::Stmt& fn) {
  std::string list;
  for (size_t i = 0; i < fn.params.size(); ++i) list += (i ? ", " : "") + fn.params[i];
  return list;
}

}  // namespace

const TExpr* Sema::elab(ExprId id, const Env& env) { return bounded(elab_unbounded(id, env), env); }

const TExpr* Sema::elab_unbounded(ExprId id, const Env& env) {
  const ast::Expr& e = m_.expr(id);
  switch (e.kind) {
    case ExprKind::Number: {
      if (!std::isfinite(e.number)) {
        error(e.range, "this number is too large: a number's magnitude is at most about 1.8e308", env);
        return error_node(e.range);
      }
      TExpr* t = node(K::Number, {}, e.range);
      t->number = e.number;
      return t;
    }
    case ExprKind::Name: return elab_name(e, env);
    case ExprKind::Call: return elab_call(e, env);
    case ExprKind::Unary: return elab_unary(e, env);
    case ExprKind::Chain: return elab_chain(e, env);
    case ExprKind::Power:
    case ExprKind::Compare: {
      const TExpr* a = elab(e.operands[0], env);
      const TExpr* b = elab(e.operands[1], env);
      return binary(e.ops[0], a, b, e.op_ranges[0], e.range, env);
    }
    case ExprKind::ShapeLiteral:
      error(e.range, "a shape literal such as [4, 5] is only an argument of broadcast or sum_to", env);
      return error_node(e.range);
    case ExprKind::Transpose: return elab_transpose(e, env);
  }
  return error_node(e.range);
}

const TExpr* Sema::elab_unary(const ast::Expr& e, const Env& env) {
  const TExpr* a = elab(e.operands[0], env);
  if (e.ops[0] == Op::Plus || a->kind == K::Error) return a;
  TExpr* t = node(K::Unary, a->shape, e.range);
  t->op = Op::Neg;
  t->args = {a};
  t->label = a->label;
  return t;
}

// Left to right, iteratively: a chain may have 500,000 operands.
const TExpr* Sema::elab_chain(const ast::Expr& e, const Env& env) {
  const TExpr* acc = elab(e.operands[0], env);
  for (size_t i = 1; i < e.operands.size(); ++i) {
    const TExpr* rhs = elab(e.operands[i], env);
    const SourceRange range{e.range.begin, m_.expr(e.operands[i]).range.end};
    acc = binary(e.ops[i - 1], acc, rhs, e.op_ranges[i - 1], range, env);
  }
  return acc;
}

const TExpr* Sema::elab_transpose(const ast::Expr& e, const Env& env) {
  const TExpr* a = elab(e.operands[0], env);
  if (a->kind == K::Error) return a;
  TExpr* t = node(K::Transpose, transposed(a->shape), e.range);
  t->args = {a};
  t->label = a->label;
  return t;
}

const TExpr* Sema::binary(Op op, const TExpr* a, const TExpr* b, SourceRange op_range,
                          SourceRange range, const Env& env) {
  if (a->kind == K::Error) return a;
  if (b->kind == K::Error) return b;
  const ShapeResult result =
      op == Op::MatMul ? check_matmul(a->shape, b->shape) : check_broadcast(a->shape, b->shape);
  if (!result.shape) {
    error(op_range, binary_error(op, a->shape, b->shape, result.error), env);
    return error_node(range);
  }
  const bool compare = op == Op::Lt || op == Op::Le || op == Op::Gt || op == Op::Ge ||
                       op == Op::Eq || op == Op::Ne;
  TExpr* t = node(compare ? K::Compare : K::Binary, *result.shape, range);
  t->op = op;
  t->args = {a, b};
  t->label = a->label >= 0 ? a->label : b->label;
  return bounded(t, env);
}

// ---------------------------------------------------------------------------
// Names

const TExpr* Sema::elab_name(const ast::Expr& e, const Env& env) {
  if (env.args) {
    if (auto it = env.args->find(e.name); it != env.args->end()) return it->second;
  }
  auto it = bound_.find(e.name);
  if (it == bound_.end() && poisoned_.count(e.name)) return error_node(e.range);
  // A fn body sees its arguments and consts only.
  if (it == bound_.end() || (env.fn && it->second.kind != Binding::Kind::Const)) return unbound_name(e, env);
  if (env.const_only && it->second.kind != Binding::Kind::Const) {
    error(e.name_range, "'" + e.name + "' is not a const: only numbers and earlier consts can be used here",
          env);
    return error_node(e.range);
  }
  if (it->second.kind != Binding::Kind::Const && shapeless_.count(e.name)) return error_node(e.range);
  return ref(e, it->second, env);
}

// A name with no binding in sight: in expression mode a free variable, else an error.
const TExpr* Sema::unbound_name(const ast::Expr& e, const Env& env) {
  if (expression_mode_ && !find_builtin(e.name) && !is_keyword(e.name) && !declared_.count(e.name)) {
    auto [var, fresh] = vars_.emplace(e.name, static_cast<int>(var_names_.size()));
    if (fresh) var_names_.push_back(e.name);
    TExpr* t = node(K::Ref, {}, e.range);
    t->ref = RefKind::Input;
    t->index = var->second;
    return t;
  }
  if (find_builtin(e.name)) {
    error(e.name_range, "'" + e.name + "' is a builtin function; call it as " + e.name + "(...)", env);
  } else if (!env.fn) {
    error(e.name_range, name_error(e, false), env);
  }
  // Inside a fn body, names were checked where the fn is defined.
  return error_node(e.range);
}

// A use of a bound name: a Ref to it, with its shape.
const TExpr* Sema::ref(const ast::Expr& e, const Binding& b, const Env& env) {
  TExpr* t = node(K::Ref, {}, e.range);
  t->index = b.index;
  switch (b.kind) {
    case Binding::Kind::Input:
      t->ref = RefKind::Input;
      t->shape = model_.inputs[static_cast<size_t>(b.index)].shape;
      break;
    case Binding::Kind::Label:
      t->ref = RefKind::Label;
      t->shape = model_.labels[static_cast<size_t>(b.index)].shape;
      t->label = b.index;
      break;
    case Binding::Kind::Param:
      t->ref = RefKind::Param;
      t->shape = model_.params[static_cast<size_t>(b.index)].shape;
      break;
    case Binding::Kind::Const:
      t->ref = RefKind::Const;
      t->number = model_.consts[static_cast<size_t>(b.index)].value;
      break;
    case Binding::Kind::Let: {
      const TExpr* value = model_.lets[static_cast<size_t>(b.index)].value;
      if (value->kind == K::Error) return value;
      t->ref = RefKind::Let;
      t->shape = value->shape;
      t->args = {value};
      t->label = value->label;
      break;
    }
    case Binding::Kind::Fn:
      error(e.name_range, "'" + e.name + "' is a fn; call it with its arguments", env);
      return error_node(e.range);
  }
  return t;
}

// ---------------------------------------------------------------------------
// Calls

const TExpr* Sema::elab_call(const ast::Expr& e, const Env& env) {
  if (env.fn && e.name == env.fn->stmt->name) return error_node(e.range);  // reported at definition
  if (const BuiltinInfo* info = find_builtin(e.name)) return elab_builtin(e, *info, env);
  auto it = bound_.find(e.name);
  if (it != bound_.end() && it->second.kind == Binding::Kind::Fn)
    return elab_fn_call(e, fns_[static_cast<size_t>(it->second.index)], env);
  if (it != bound_.end()) {
    error(e.name_range, "'" + e.name + "' is not a function (it is bound on line " +
                            std::to_string(diags_.file().line_col(it->second.where.begin).line) + ")",
          env);
  } else if (!env.fn) {
    error(e.name_range, name_error(e, true), env);
  }
  return error_node(e.range);
}

// Arguments are positional, then keyword (spec: "Arguments are positional,
// then keyword").
bool Sema::check_argument_order(const ast::Expr& call, const Env& env) {
  const ast::Arg* keyword = nullptr;
  for (const ast::Arg& a : call.args) {
    if (!a.keyword.empty()) {
      keyword = &a;
    } else if (keyword) {
      error(m_.expr(a.value).range, "a positional argument after the keyword argument '" +
                                        keyword->keyword + "': write positional arguments first",
            env);
      return false;
    }
  }
  return true;
}

const TExpr* Sema::elab_fn_call(const ast::Expr& e, const FnDecl& fn, const Env& env) {
  if (!check_argument_order(e, env)) return error_node(e.range);
  const std::optional<std::vector<const TExpr*>> args = bind_fn_arguments(e, *fn.stmt, env);
  if (!args) return error_node(e.range);
  const bool failed =
      std::any_of(args->begin(), args->end(), [](const TExpr* a) { return a->kind == K::Error; });
  if (failed || !fn.ok) return error_node(e.range);
  return inline_fn(e, fn, *args, env);
}

// The call's arguments by the fn's parameters, each elaborated where it is
// written (a failed one is its Error node); nullopt once a binding error is
// reported.
std::optional<std::vector<const TExpr*>> Sema::bind_fn_arguments(const ast::Expr& e, const ast::Stmt& fn,
                                                                 const Env& env) {
  const size_t n = fn.params.size();
  std::vector<const TExpr*> bound(n, nullptr);
  size_t positional = 0;
  for (const ast::Arg& a : e.args) {
    const TExpr* v = elab(a.value, env);
    if (a.keyword.empty()) {
      if (positional < n) bound[positional] = v;
      ++positional;
      continue;
    }
    auto p = std::find(fn.params.begin(), fn.params.end(), a.keyword);
    if (p == fn.params.end()) {
      error(a.keyword_range, "'" + fn.name + "' has no parameter '" + a.keyword + "' (it takes " +
                                 param_list(fn) + ")", env);
      return std::nullopt;
    }
    const size_t i = static_cast<size_t>(p - fn.params.begin());
    if (bound[i]) {
      error(a.keyword_range, "parameter '" + a.keyword + "' of '" + fn.name + "' is given twice", env);
      return std::nullopt;
    }
    bound[i] = v;
  }
  const size_t given = e.args.size();
  if (given != n || std::count(bound.begin(), bound.end(), nullptr) > 0) {
    error(e.range, fn.name + " takes " + plural(static_cast<int64_t>(n), "argument") + " (" + param_list(fn) +
                       "), called with " + std::to_string(given), env);
    return std::nullopt;
  }
  return bound;
}

// The fn's body elaborated with the call's arguments.
const TExpr* Sema::inline_fn(const ast::Expr& e, const FnDecl& fn, const std::vector<const TExpr*>& args,
                             const Env& env) {
  const ast::Stmt& s = *fn.stmt;
  const SourceRange site = env.call_site ? *env.call_site : e.range;
  auto key = std::make_tuple(&fn, args, site.begin, site.end);
  if (auto it = inlined_.find(key); it != inlined_.end()) return it->second;
  // fns that call another fn twice with different arguments double the
  // model at each level: 20 such levels in 800 bytes once took 1.5 GB and
  // 19 s. The typed nodes are bounded as the parser bounds the syntax tree.
  if (inlining_stopped_ || nodes_->size() >= static_cast<size_t>(kMaxTypedNodes)) {
    if (!inlining_stopped_) {
      inlining_stopped_ = true;
      const std::string outer = env.call_site ? env.call_name : s.name;
      diags_.error(site, "inlining this call of '" + outer + "' makes the model larger than " +
                             std::to_string(kMaxTypedNodes) +
                             " nodes (each fn that calls another fn twice with different arguments doubles it)");
    }
    return error_node(e.range);
  }
  std::unordered_map<std::string, const TExpr*> by_name;
  for (size_t i = 0; i < args.size(); ++i) by_name.emplace(s.params[i], args[i]);
  Env inner;
  inner.args = &by_name;
  inner.fn = &fn;
  inner.call_site = site;
  inner.call_name = env.call_site ? env.call_name : s.name;
  const TExpr* body = elab(s.value, inner);
  inlined_.emplace(std::move(key), body);
  return body;
}

}  // namespace nabla::detail
