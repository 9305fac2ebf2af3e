// Loading a model or an expression: read, parse, check. Diagnostics come
// back as values (driver/error.h) with the text the command prints for them;
// nothing here prints. Also the passes' wall times (--time-passes).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "driver/error.h"
#include "frontend/ast.h"
#include "frontend/model.h"
#include "frontend/sema.h"
#include "frontend/source.h"

namespace nabla::driver {

// The largest model file read (a device such as /dev/zero never ends).
constexpr size_t kMaxSourceBytes = size_t{256} << 20;

// Reads a file whole, up to kMaxSourceBytes; throws Error saying why not.
std::string read_source(const std::string& path);

// Wall time of each pass.
class PassTimes {
public:
  // Runs `f` and records its time under `name`; returns what `f` returns.
  template <typename F>
  auto time(const std::string& name, F&& f) {
    struct Record {
      PassTimes* self;
      std::string name;
      std::chrono::steady_clock::time_point t0;
      ~Record() {
        self->entries_.emplace_back(
            name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    } record{this, name, std::chrono::steady_clock::now()};
    return f();
  }
  void add(const std::string& name, double seconds) { entries_.emplace_back(name, seconds); }
  const std::vector<std::pair<std::string, double>>& entries() const { return entries_; }
  // One line per pass (milliseconds, share of the total), then the total.
  std::string table() const;

private:
  std::vector<std::pair<std::string, double>> entries_;
};

struct LoadedModel {
  std::unique_ptr<SourceFile> file;  // owns the text the AST points into
  ast::Module ast;
  CheckedModel model;
};

struct LoadedExpr {
  std::unique_ptr<SourceFile> file;  // named "<expr>"
  ast::Module ast;
  CheckedExpr expr;
};

// The stages loading can stop after (--emit).
enum class Stage { Parse, Check };

// What loading gave: the result when there was no error, and every
// diagnostic (`rendered`: all of them as the command prints them).
template <typename T>
struct Loaded {
  std::optional<T> value;
  std::vector<Message> messages;
  std::string rendered;
};

// Reads, parses and (unless `last` is Parse) checks a .nn file.
Loaded<LoadedModel> load_model(const std::string& path, const SemaOptions& options, Stage last = Stage::Check,
                               PassTimes* times = nullptr);
// The same for model text held in memory; `name` stands for the file in messages.
Loaded<LoadedModel> load_model_text(const std::string& name, std::string text, const SemaOptions& options,
                                    Stage last = Stage::Check, PassTimes* times = nullptr);

// Parses and checks an expression (expression mode, docs/language.md).
Loaded<LoadedExpr> load_expression(const std::string& text, Stage last = Stage::Check);

}  // namespace nabla::driver
