#include "frontend/sema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "frontend/const_eval.h"

namespace nabla {
namespace {

using ast::ExprId;
using ast::ExprKind;
using ast::Op;
using K = TExpr::Kind;

// ---------------------------------------------------------------------------
// Helpers

int edit_distance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diag = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int up = row[j];
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "; did you mean 'W2'?" for the closest candidate, or "". A candidate may
// differ by about a third of the name's letters (at most 3 edits, at least 1
// for names of 2 letters or more; a 1-letter name only matches another case).
std::string suggest(std::string_view name, const std::vector<std::string_view>& candidates) {
  const int allowed =
      name.size() < 2 ? 0 : std::min(std::max(1, static_cast<int>(name.size()) / 3), 3);
  std::string_view best;
  int best_d = allowed + 1;
  for (std::string_view c : candidates) {
    const int d = edit_distance(name, c);
    if (d < best_d || (d == best_d && !best.empty() && c < best)) {
      best = c;
      best_d = d;
    }
  }
  return best.empty() ? "" : "; did you mean '" + std::string(best) + "'?";
}

std::string plural(int64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

struct InitName {
  const char* name;
  InitSpecDecl::Kind kind;
  int args;
  const char* usage;
};
constexpr InitName kInits[] = {
    {"zeros", InitSpecDecl::Kind::Zeros, 0, "zeros"},
    {"ones", InitSpecDecl::Kind::Ones, 0, "ones"},
    {"const", InitSpecDecl::Kind::Const, 1, "const(V)"},
    {"uniform", InitSpecDecl::Kind::Uniform, 2, "uniform(A, B)"},
    {"normal", InitSpecDecl::Kind::Normal, 2, "normal(MEAN, STD)"},
    {"xavier_uniform", InitSpecDecl::Kind::XavierUniform, 0, "xavier_uniform"},
    {"xavier_normal", InitSpecDecl::Kind::XavierNormal, 0, "xavier_normal"},
    {"he_uniform", InitSpecDecl::Kind::HeUniform, 0, "he_uniform"},
    {"he_normal", InitSpecDecl::Kind::HeNormal, 0, "he_normal"},
};

constexpr int kMaxRank = 8;
constexpr int64_t kMaxDim = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxElements = int64_t{1} << 40;

// ---------------------------------------------------------------------------

class Sema {
public:
  Sema(const ast::Module& module, Diagnostics& diags, bool expression_mode)
      : m_(module), diags_(diags), expression_mode_(expression_mode) {}

  CheckedModel check_model(const SemaOptions& options, std::vector<std::string>* unused);
  CheckedExpr check_expression();

private:
  // What a name is bound to.
  struct Binding {
    enum class Kind { Input, Label, Param, Const, Fn, Let } kind;
    int index;  // in the model's table of that kind (fns_ for Fn)
    SourceRange where;
  };
  struct FnDecl {
    const ast::Stmt* stmt;
    bool ok;  // the definition had no error (calls of a broken fn stay quiet)
  };
  // The context an expression is elaborated in.
  struct Env {
    // Inside an inlined fn body: its parameters' arguments.
    const std::unordered_map<std::string, const TExpr*>* args = nullptr;
    const FnDecl* fn = nullptr;
    // The outermost call being inlined: errors inside fn bodies are reported
    // there, with a note at the place in the body.
    std::optional<SourceRange> call_site;
    std::string call_name;
    // Consts, init arguments, axes: numbers and consts only.
    bool const_only = false;
  };

  // --- statements
  void declare_names();
  bool check_new_name(const ast::Stmt& s);
  void bind(const std::string& name, Binding::Kind kind, int index, SourceRange where);
  std::optional<Shape> check_shape(const ast::Stmt& s);
  std::optional<int64_t> positive_size(const ast::Dim& d);
  std::optional<std::vector<int64_t>> sizes(const std::vector<ast::Dim>& written);
  std::optional<InitSpecDecl> check_init(const ast::Stmt& s);
  void check_fn(const ast::Stmt& s);
  void check_fn_body(ExprId id, const ast::Stmt& fn, const std::unordered_set<std::string>& params);
  std::optional<double> const_value(ExprId id, const char* what);

  // --- expressions
  const TExpr* elab(ExprId id, const Env& env);
  const TExpr* elab_name(const ast::Expr& e, const Env& env);
  const TExpr* elab_call(const ast::Expr& e, const Env& env);
  const TExpr* elab_builtin(const ast::Expr& e, const BuiltinInfo& info, const Env& env);
  const TExpr* elab_fn_call(const ast::Expr& e, const FnDecl& fn, const Env& env);
  bool check_argument_order(const ast::Expr& call, const Env& env);
  const TExpr* binary(Op op, const TExpr* a, const TExpr* b, SourceRange op_range,
                      SourceRange range, const Env& env);
  const TExpr* error_node(SourceRange range);
  TExpr* node(K kind, Shape shape, SourceRange range);
  void error(SourceRange where, const std::string& message, const Env& env);
  std::string name_error(const ast::Expr& e, bool as_call) const;

  const ast::Module& m_;
  Diagnostics& diags_;
  bool expression_mode_;
  CheckedModel model_;
  std::deque<TExpr>* nodes_ = &model_.nodes;
  std::unordered_map<std::string, Binding> bound_;
  // Every name any statement binds, with the first statement binding it.
  std::unordered_map<std::string, const ast::Stmt*> declared_;
  // Names whose declaration failed: uses stay quiet (the failure was reported).
  std::unordered_set<std::string> poisoned_;
  std::vector<FnDecl> fns_;
  // Inlined fn calls: (fn, argument nodes, outermost call site) -> the
  // body's node. A call repeated with the same arguments is one node, so
  // inlining is linear in the program (f(a) + f(a) nested 60 deep is 60
  // nodes, not 2^60); the call site is in the key because errors in a body
  // are reported at the outermost call.
  std::map<std::tuple<const FnDecl*, std::vector<const TExpr*>, uint32_t, uint32_t>, const TExpr*> inlined_;
  const ast::Stmt* current_ = nullptr;
  ConstOverrides overrides_;
  // Expression mode: free variables, by name.
  std::unordered_map<std::string, int> vars_;
  std::vector<std::string> var_names_;
};

// ---------------------------------------------------------------------------
// Nodes and errors

TExpr* Sema::node(K kind, Shape shape, SourceRange range) {
  TExpr& t = nodes_->emplace_back();
  t.kind = kind;
  t.shape = std::move(shape);
  t.range = range;
  return &t;
}

const TExpr* Sema::error_node(SourceRange range) { return node(K::Error, {}, range); }

void Sema::error(SourceRange where, const std::string& message, const Env& env) {
  if (env.call_site) {
    diags_.error(*env.call_site, "in this call of '" + env.call_name + "': " + message)
        .note(where, "in the body of '" + (env.fn ? env.fn->stmt->name : env.call_name) + "' here");
  } else {
    diags_.error(where, message);
  }
}

// ---------------------------------------------------------------------------
// Names

void Sema::declare_names() {
  for (const ast::Stmt& s : m_.stmts) {
    if (s.kind == ast::StmtKind::Model || s.kind == ast::StmtKind::Loss) continue;
    if (s.kind == ast::StmtKind::Output && s.value == ast::kNoExpr) continue;  // binds nothing
    declared_.emplace(s.name, &s);
  }
  poisoned_.insert(m_.failed_names.begin(), m_.failed_names.end());
}

// A declaration's name must be free: no keyword, no builtin, not yet bound.
bool Sema::check_new_name(const ast::Stmt& s) {
  if (is_keyword(s.name) || find_builtin(s.name)) poisoned_.insert(s.name);
  if (is_keyword(s.name)) {
    diags_.error(s.name_range, "'" + s.name + "' is a keyword and cannot be a name");
    return false;
  }
  if (find_builtin(s.name)) {
    diags_.error(s.name_range, "'" + s.name + "' is a builtin and cannot be redefined; "
                               "choose another name");
    return false;
  }
  if (auto it = bound_.find(s.name); it != bound_.end()) {
    const int line = diags_.file().line_col(it->second.where.begin).line;
    diags_.error(s.name_range, "'" + s.name + "' is already bound on line " +
                                   std::to_string(line) + "; each name is bound once");
    return false;
  }
  return true;
}

void Sema::bind(const std::string& name, Binding::Kind kind, int index, SourceRange where) {
  bound_.emplace(name, Binding{kind, index, where});
}

std::string Sema::name_error(const ast::Expr& e, bool as_call) const {
  const std::string& name = e.name;
  if (is_keyword(name)) return "'" + name + "' is a keyword, not a value";
  if (auto it = declared_.find(name); it != declared_.end()) {
    const int line = diags_.file().line_col(it->second->name_range.begin).line;
    const int here = diags_.file().line_col(e.range.begin).line;
    if (line > here || (line == here && current_ == it->second))
      return "'" + name + "' is used before its binding on line " + std::to_string(line) +
             "; bind it first";
  }
  std::vector<std::string_view> candidates;
  if (as_call) {
    candidates = builtin_names();
    for (const FnDecl& f : fns_) candidates.push_back(f.stmt->name);
    return "unknown function '" + name + "'" + suggest(name, candidates);
  }
  for (const auto& [n, b] : bound_)
    if (b.kind != Binding::Kind::Fn) candidates.push_back(n);
  return "unknown name '" + name + "'" + suggest(name, candidates);
}

// ---------------------------------------------------------------------------
// Expressions

const TExpr* Sema::elab(ExprId id, const Env& env) {
  const ast::Expr& e = m_.expr(id);
  switch (e.kind) {
    case ExprKind::Number: {
      TExpr* t = node(K::Number, {}, e.range);
      t->number = e.number;
      return t;
    }
    case ExprKind::Name: return elab_name(e, env);
    case ExprKind::Call: return elab_call(e, env);
    case ExprKind::Unary: {
      const TExpr* a = elab(e.operands[0], env);
      if (e.ops[0] == Op::Plus || a->kind == K::Error) return a;
      TExpr* t = node(K::Unary, a->shape, e.range);
      t->op = Op::Neg;
      t->args = {a};
      t->label = a->label;
      return t;
    }
    case ExprKind::Chain: {
      // Left to right, iteratively: a chain may have 500,000 operands.
      const TExpr* acc = elab(e.operands[0], env);
      for (size_t i = 1; i < e.operands.size(); ++i) {
        const TExpr* rhs = elab(e.operands[i], env);
        const SourceRange range{e.range.begin, m_.expr(e.operands[i]).range.end};
        acc = binary(e.ops[i - 1], acc, rhs, e.op_ranges[i - 1], range, env);
      }
      return acc;
    }
    case ExprKind::Power:
    case ExprKind::Compare: {
      const TExpr* a = elab(e.operands[0], env);
      const TExpr* b = elab(e.operands[1], env);
      return binary(e.ops[0], a, b, e.op_ranges[0], e.range, env);
    }
    case ExprKind::ShapeLiteral:
      error(e.range, "a shape literal such as [4, 5] is only an argument of broadcast or sum_to", env);
      return error_node(e.range);
    case ExprKind::Transpose: {
      const TExpr* a = elab(e.operands[0], env);
      if (a->kind == K::Error) return a;
      TExpr* t = node(K::Transpose, transposed(a->shape), e.range);
      t->args = {a};
      t->label = a->label;
      return t;
    }
  }
  return error_node(e.range);
}

const TExpr* Sema::elab_name(const ast::Expr& e, const Env& env) {
  if (env.args) {
    if (auto it = env.args->find(e.name); it != env.args->end()) return it->second;
  }
  auto it = bound_.find(e.name);
  if (it == bound_.end() && poisoned_.count(e.name)) return error_node(e.range);
  if (it == bound_.end() || (env.fn && it->second.kind != Binding::Kind::Const)) {
    if (expression_mode_ && !find_builtin(e.name) && !is_keyword(e.name) && !declared_.count(e.name)) {
      auto [var, fresh] = vars_.emplace(e.name, static_cast<int>(var_names_.size()));
      if (fresh) var_names_.push_back(e.name);
      TExpr* t = node(K::Ref, {}, e.range);
      t->ref = RefKind::Input;
      t->index = var->second;
      return t;
    }
    if (find_builtin(e.name)) {
      error(e.name_range, "'" + e.name + "' is a builtin function; call it as " + e.name + "(...)",
            env);
    } else if (!env.fn) {
      error(e.name_range, name_error(e, false), env);
    }
    // Inside a fn body, names were checked where the fn is defined.
    return error_node(e.range);
  }
  const Binding& b = it->second;
  if (env.const_only && b.kind != Binding::Kind::Const) {
    error(e.name_range, "'" + e.name + "' is not a const: only numbers and earlier consts can be used here",
          env);
    return error_node(e.range);
  }
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

namespace {
// Where two shapes fail to broadcast, in words.
std::string broadcast_failure(const Shape& a, const Shape& b) {
  for (int i = 0; i < std::min(a.rank(), b.rank()); ++i) {
    const int64_t da = a[a.rank() - 1 - i], db = b[b.rank() - 1 - i];
    if (da != db && da != 1 && db != 1) {
      const std::string axis = i == 0 ? "the last axis" : std::to_string(i + 1) + " axes from the end";
      return "sizes " + std::to_string(da) + " and " + std::to_string(db) + " in " + axis +
             " differ and neither is 1";
    }
  }
  return "they do not broadcast";
}
}  // namespace

const TExpr* Sema::binary(Op op, const TExpr* a, const TExpr* b, SourceRange op_range,
                          SourceRange range, const Env& env) {
  if (a->kind == K::Error) return a;
  if (b->kind == K::Error) return b;
  std::optional<Shape> shape;
  if (op == Op::MatMul) {
    shape = matmul_shape(a->shape, b->shape);
    if (!shape) {
      std::string why;
      if (a->shape.rank() < 1 || a->shape.rank() > 2 || b->shape.rank() < 1 || b->shape.rank() > 2)
        why = "'@' takes operands of rank 1 or 2 (use '*' to multiply by a scalar)";
      else
        why = "the inner sizes differ (" + std::to_string(a->shape[a->shape.rank() - 1]) +
              " and " + std::to_string(b->shape[0]) +
              "): the last size on the left must equal the first size on the right";
      if (!why.empty() && a->shape.rank() == 2 && b->shape.rank() >= 1 &&
          matmul_shape(transposed(a->shape), b->shape))
        why += "; did you mean to transpose the left operand (.T)?";
      error(op_range, a->shape.str() + " @ " + b->shape.str() + ": " + why, env);
      return error_node(range);
    }
  } else {
    shape = broadcast(a->shape, b->shape);
    if (!shape) {
      error(op_range, a->shape.str() + " " + ast::op_spelling(op) + " " + b->shape.str() +
                          ": the shapes do not broadcast (" +
                          broadcast_failure(a->shape, b->shape) + ")",
            env);
      return error_node(range);
    }
  }
  const bool compare = op == Op::Lt || op == Op::Le || op == Op::Gt || op == Op::Ge ||
                       op == Op::Eq || op == Op::Ne;
  TExpr* t = node(compare ? K::Compare : K::Binary, *shape, range);
  t->op = op;
  t->args = {a, b};
  t->label = a->label >= 0 ? a->label : b->label;
  return t;
}

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
  const ast::Stmt& s = *fn.stmt;
  const size_t n = s.params.size();
  std::vector<const TExpr*> bound(n, nullptr);
  bool failed = false;
  auto params_list = [&] {
    std::string p;
    for (size_t i = 0; i < n; ++i) p += (i ? ", " : "") + s.params[i];
    return p;
  };
  if (!check_argument_order(e, env)) return error_node(e.range);
  size_t positional = 0;
  for (const ast::Arg& a : e.args) {
    const TExpr* v = elab(a.value, env);
    if (v->kind == K::Error) failed = true;
    if (a.keyword.empty()) {
      if (positional < n) bound[positional] = v;
      ++positional;
      continue;
    }
    auto p = std::find(s.params.begin(), s.params.end(), a.keyword);
    if (p == s.params.end()) {
      error(a.keyword_range, "'" + s.name + "' has no parameter '" + a.keyword + "' (it takes " +
                                 params_list() + ")", env);
      return error_node(e.range);
    }
    const size_t i = static_cast<size_t>(p - s.params.begin());
    if (bound[i]) {
      error(a.keyword_range, "parameter '" + a.keyword + "' of '" + s.name + "' is given twice", env);
      return error_node(e.range);
    }
    bound[i] = v;
  }
  const size_t given = e.args.size();
  if (given != n || std::count(bound.begin(), bound.end(), nullptr) > 0) {
    error(e.range, s.name + " takes " + plural(static_cast<int64_t>(n), "argument") + " (" +
                       params_list() + "), called with " + std::to_string(given), env);
    return error_node(e.range);
  }
  if (failed || !fn.ok) return error_node(e.range);
  const SourceRange site = env.call_site ? *env.call_site : e.range;
  auto key = std::make_tuple(&fn, bound, site.begin, site.end);
  if (auto it = inlined_.find(key); it != inlined_.end()) return it->second;
  std::unordered_map<std::string, const TExpr*> args;
  for (size_t i = 0; i < n; ++i) args.emplace(s.params[i], bound[i]);
  Env inner;
  inner.args = &args;
  inner.fn = &fn;
  inner.call_site = env.call_site ? env.call_site : std::optional<SourceRange>(e.range);
  inner.call_name = env.call_site ? env.call_name : s.name;
  const TExpr* body = elab(s.value, inner);
  inlined_.emplace(std::move(key), body);
  return body;
}

const TExpr* Sema::elab_builtin(const ast::Expr& e, const BuiltinInfo& info, const Env& env) {
  const size_t n = info.params.size();
  std::vector<const ast::Arg*> given(n, nullptr);
  size_t positional = 0;
  if (!check_argument_order(e, env)) return error_node(e.range);
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
      return error_node(e.range);
    }
    const size_t i = static_cast<size_t>(p - info.params.begin());
    if (given[i]) {
      error(a.keyword_range, "parameter '" + a.keyword + "' of " + std::string(info.name) +
                                 " is given twice", env);
      return error_node(e.range);
    }
    given[i] = &a;
  }
  bool arity_ok = positional <= n;
  for (size_t i = 0; arity_ok && i < n; ++i)
    if (!given[i] && !info.params[i].optional) arity_ok = false;
  if (!arity_ok) {
    const int lo = info.required_count();
    const int hi = static_cast<int>(n);
    std::string takes;
    if (info.rule == ShapeRule::MaxMin)
      takes = "one tensor (and axis=K) or two tensors";
    else if (lo == hi)
      takes = plural(lo, "argument");
    else
      takes = std::to_string(lo) + " to " + plural(hi, "argument");
    error(e.range, std::string(info.name) + " takes " + takes + ": " + info.signature() +
                       ", called with " + std::to_string(e.args.size()), env);
    return error_node(e.range);
  }

