// Helpers for frontend tests: run the parser and sema on a string.
#pragma once

#include <memory>
#include <sstream>
#include <string>

#include "frontend/ast_printer.h"
#include "frontend/diagnostics.h"
#include "frontend/parser.h"
#include "frontend/sema.h"

namespace nabla::test {

struct Checked {
  std::unique_ptr<SourceFile> file;
  ast::Module ast;
  CheckedModel model;
  std::string errors;  // rendered diagnostics; empty when there are none
  int error_count = 0;
};

inline Checked check(const std::string& text, const SemaOptions& options = {}) {
  Checked c;
  c.file = std::make_unique<SourceFile>("t.nn", text);
  Diagnostics diags(*c.file);
  c.ast = parse_file(*c.file, diags);
  c.model = check_model(c.ast, diags, options);
  std::ostringstream out;
  diags.render(out);
  c.errors = out.str();
  c.error_count = diags.error_count();
  return c;
}

struct ParsedExpr {
  std::string ast;     // prefix form, empty on error
  std::string errors;  // rendered diagnostics
};

inline ParsedExpr parse_expr(const std::string& text) {
  SourceFile file("<expr>", text);
  Diagnostics diags(file);
  ast::Module m = parse_expression(file, diags);
  std::ostringstream out;
  diags.render(out);
  return {m.root == ast::kNoExpr ? "" : print_ast_expr(m, m.root), out.str()};
}

// "t.nn:LINE:COL" of the first error, or "" when there is none.
inline std::string first_error_location(const std::string& errors) {
  const size_t end = errors.find(": error:");
  return end == std::string::npos ? "" : errors.substr(0, end);
}

}  // namespace nabla::test
