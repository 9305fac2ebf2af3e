// Semantic analysis: AST -> checked model (model.h).
//
// Resolves names (each bound once, before use; keywords and builtins are
// reserved), inlines `fn` calls (a fn sees its arguments and consts only; no
// recursion), evaluates consts (applying --set overrides), binds builtin
// arguments, infers shapes (NumPy broadcasting, matmul rules), and checks the
// model's rules: one scalar loss at most, labels used by the loss only, valid
// shapes and initializers. Errors go to Diagnostics, located, one per fault:
// an expression that failed stands as an Error node and raises nothing more.
#pragma once

#include <map>
#include <string>

#include "frontend/ast.h"
#include "frontend/diagnostics.h"
#include "frontend/model.h"

namespace nabla {

// --set NAME=VALUE, by const name.
using ConstOverrides = std::map<std::string, double>;

struct SemaOptions {
  ConstOverrides overrides;
};

// `unused_overrides` (if given) receives the --set names that name no const.
CheckedModel check_model(const ast::Module& module, Diagnostics& diags,
                         const SemaOptions& options = {},
                         std::vector<std::string>* unused_overrides = nullptr);

// Expression mode: every free name is a scalar variable; `NAME = EXPR`
// bindings before the expression (as nabla prints them) are lets.
CheckedExpr check_expression(const ast::Module& module, Diagnostics& diags);

}  // namespace nabla