  // Elaborate arguments: tensors in signature order; integer constants aside.
  TExpr* t = node(K::Call, {}, e.range);
  t->fn = info.id;
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    const BuiltinParam& p = info.params[i];
    if (p.is_shape) {
      const ast::Expr& lit = m_.expr(given[i]->value);
      if (lit.kind != ExprKind::ShapeLiteral) {
        error(lit.range, std::string(info.name) + ": " + p.name + " is a shape such as [4, 5]", env);
        failed = true;
        continue;
      }
      auto dims = sizes(lit.dims);
      if (!dims) {
        failed = true;
        continue;
      }
      t->target = Shape(std::move(*dims));
      continue;
    }
    if (p.is_int) {
      std::optional<double> v;
      if (given[i]) {
        Env c = env;
        c.const_only = true;
        const TExpr* ce = elab(given[i]->value, c);
        if (ce->kind == K::Error) {
          failed = true;
          continue;
        }
        if (!ce->shape.is_scalar()) {
          error(ce->range, std::string(info.name) + ": " + p.name + " must be a scalar integer", env);
          failed = true;
          continue;
        }
        v = eval_scalar(*ce, [&](const TExpr& r) { return r.number; });
        if (!std::isfinite(*v) || *v != std::floor(*v) || std::fabs(*v) > 1e9) {
          char buf[32];
          auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *v);
          error(ce->range, std::string(info.name) + ": " + p.name + " must be an integer, not " +
                               std::string(buf, end), env);
          failed = true;
          continue;
        }
      } else {
        v = p.default_value;
      }
      if (v) {
        if (p.name == "k") t->group = static_cast<int64_t>(*v);
        else t->axis = static_cast<int64_t>(*v);
      }
      continue;
    }
    if (!given[i]) {
      if (p.default_value) {
        TExpr* d = node(K::Number, {}, e.range);
        d->number = *p.default_value;
        t->args.push_back(d);
      }
      continue;  // an optional tensor left out (max/min's second operand)
    }
    const TExpr* a = elab(given[i]->value, env);
    if (a->kind == K::Error) failed = true;
    t->args.push_back(a);
  }
  if (failed) return error_node(e.range);
  for (const TExpr* a : t->args)
    if (a->label >= 0) t->label = a->label;

  // Shapes.
  const Shape& s0 = t->args[0]->shape;
  auto fail = [&](const std::string& msg) {
    error(e.range, std::string(info.name) + ": " + msg, env);
    return error_node(e.range);
  };
  auto check_axis = [&](const Shape& s) -> bool {
    if (!t->axis) return true;
    if (s.is_scalar() && (*t->axis == 0 || *t->axis == -1)) {
      t->axis.reset();
      return true;
    }
    auto ax = normalize_axis(*t->axis, s.rank());
    if (!ax) return false;
    t->axis = *ax;
    return true;
  };
  auto axis_error = [&] {
    return fail("axis " + std::to_string(*t->axis) + " is out of range for shape " + s0.str());
  };
  ShapeRule rule = info.rule;
  if (rule == ShapeRule::MaxMin) {
    if (t->args.size() == 2 && t->axis) return fail("axis= goes with one tensor, not two");
    rule = t->args.size() == 2 ? ShapeRule::Elementwise : ShapeRule::Reduce;
  }
  switch (rule) {
    case ShapeRule::Elementwise: {
      Shape s = s0;
      for (size_t i = 1; i < t->args.size(); ++i) {
        auto b = broadcast(s, t->args[i]->shape);
        if (!b)
          return fail("arguments of shapes " + s.str() + " and " + t->args[i]->shape.str() +
                      " do not broadcast (" + broadcast_failure(s, t->args[i]->shape) + ")");
        s = *b;
      }
      t->shape = s;
      break;
    }
    case ShapeRule::AlongAxis:
    case ShapeRule::Mask:
      if (!check_axis(s0)) return axis_error();
      t->shape = s0;
      break;
    case ShapeRule::Reduce:
      if (!check_axis(s0)) return axis_error();
      t->shape = t->axis ? remove_axis(s0, static_cast<int>(*t->axis)) : Shape{};
      break;
    case ShapeRule::MaxMin: break;  // resolved above
    case ShapeRule::Maxout: {
      const int64_t k = t->group;
      if (k < 1) return fail("the group size k must be a positive integer, not " + std::to_string(k));
      const int64_t last = s0.is_scalar() ? 1 : s0[s0.rank() - 1];
      if (last % k != 0)
        return fail("the last size " + std::to_string(last) + " of " + s0.str() +
                    " is not a multiple of the group size " + std::to_string(k));
      std::vector<int64_t> d = s0.dims();
      if (!d.empty()) d.back() = last / k;
      t->shape = Shape(std::move(d));
      break;
    }
    case ShapeRule::Dot: {
      const Shape& s1 = t->args[1]->shape;
      if (s0.rank() > 1 || s1.rank() > 1 || s0.rank() != s1.rank() || s0 != s1)
        return fail("takes two vectors of the same length, got " + s0.str() + " and " + s1.str());
      t->shape = {};
      break;
    }
    case ShapeRule::Outer: {
      const Shape& s1 = t->args[1]->shape;
      if (s0.rank() > 1 || s1.rank() > 1)
        return fail("takes two vectors, got " + s0.str() + " and " + s1.str());
      std::vector<int64_t> d;
      if (s0.rank() == 1) d.push_back(s0[0]);
      if (s1.rank() == 1) d.push_back(s1[0]);
      t->shape = Shape(std::move(d));
      break;
    }
    case ShapeRule::Transpose: t->shape = transposed(s0); break;
    case ShapeRule::Loss: {
      const Shape& s1 = t->args[1]->shape;
      if (!broadcast(s0, s1))
        return fail("the target " + s0.str() + " and the prediction " + s1.str() +
                    " do not broadcast (" + broadcast_failure(s0, s1) + ")");
      t->shape = {};
      break;
    }
    case ShapeRule::Norm: t->shape = {}; break;
    case ShapeRule::BroadcastTo: {
      const Shape& to = t->target;
      if (t->axis) {
        auto ax = normalize_axis(*t->axis, to.rank());
        if (!ax || s0.rank() != to.rank() - 1 || remove_axis(to, *ax) != s0)
          return fail(s0.str() + " does not broadcast to " + to.str() + " along a new axis " +
                      std::to_string(*t->axis));
        t->axis = *ax;
      } else if (broadcast(s0, to) != to) {
        return fail(s0.str() + " does not broadcast to " + to.str());
      }
      t->shape = to;
      break;
    }
    case ShapeRule::SumTo:
      if (broadcast(t->target, s0) != s0)
        return fail(s0.str() + " cannot be summed down to " + t->target.str());
      t->shape = t->target;
      break;
    case ShapeRule::GroupMask:
    case ShapeRule::Repeat: {
      const int64_t k = t->group;
      if (k < 1) return fail("k must be a positive integer, not " + std::to_string(k));
      const int64_t last = s0.is_scalar() ? 1 : s0[s0.rank() - 1];
      if (rule == ShapeRule::GroupMask && last % k != 0)
        return fail("the last size " + std::to_string(last) + " of " + s0.str() +
                    " is not a multiple of the group size " + std::to_string(k));
      std::vector<int64_t> d = s0.dims();
      if (rule == ShapeRule::Repeat) {
        if (d.empty()) {
          if (k != 1) return fail("a scalar repeats only once (k = 1)");
        } else {
          d.back() *= k;
        }
      }
      t->shape = Shape(std::move(d));
      break;
    }
  }
  return t;
}

