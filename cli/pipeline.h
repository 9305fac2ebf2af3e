// The command's side of the library (driver/): exit statuses, error lines,
// and loading with the diagnostics rendered to standard error. Everything
// else a command does is a driver/ call whose result it renders.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "driver/kernels.h"
#include "driver/load.h"
#include "frontend/sema.h"

namespace nabla::cli {

using driver::LoadedExpr;
using driver::LoadedModel;
using driver::PassTimes;
using driver::Stage;

// Exit statuses (docs/commands.md).
constexpr int kExitOk = 0;
constexpr int kExitUserError = 1;
constexpr int kExitUsage = 2;

// A user error without a source location: "nabla: error: MESSAGE".
void print_error(std::ostream& err, const std::string& message);

// driver::load_model with its diagnostics printed to `err`; nullopt when
// there is any error.
std::optional<LoadedModel> load_model(const std::string& path, const SemaOptions& options, std::ostream& err,
                                      Stage last = Stage::Check, PassTimes* times = nullptr);
// driver::load_expression likewise.
std::optional<LoadedExpr> load_expression(const std::string& text, std::ostream& err, Stage last = Stage::Check);

// --time-passes: the table of pass times.
void print_times(const PassTimes& times, std::ostream& out);

// The compile options the global options give (--threads, --no-cache).
driver::CompileOptions compile_options(const GlobalOptions& global, runtime::DType dtype);

// --dtype as the runtime's element type.
runtime::DType dtype_of(const GlobalOptions& global);

// --threads, else every core.
int thread_count(const GlobalOptions& global);

}  // namespace nabla::cli
