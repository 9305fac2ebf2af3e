// The compilation pipeline as the command line drives it: a flat list of
// steps (read, parse, check; later lower, simplify, differentiate, codegen),
// each run by one function here.
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "frontend/ast.h"
#include "frontend/model.h"
#include "frontend/sema.h"
#include "frontend/source.h"

namespace nabla::cli {

// Exit statuses (spec/cli.md).
constexpr int kExitOk = 0;
constexpr int kExitUserError = 1;
constexpr int kExitUsage = 2;

// A user error without a source location: "nabla: error: MESSAGE".
void print_error(std::ostream& err, const std::string& message);

// Reads a file; nullopt (and an error on `err`) when it cannot be read.
std::optional<std::string> read_file(const std::string& path, std::ostream& err);

struct LoadedModel {
  std::unique_ptr<SourceFile> file;  // owns the text the AST points into
  ast::Module ast;
  CheckedModel model;
};

// The stages load_model and load_expression can stop after (--emit).
enum class Stage { Parse, Check };

// Reads, parses and (unless `last` is Parse) checks a .nn file. Prints
// diagnostics to `err` and returns nullopt when there is any error.
std::optional<LoadedModel> load_model(const std::string& path, const SemaOptions& options,
                                      std::ostream& err, Stage last = Stage::Check);

struct LoadedExpr {
  std::unique_ptr<SourceFile> file;  // named "<expr>"
  ast::Module ast;
  CheckedExpr expr;
};

// Parses and checks an expression (expression mode, spec/nn-language.md).
std::optional<LoadedExpr> load_expression(const std::string& text, std::ostream& err,
                                          Stage last = Stage::Check);

}  // namespace nabla::cli