// ---------------------------------------------------------------------------
// Statements

std::optional<int64_t> Sema::positive_size(const ast::Dim& d) {
  std::string_view text = d.text;
  if (text.starts_with('+')) text.remove_prefix(1);
  const bool integer = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  if (!integer) {
    const char* what = d.text.starts_with('-')                         ? "a negative size"
                       : d.text.find('.') != std::string::npos            ? "a fractional size"
                       : d.text.find_first_of("eE") != std::string::npos ? "not written as an integer"
                                                                          : "not a size";
    diags_.error(d.range, "sizes are positive integers; '" + d.text + "' is " + what);
    return std::nullopt;
  }
  const std::string_view digits = text.substr(std::min(text.find_first_not_of('0'), text.size()));
  if (digits.empty()) {
    diags_.error(d.range, "sizes are positive integers; a size of 0 is not allowed");
    return std::nullopt;
  }
  if (digits.size() > 10 || std::stoll(std::string(digits)) > kMaxDim) {
    diags_.error(d.range, "size " + d.text + " is too large (at most " + std::to_string(kMaxDim) + ")");
    return std::nullopt;
  }
  return std::stoll(std::string(digits));
}

// Every size of a shape as written, each bad one reported.
std::optional<std::vector<int64_t>> Sema::sizes(const std::vector<ast::Dim>& written) {
  std::vector<int64_t> dims;
  bool ok = true;
  for (const ast::Dim& d : written) {
    auto size = positive_size(d);
    if (size) dims.push_back(*size);
    ok = ok && size.has_value();
  }
  if (!ok) return std::nullopt;
  return dims;
}

