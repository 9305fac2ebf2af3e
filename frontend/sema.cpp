// Semantic analysis (sema.h): names and statements, one function per kind.
// Expressions and fn calls are elaborated in sema_expr.cpp, builtin calls in
// sema_builtins.cpp.
#include "frontend/sema.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "frontend/const_eval.h"
#include "frontend/sema_pass.h"

namespace nabla {
namespace detail {
namespace {

using ast::ExprId;
using ast::ExprKind;

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

// A declaration with a bad shape still binds its name (with an empty shape,
// and in `shapeless_`, so its uses raise no second error).
TensorDecl tensor_decl(const ast::Stmt& s, const std::optional<Shape>& shape) {
  return {s.name, shape.value_or(Shape{}), s.name_range};
}

}  // namespace

// ---------------------------------------------------------------------------
// Helpers of every sema file

// A candidate may differ by about a third of the name's letters (at most 3
// edits, at least 1 for names of 2 letters or more; a 1-letter name only
// matches another case).
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

const TExpr* Sema::bounded(const TExpr* t, const Env& env) {
  if (t->kind == K::Error) return t;
  long double total = 1;
  for (int64_t d : t->shape.dims()) total *= static_cast<long double>(d);
  if (total <= static_cast<long double>(kMaxElements)) return t;
  error(t->range, "this expression's shape " + t->shape.str() + " has too many elements (at most 2^40)", env);
  return error_node(t->range);
}

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

// Binds the statement's name to the last entry of its table, which has
// `table_size` entries.
void Sema::bind(const ast::Stmt& s, Binding::Kind kind, size_t table_size) {
  bound_.emplace(s.name, Binding{kind, static_cast<int>(table_size - 1), s.name_range});
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
// Statements

CheckedModel Sema::check_model(const SemaOptions& options, std::vector<std::string>* unused) {
  overrides_ = options.overrides;
  declare_names();
  for (const ast::Stmt& s : m_.stmts) {
    current_ = &s;
    switch (s.kind) {
      case ast::StmtKind::Model: check_model_name(s); break;
      case ast::StmtKind::Input: check_input(s); break;
      case ast::StmtKind::Label: check_label(s); break;
      case ast::StmtKind::Param: check_param(s); break;
      case ast::StmtKind::Const: check_const(s); break;
      case ast::StmtKind::Fn: check_fn(s); break;
      case ast::StmtKind::Let: check_let(s); break;
      case ast::StmtKind::Output: check_output(s); break;
      case ast::StmtKind::Loss: check_loss(s); break;
    }
  }
  current_ = nullptr;
  if (!diags_.has_errors() && model_.outputs.empty() && !loss_stmt_) {
    const SourceRange where = m_.stmts.empty() ? SourceRange{} : m_.stmts.back().range;
    diags_.error(where, "the model computes nothing: add an 'output' or a 'loss' statement");
  }
  if (unused) {
    for (const auto& [name, value] : overrides_)
      if (!used_overrides_.count(name)) unused->push_back(name);
  }
  return std::move(model_);
}

void Sema::check_model_name(const ast::Stmt& s) {
  if (&s != &m_.stmts.front()) {
    diags_.error(s.keyword_range, "'model' is optional and must be the first statement");
    return;
  }
  model_.name = s.name;
}

// Inputs, labels and params declare a name and a shape; a param's init is
// checked once its shape is good.
void Sema::check_input(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  const std::optional<Shape> shape = check_shape(s);
  if (!name_ok) return;
  if (!shape) shapeless_.insert(s.name);
  model_.inputs.push_back(tensor_decl(s, shape));
  bind(s, Binding::Kind::Input, model_.inputs.size());
}

void Sema::check_label(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  const std::optional<Shape> shape = check_shape(s);
  if (!name_ok) return;
  if (!shape) shapeless_.insert(s.name);
  model_.labels.push_back({tensor_decl(s, shape), s.distribution});
  bind(s, Binding::Kind::Label, model_.labels.size());
}

void Sema::check_param(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  const std::optional<Shape> shape = check_shape(s);
  std::optional<InitSpecDecl> init;
  if (shape) init = check_init(s);
  if (!name_ok) return;
  if (!shape) shapeless_.insert(s.name);
  model_.params.push_back({tensor_decl(s, shape), init.value_or(InitSpecDecl{})});
  bind(s, Binding::Kind::Param, model_.params.size());
}

void Sema::check_const(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  std::optional<double> value = const_value(s.value, "a const");
  if (value && !std::isfinite(*value)) {  // as --set: a const is a finite number
    diags_.error(m_.expr(s.value).range, "the const '" + s.name + "' is " +
                                             (std::isnan(*value) ? "not a number" : "infinite") +
                                             ": a const must be finite");
    value.reset();
  }
  if (!name_ok) return;
  ConstDecl c{s.name, value.value_or(0.0), false, s.name_range};
  if (auto it = overrides_.find(s.name); it != overrides_.end()) {
    c.value = it->second;
    c.overridden = true;
    used_overrides_.insert(s.name);
  }
  model_.consts.push_back(c);
  bind(s, Binding::Kind::Const, model_.consts.size());
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
  if (name_ok) bind(s, Binding::Kind::Fn, fns_.size());
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

void Sema::check_let(const ast::Stmt& s) {
  const bool name_ok = check_new_name(s);
  const TExpr* value = elab(s.value, Env{});
  if (name_ok) add_let(s, value);
}

// `output NAME = EXPR` binds NAME as a let does; `output NAME` names an
// existing binding.
void Sema::check_output(const ast::Stmt& s) {
  if (s.value == ast::kNoExpr) {
    check_output_name(s);
    return;
  }
  const bool name_ok = check_new_name(s);
  const TExpr* value = elab(s.value, Env{});
  add_output(s, value, s.range);
  if (name_ok) add_let(s, value);
}

void Sema::check_output_name(const ast::Stmt& s) {
  auto prev = std::find_if(model_.outputs.begin(), model_.outputs.end(),
                           [&](const OutputDecl& o) { return o.name == s.name; });
  if (prev != model_.outputs.end()) {
    diags_.error(s.name_range, "'" + s.name + "' is already an output (line " +
                                   std::to_string(diags_.file().line_col(prev->range.begin).line) +
                                   "); each output is named once");
    return;
  }
  ast::Expr ref;
  ref.kind = ExprKind::Name;
  ref.name = s.name;
  ref.range = ref.name_range = s.name_range;
  add_output(s, elab_name(ref, Env{}), s.name_range);
}

// Outputs are computed where there are no labels (inference), so they may not
// depend on one.
void Sema::add_output(const ast::Stmt& s, const TExpr* value, SourceRange where) {
  if (value->kind != K::Error && value->label >= 0) {
    diags_.error(where, "output '" + s.name + "' depends on the label '" +
                            model_.labels[static_cast<size_t>(value->label)].name +
                            "'; labels may be used by the loss only");
  }
  model_.outputs.push_back({s.name, value, s.name_range});
}

void Sema::add_let(const ast::Stmt& s, const TExpr* value) {
  model_.lets.push_back({s.name, value, s.name_range});
  bind(s, Binding::Kind::Let, model_.lets.size());
}

// One loss, a scalar: the terms of a sum are added in one statement.
void Sema::check_loss(const ast::Stmt& s) {
  if (loss_stmt_) {
    diags_.error(s.keyword_range, "a second 'loss' statement; the loss is already given on line " +
                                      std::to_string(diags_.file().line_col(loss_stmt_->range.begin).line) +
                                      " (add the terms into one loss)");
    return;
  }
  loss_stmt_ = &s;
  const TExpr* value = elab(s.value, Env{});
  if (value->kind != K::Error && !value->shape.is_scalar()) {
    diags_.error(m_.expr(s.value).range, "the loss must be a scalar, but this expression has shape " +
                                             value->shape.str() + "; reduce it, e.g. with sum(...) or mean(...)");
    return;
  }
  model_.loss = value;
}

// ---------------------------------------------------------------------------
// Shapes, consts and inits of declarations

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

// ---------------------------------------------------------------------------
// Expression mode

CheckedExpr Sema::check_expression() {
  CheckedExpr out;
  if (m_.root == ast::kNoExpr) return out;
  // Bindings NAME = EXPR before the expression (as nabla prints them).
  declare_names();
  for (const ast::Stmt& s : m_.stmts) {
    current_ = &s;
    if (check_new_name(s)) add_let(s, elab(s.value, Env{}));
  }
  current_ = nullptr;
  const TExpr* root = elab(m_.root, Env{});
  out.vars = var_names_;
  out.root = root;
  out.nodes = std::move(model_.nodes);
  return out;
}

}  // namespace detail

int64_t CheckedModel::param_count() const {
  int64_t n = 0;
  for (const ParamDecl& p : params) n += p.shape.numel();
  return n;
}

CheckedModel check_model(const ast::Module& module, Diagnostics& diags, const SemaOptions& options,
                         std::vector<std::string>* unused_overrides) {
  return detail::Sema(module, diags, false).check_model(options, unused_overrides);
}

CheckedExpr check_expression(const ast::Module& module, Diagnostics& diags) {
  return detail::Sema(module, diags, true).check_expression();
}

}  // namespace nabla
