// The compilation pipeline as the command line drives it: a flat list of
// steps (read, parse, check; later lower, simplify, differentiate, codegen),
// each run by one function here.
#pragma once

#include <chrono>
#include <iosfwd>
#include <utility>
#include <vector>
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

// The largest model file read (a device such as /dev/zero never ends).
constexpr size_t kMaxSourceBytes = size_t{256} << 20;

// Reads a file; nullopt (and an error on `err`) when it cannot be read.
std::optional<std::string> read_file(const std::string& path, std::ostream& err);

struct LoadedModel {
  std::unique_ptr<SourceFile> file;  // owns the text the AST points into
  ast::Module ast;
  CheckedModel model;
};

// Wall time of each pass, for --time-passes.
class PassTimes {
public:
  // Runs `f` and records its time under `name`; returns what `f` returns.
  template <typename F>
  auto time(const std::string& name, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    struct Record {
      PassTimes* self;
      std::string name;
      std::chrono::steady_clock::time_point t0;
      ~Record() {
        self->entries_.emplace_back(
            name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    } record{this, name, t0};
    return f();
  }
  void add(const std::string& name, double seconds) { entries_.emplace_back(name, seconds); }
  void print(std::ostream& out) const;

private:
  std::vector<std::pair<std::string, double>> entries_;
};

// The stages load_model and load_expression can stop after (--emit).
enum class Stage { Parse, Check };

// Reads, parses and (unless `last` is Parse) checks a .nn file. Prints
// diagnostics to `err` and returns nullopt when there is any error.
std::optional<LoadedModel> load_model(const std::string& path, const SemaOptions& options,
                                      std::ostream& err, Stage last = Stage::Check,
                                      PassTimes* times = nullptr);

struct LoadedExpr {
  std::unique_ptr<SourceFile> file;  // named "<expr>"
  ast::Module ast;
  CheckedExpr expr;
};

// Parses and checks an expression (expression mode, spec/nn-language.md).
std::optional<LoadedExpr> load_expression(const std::string& text, std::ostream& err,
                                          Stage last = Stage::Check);

}  // namespace nabla::cli