std::optional<Shape> Sema::check_shape(const ast::Stmt& s) {
  auto sizes_written = sizes(s.shape);
  if (!sizes_written) return std::nullopt;
  std::vector<int64_t> dims = std::move(*sizes_written);
  if (dims.size() > static_cast<size_t>(kMaxRank)) {
    diags_.error(s.shape_range, "a tensor has at most " + std::to_string(kMaxRank) + " axes");
    return std::nullopt;
  }
  Shape shape(std::move(dims));
  long double total = 1;
  for (int64_t d : shape.dims()) total *= static_cast<long double>(d);
  if (total > static_cast<long double>(kMaxElements)) {
    diags_.error(s.shape_range, "the shape " + shape.str() + " has too many elements (at most 2^40)");
    return std::nullopt;
  }
  return shape;
}

std::optional<double> Sema::const_value(ExprId id, const char* what) {
  Env env;
  env.const_only = true;
  const TExpr* t = elab(id, env);
  if (t->kind == K::Error) return std::nullopt;
  if (!t->shape.is_scalar()) {
    diags_.error(t->range, std::string(what) + " must be a scalar, not a tensor of shape " +
                               t->shape.str());
    return std::nullopt;
  }
  return eval_scalar(*t, [](const TExpr& r) { return r.number; });
}

