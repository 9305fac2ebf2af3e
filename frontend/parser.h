// The .nn parser (Boost.Spirit X3; the grammar lives in parser.cpp only).
//
// Statements end at the end of their line unless a bracket is open. A syntax
// error is reported with what was expected and what was found; the parser then
// skips to the next statement boundary and goes on, so one run reports several
// errors. Hostile input is bounded: nesting deeper than kMaxNesting and ASTs
// larger than kMaxAstNodes are located errors, never a stack overflow.
#pragma once

#include "frontend/ast.h"
#include "frontend/diagnostics.h"
#include "frontend/source.h"

namespace nabla {

// Brackets, unary signs and `^` exponents nested inside one another.
#if defined(NABLA_SANITIZE)
// Under ASan each level of the X3 parser takes about 20 KB of stack (20x more),
// and ASan cannot unwind an exception thrown more than 64 MB deep
// (google/sanitizers#189): sanitizer builds stop nesting sooner.
constexpr int kMaxNesting = 2000;
#else
constexpr int kMaxNesting = 20000;
#endif
// Statements plus expression nodes in one file (a 1 MB line `x+x+...` is
// about 500,000; real models have thousands).
constexpr int kMaxAstNodes = 2'000'000;
// Typed expression nodes, after inlining the fn calls (frontend/sema_expr.cpp).
constexpr int kMaxTypedNodes = 2'000'000;
// The parser stops after this many syntax errors.
constexpr int kMaxSyntaxErrors = 100;

// Parses a whole .nn file; statements that parse are kept even when others fail.
ast::Module parse_file(const SourceFile& file, Diagnostics& diags);

// Parses one expression (expression mode): newlines are whitespace; the result
// is `module.root` (kNoExpr after an error).
ast::Module parse_expression(const SourceFile& file, Diagnostics& diags);

}  // namespace nabla
