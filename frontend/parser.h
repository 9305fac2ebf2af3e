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
constexpr int kMaxNesting = 20000;
// Statements plus expression nodes in one file.
constexpr int kMaxAstNodes = 5'000'000;
// The parser stops after this many syntax errors.
constexpr int kMaxSyntaxErrors = 100;

// Parses a whole .nn file; statements that parse are kept even when others fail.
ast::Module parse_file(const SourceFile& file, Diagnostics& diags);

// Parses one expression (expression mode): newlines are whitespace; the result
// is `module.root` (kNoExpr after an error).
ast::Module parse_expression(const SourceFile& file, Diagnostics& diags);

}  // namespace nabla