std::optional<InitSpecDecl> Sema::check_init(const ast::Stmt& s) {
  InitSpecDecl init;
  if (!s.init) return init;
  const ast::InitSpec& spec = *s.init;
  const InitName* found = nullptr;
  for (const InitName& n : kInits)
    if (spec.name == n.name) found = &n;
  if (!found) {
    std::vector<std::string_view> names;
    for (const InitName& n : kInits) names.push_back(n.name);
    std::string list;
    for (const InitName& n : kInits) list += std::string(list.empty() ? "" : ", ") + n.usage;
    diags_.error(spec.name_range, "unknown init '" + spec.name + "'" + suggest(spec.name, names) +
                                      " (inits: " + list + ")");
    return std::nullopt;
  }
  init.kind = found->kind;
  if (static_cast<int>(spec.args.size()) != found->args) {
    diags_.error(spec.range, std::string("init ") + found->name + " takes " +
                                 plural(found->args, "argument") + ": write " + found->usage);
    return std::nullopt;
  }
  std::vector<double> v;
  for (ExprId a : spec.args) {
    auto value = const_value(a, "an init argument");
    if (!value) return std::nullopt;
    if (!std::isfinite(*value)) {
      diags_.error(m_.expr(a).range, "init arguments must be finite");
      return std::nullopt;
    }
    v.push_back(*value);
  }
  if (v.size() > 0) init.a = v[0];
  if (v.size() > 1) init.b = v[1];
  if (init.kind == InitSpecDecl::Kind::Uniform && !(init.a < init.b)) {
    diags_.error(spec.range, "uniform(A, B) needs A < B");
    return std::nullopt;
  }
  if (init.kind == InitSpecDecl::Kind::Normal && !(init.b > 0)) {
    diags_.error(spec.range, "normal(MEAN, STD) needs STD > 0");
    return std::nullopt;
  }
  return init;
}

