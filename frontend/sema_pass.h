// The semantic analysis pass (sema.h) as a class: its state and its steps.
// Internal to the files that define them: sema.cpp (names and statements, one
// function per kind), sema_expr.cpp (expressions and fn calls) and
// sema_builtins.cpp (builtin calls: argument binding, elaboration, result
// shapes).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "frontend/sema.h"

namespace nabla::detail {

// "; did you mean 'W2'?" for the closest candidate, or "".
std::string suggest(std::string_view name, const std::vector<std::string_view>& candidates);
// "1 argument", "2 arguments".
std::string plural(int64_t n, const char* word);

class Sema {
public:
  Sema(const ast::Module& module, Diagnostics& diags, bool expression_mode)
      : m_(module), diags_(diags), expression_mode_(expression_mode) {}

  CheckedModel check_model(const SemaOptions& options, std::vector<std::string>* unused);
  CheckedExpr check_expression();

private:
  using K = TExpr::Kind;

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

  // --- names (sema.cpp)
  void declare_names();
  bool check_new_name(const ast::Stmt& s);
  void bind(const ast::Stmt& s, Binding::Kind kind, size_t table_size);
  std::string name_error(const ast::Expr& e, bool as_call) const;

  // --- statements, one function per kind (sema.cpp)
  void check_model_name(const ast::Stmt& s);
  void check_input(const ast::Stmt& s);
  void check_label(const ast::Stmt& s);
  void check_param(const ast::Stmt& s);
  void check_const(const ast::Stmt& s);
  void check_fn(const ast::Stmt& s);
  void check_let(const ast::Stmt& s);
  void check_output(const ast::Stmt& s);
  void check_loss(const ast::Stmt& s);
  // ... and their parts
  std::optional<Shape> check_shape(const ast::Stmt& s);
  std::optional<int64_t> positive_size(const ast::Dim& d);
  std::optional<std::vector<int64_t>> sizes(const std::vector<ast::Dim>& written);
  std::optional<InitSpecDecl> check_init(const ast::Stmt& s);
  std::optional<double> const_value(ast::ExprId id, const char* what);
  void check_fn_body(ast::ExprId id, const ast::Stmt& fn, const std::unordered_set<std::string>& params);
  void check_output_name(const ast::Stmt& s);
  void add_output(const ast::Stmt& s, const TExpr* value, SourceRange where);
  void add_let(const ast::Stmt& s, const TExpr* value);

  // --- expressions (sema_expr.cpp)
  const TExpr* elab(ast::ExprId id, const Env& env);  // elab_unbounded, then bounded
  const TExpr* elab_unbounded(ast::ExprId id, const Env& env);
  const TExpr* elab_unary(const ast::Expr& e, const Env& env);
  const TExpr* elab_chain(const ast::Expr& e, const Env& env);
  const TExpr* elab_transpose(const ast::Expr& e, const Env& env);
  const TExpr* elab_name(const ast::Expr& e, const Env& env);
  const TExpr* unbound_name(const ast::Expr& e, const Env& env);
  const TExpr* ref(const ast::Expr& e, const Binding& b, const Env& env);
  const TExpr* binary(ast::Op op, const TExpr* a, const TExpr* b, SourceRange op_range,
                      SourceRange range, const Env& env);
  const TExpr* elab_call(const ast::Expr& e, const Env& env);
  bool check_argument_order(const ast::Expr& call, const Env& env);
  const TExpr* elab_fn_call(const ast::Expr& e, const FnDecl& fn, const Env& env);
  std::optional<std::vector<const TExpr*>> bind_fn_arguments(const ast::Expr& e, const ast::Stmt& fn,
                                                             const Env& env);
  const TExpr* inline_fn(const ast::Expr& e, const FnDecl& fn, const std::vector<const TExpr*>& args,
                         const Env& env);

  // --- builtin calls (sema_builtins.cpp)
  const TExpr* elab_builtin(const ast::Expr& e, const BuiltinInfo& info, const Env& env);
  std::optional<std::vector<const ast::Arg*>> bind_arguments(const ast::Expr& e, const BuiltinInfo& info,
                                                             const Env& env);
  bool elab_arguments(TExpr& call, const BuiltinInfo& info, const std::vector<const ast::Arg*>& given,
                      const Env& env);
  std::optional<Shape> shape_argument(const ast::Arg& arg, const BuiltinInfo& info, const BuiltinParam& p,
                                      const Env& env);
  std::optional<int64_t> int_argument(const ast::Arg& arg, const BuiltinInfo& info, const BuiltinParam& p,
                                      const Env& env);
  bool result_shape(TExpr& call, const BuiltinInfo& info, const Env& env);

  // --- nodes and errors (sema.cpp)
  TExpr* node(K kind, Shape shape, SourceRange range);
  const TExpr* error_node(SourceRange range);
  // `t`, or an error when its shape has more elements than any tensor may
  // (a broadcast or an outer product of declared shapes can exceed it).
  const TExpr* bounded(const TExpr* t, const Env& env);
  void error(SourceRange where, const std::string& message, const Env& env);

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
  // Inputs, labels and params whose declared shape was an error: bound (so
  // the declarations keep their places), but their uses are Error nodes,
  // which raise no second error.
  std::unordered_set<std::string> shapeless_;
  std::vector<FnDecl> fns_;
  // Inlined fn calls: (fn, argument nodes, outermost call site) -> the
  // body's node. A call repeated with the same arguments is one node, so
  // inlining is linear in the program (f(a) + f(a) nested 60 deep is 60
  // nodes, not 2^60); the call site is in the key because errors in a body
  // are reported at the outermost call.
  std::map<std::tuple<const FnDecl*, std::vector<const TExpr*>, uint32_t, uint32_t>, const TExpr*> inlined_;
  // Inlining stopped: the typed nodes reached kMaxTypedNodes (reported once).
  bool inlining_stopped_ = false;
  const ast::Stmt* current_ = nullptr;
  const ast::Stmt* loss_stmt_ = nullptr;
  ConstOverrides overrides_;
  std::unordered_set<std::string> used_overrides_;
  // Expression mode: free variables, by name.
  std::unordered_map<std::string, int> vars_;
  std::vector<std::string> var_names_;
};

}  // namespace nabla::detail
