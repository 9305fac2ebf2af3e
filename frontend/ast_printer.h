// Prints the AST as fully parenthesized prefix forms, one statement per line:
// `-x^2` is `(neg (^ x 2))`, `a - b - c` is `(- (- a b) c)`. This is what
// `nabla check --emit=ast` shows and what the precedence golden tests read.
#pragma once

#include <string>

#include "frontend/ast.h"

namespace nabla {

std::string print_ast_expr(const ast::Module& module, ast::ExprId id);
std::string print_ast(const ast::Module& module);

}  // namespace nabla