void Sema::check_fn(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  bool ok = name_ok;
  std::unordered_set<std::string> params;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const std::string& p = s.params[i];
    const bool fresh = params.insert(p).second;  // listed either way: no follow-on errors
    if (is_keyword(p) || find_builtin(p)) {
      diags_.error(s.param_ranges[i], "'" + p + "' is a " +
                                          (is_keyword(p) ? "keyword" : "builtin") +
                                          " and cannot name a parameter");
      ok = false;
    } else if (!fresh) {
      diags_.error(s.param_ranges[i], "parameter '" + p + "' appears twice");
      ok = false;
    }
  }
  const int errors_before = diags_.error_count();
  check_fn_body(s.value, s, params);
  ok = ok && diags_.error_count() == errors_before;
  fns_.push_back({&s, ok});
  if (name_ok) bind(s.name, Binding::Kind::Fn, static_cast<int>(fns_.size() - 1), s.name_range);
}

// A fn body may name its parameters, consts, builtins and earlier fns.
void Sema::check_fn_body(ExprId id, const ast::Stmt& fn,
                         const std::unordered_set<std::string>& params) {
  std::vector<ExprId> stack{id};
  while (!stack.empty()) {
    const ast::Expr& e = m_.expr(stack.back());
    stack.pop_back();
    for (ExprId o : e.operands) stack.push_back(o);
    for (const ast::Arg& a : e.args) stack.push_back(a.value);
    if (e.kind == ExprKind::Name) {
      if (params.count(e.name) || poisoned_.count(e.name)) continue;
      auto it = bound_.find(e.name);
      if (it != bound_.end() && it->second.kind == Binding::Kind::Const) continue;
      auto later = declared_.find(e.name);
      if (it == bound_.end() && later != declared_.end() && later->second->kind == ast::StmtKind::Const) {
        diags_.error(e.name_range, name_error(e, false));
      } else if (it != bound_.end() || later != declared_.end()) {
        diags_.error(e.name_range, "'" + e.name + "' is not visible inside fn '" + fn.name +
                                  "': a fn sees its arguments and consts only; pass it as an argument");
      } else if (find_builtin(e.name)) {
        diags_.error(e.name_range, "'" + e.name + "' is a builtin function; call it as " + e.name + "(...)");
      } else {
        diags_.error(e.name_range, name_error(e, false));
      }
    } else if (e.kind == ExprKind::Call) {
      if (e.name == fn.name) {
        diags_.error(e.name_range, "'" + fn.name + "' calls itself: a fn is not defined inside its "
                                   "own body, and recursion is not supported");
        continue;
      }
      if (find_builtin(e.name)) continue;
      auto it = bound_.find(e.name);
      if (it != bound_.end() && it->second.kind == Binding::Kind::Fn) continue;
      if (it != bound_.end())
        diags_.error(e.name_range, "'" + e.name + "' is not a function");
      else
        diags_.error(e.name_range, name_error(e, true));
    }
  }
}

