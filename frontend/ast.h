// The abstract syntax tree of a .nn file, as written.
//
// The AST keeps syntax and source ranges; it knows nothing of shapes or
// meaning (that is sema's job, and the IR's). Expressions live in one arena
// per Module and refer to each other by index, which keeps the parser's
// attributes trivial and the tree cheap to build. Chains of left-associative
// operators (`a + b - c`, `a * b @ c`) are stored flat, so a 1 MB line of
// `x+x+...` is one node with many operands, not a tree 500,000 levels deep.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frontend/source.h"

namespace nabla::ast {

using ExprId = int32_t;
constexpr ExprId kNoExpr = -1;

enum class Op : uint8_t {
  Add, Sub, Mul, Div, MatMul,  // chain operators
  Pow,                         // right-associative, binary
  Neg, Plus,                   // unary prefix
  Lt, Le, Gt, Ge, Eq, Ne,      // comparisons (do not chain)
};
const char* op_spelling(Op op);

enum class ExprKind : uint8_t {
  Number,     // number
  Name,       // name
  Call,       // name(args)
  Unary,      // op operands[0]
  Chain,      // operands[0] ops[0] operands[1] ops[1] ... (left-associative)
  Power,      // operands[0] ^ operands[1]
  Compare,    // operands[0] ops[0] operands[1]
  Transpose,  // operands[0].T
  ShapeLiteral,  // [d1, d2, ...]: the shape argument of broadcast and sum_to
};

// One size of a shape as written; sema checks it is a positive integer.
struct Dim {
  std::string text;
  SourceRange range;
};

struct Arg {
  std::string keyword;  // empty for a positional argument
  SourceRange keyword_range;
  ExprId value = kNoExpr;
};

struct Expr {
  ExprKind kind = ExprKind::Number;
  SourceRange range;             // the whole expression
  double number = 0;             // Number
  std::string name;              // Name, Call (the callee)
  SourceRange name_range;        // Name, Call
  std::vector<ExprId> operands;  // Unary, Chain, Power, Compare, Transpose
  std::vector<Op> ops;           // Unary (1), Chain (operands-1), Compare (1)
  std::vector<SourceRange> op_ranges;  // where each of `ops` is written
  std::vector<Arg> args;         // Call
  std::vector<Dim> dims;         // ShapeLiteral
};

enum class StmtKind : uint8_t { Model, Input, Label, Param, Const, Fn, Let, Output, Loss };
const char* stmt_keyword(StmtKind kind);


struct InitSpec {
  std::string name;
  SourceRange name_range;
  bool has_args = false;  // written with parentheses
  std::vector<ExprId> args;
  SourceRange range;
};

struct Stmt {
  StmtKind kind = StmtKind::Let;
  SourceRange range;                // the whole statement
  std::string name;                 // every kind except Loss
  SourceRange name_range;
  std::vector<Dim> shape;           // Input, Label, Param
  SourceRange shape_range;
  bool distribution = false;        // Label
  std::optional<InitSpec> init;     // Param
  std::vector<std::string> params;  // Fn
  std::vector<SourceRange> param_ranges;
  ExprId value = kNoExpr;           // Const, Fn, Let, Output (if `= EXPR`), Loss
  SourceRange keyword_range;        // the leading keyword (or the name of a let)
};

struct Module {
  std::vector<Stmt> stmts;
  std::vector<Expr> exprs;
  ExprId root = kNoExpr;  // expression mode: the one expression
  // Names that statements with syntax errors would have bound: their uses
  // raise no second error.
  std::vector<std::string> failed_names;

  const Expr& expr(ExprId id) const { return exprs[static_cast<size_t>(id)]; }
  ExprId add(Expr e) {
    exprs.push_back(std::move(e));
    return static_cast<ExprId>(exprs.size() - 1);
  }
};

}  // namespace nabla::ast