CheckedModel Sema::check_model(const SemaOptions& options, std::vector<std::string>* unused) {
  overrides_ = options.overrides;
  std::unordered_set<std::string> used_overrides;
  declare_names();
  const ast::Stmt* loss_stmt = nullptr;
  const Env top;
  for (size_t i = 0; i < m_.stmts.size(); ++i) {
    const ast::Stmt& s = m_.stmts[i];
    current_ = &s;
    switch (s.kind) {
      case ast::StmtKind::Model:
        if (i != 0 || !model_.name.empty()) {
          diags_.error(s.keyword_range, "'model' is optional and must be the first statement");
          break;
        }
        model_.name = s.name;
        break;
      case ast::StmtKind::Input:
      case ast::StmtKind::Label:
      case ast::StmtKind::Param: {
        const bool name_ok = check_new_name(s);
        auto shape = check_shape(s);
        std::optional<InitSpecDecl> init;
        if (shape && s.kind == ast::StmtKind::Param) init = check_init(s);
        if (!name_ok) break;
        // A declaration with a bad shape still binds its name (with an empty
        // shape) so its uses raise no second error.
        const TensorDecl decl{s.name, shape.value_or(Shape{}), s.name_range};
        if (s.kind == ast::StmtKind::Input) {
          model_.inputs.push_back(decl);
          bind(s.name, Binding::Kind::Input, static_cast<int>(model_.inputs.size() - 1), s.name_range);
        } else if (s.kind == ast::StmtKind::Label) {
          model_.labels.push_back({decl, s.distribution});
          bind(s.name, Binding::Kind::Label, static_cast<int>(model_.labels.size() - 1), s.name_range);
        } else {
          model_.params.push_back({decl, init.value_or(InitSpecDecl{})});
          bind(s.name, Binding::Kind::Param, static_cast<int>(model_.params.size() - 1), s.name_range);
        }
        break;
      }
      case ast::StmtKind::Const: {
        const bool name_ok = check_new_name(s);
        auto value = const_value(s.value, "a const");
        if (value && !std::isfinite(*value)) {  // as --set: a const is a finite number
          diags_.error(m_.expr(s.value).range, "the const '" + s.name + "' is " +
                                                   (std::isnan(*value) ? "not a number" : "infinite") +
                                                   ": a const must be finite");
          value.reset();
        }
        if (!name_ok) break;
        ConstDecl c{s.name, value.value_or(0.0), false, s.name_range};
        if (auto it = overrides_.find(s.name); it != overrides_.end()) {
          c.value = it->second;
          c.overridden = true;
          used_overrides.insert(s.name);
        }
        model_.consts.push_back(c);
        bind(s.name, Binding::Kind::Const, static_cast<int>(model_.consts.size() - 1), s.name_range);
        break;
      }
      case ast::StmtKind::Fn: check_fn(s); break;
      case ast::StmtKind::Let:
      case ast::StmtKind::Output: {
        const bool defines = s.kind == ast::StmtKind::Let || s.value != ast::kNoExpr;
        auto prev = std::find_if(model_.outputs.begin(), model_.outputs.end(),
                                 [&](const OutputDecl& o) { return o.name == s.name; });
        if (!defines && prev != model_.outputs.end()) {
          diags_.error(s.name_range, "'" + s.name + "' is already an output (line " +
                                         std::to_string(diags_.file().line_col(prev->range.begin).line) +
                                         "); each output is named once");
          break;
        }
        if (!defines) {  // `output NAME`: an existing binding
          ast::Expr ref;
          ref.kind = ExprKind::Name;
          ref.name = s.name;
          ref.range = ref.name_range = s.name_range;
          const TExpr* v = elab_name(ref, top);
          if (v->kind != K::Error && v->label >= 0) {
            diags_.error(s.name_range, "output '" + s.name + "' depends on the label '" +
                                           model_.labels[static_cast<size_t>(v->label)].name +
                                           "'; labels may be used by the loss only");
          }
          model_.outputs.push_back({s.name, v, s.name_range});
          break;
        }
        const bool name_ok = check_new_name(s);
        const TExpr* v = elab(s.value, top);
        if (s.kind == ast::StmtKind::Output) {
          if (v->kind != K::Error && v->label >= 0)
            diags_.error(s.range, "output '" + s.name + "' depends on the label '" +
                                      model_.labels[static_cast<size_t>(v->label)].name +
                                      "'; labels may be used by the loss only");
          model_.outputs.push_back({s.name, v, s.name_range});
        }
        if (!name_ok) break;
        model_.lets.push_back({s.name, v, s.name_range});
        bind(s.name, Binding::Kind::Let, static_cast<int>(model_.lets.size() - 1), s.name_range);
        break;
      }
      case ast::StmtKind::Loss: {
        if (loss_stmt) {
          diags_.error(s.keyword_range,
                       "a second 'loss' statement; the loss is already given on line " +
                           std::to_string(diags_.file().line_col(loss_stmt->range.begin).line) +
                           " (add the terms into one loss)");
          break;
        }
        loss_stmt = &s;
        const TExpr* v = elab(s.value, top);
        if (v->kind != K::Error && !v->shape.is_scalar()) {
          diags_.error(m_.expr(s.value).range,
                       "the loss must be a scalar, but this expression has shape " + v->shape.str() +
                           "; reduce it, e.g. with sum(...) or mean(...)");
          break;
        }
        model_.loss = v;
        break;
      }
    }
  }
  current_ = nullptr;
  if (!diags_.has_errors() && model_.outputs.empty() && !loss_stmt) {
    const SourceRange where = m_.stmts.empty() ? SourceRange{} : m_.stmts.back().range;
    diags_.error(where, "the model computes nothing: add an 'output' or a 'loss' statement");
  }
  if (unused) {
    for (const auto& [name, value] : overrides_)
      if (!used_overrides.count(name)) unused->push_back(name);
  }
  return std::move(model_);
}

CheckedExpr Sema::check_expression() {
  CheckedExpr out;
  if (m_.root == ast::kNoExpr) return out;
  // Bindings NAME = EXPR before the expression (as nabla prints them).
  declare_names();
  for (const ast::Stmt& s : m_.stmts) {
    current_ = &s;
    if (check_new_name(s)) {
      const TExpr* v = elab(s.value, Env{});
      model_.lets.push_back({s.name, v, s.name_range});
      bind(s.name, Binding::Kind::Let, static_cast<int>(model_.lets.size() - 1), s.name_range);
    }
  }
  current_ = nullptr;
  const TExpr* root = elab(m_.root, Env{});
  out.vars = var_names_;
  out.root = root;
  out.nodes = std::move(model_.nodes);
  return out;
}

}  // namespace

int64_t CheckedModel::param_count() const {
  int64_t n = 0;
  for (const ParamDecl& p : params) n += p.shape.numel();
  return n;
}

CheckedModel check_model(const ast::Module& module, Diagnostics& diags, const SemaOptions& options,
                         std::vector<std::string>* unused_overrides) {
  return Sema(module, diags, false).check_model(options, unused_overrides);
}

CheckedExpr check_expression(const ast::Module& module, Diagnostics& diags) {
  return Sema(module, diags, true).check_expression();
}

}  // namespace nabla
