// The subcommands of `nabla` (docs/commands.md). Each registers itself on the
// CLI11 app and runs through the pipeline (pipeline.h, driver/).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nabla::cli {

// Options every subcommand accepts (docs/commands.md, "Global options").
struct GlobalOptions {
  std::string dtype = "f32";
  std::optional<int> threads;
  std::vector<std::string> set;  // NAME=VALUE
  std::optional<uint64_t> seed;
  bool no_cache = false;
  bool time_passes = false;
};

// What main() runs once CLI11 has parsed the command line; returns the exit status.
using Action = std::function<int()>;

void add_check_command(CLI::App& app, const GlobalOptions& global, Action& action);
// eval, simplify, diff -e
void add_expression_commands(CLI::App& app, const GlobalOptions& global, Action& action);
// graph
void add_graph_command(CLI::App& app, const GlobalOptions& global, Action& action);
// gradcheck
void add_gradcheck_command(CLI::App& app, const GlobalOptions& global, Action& action);
// init
void add_init_command(CLI::App& app, const GlobalOptions& global, Action& action);
// train
void add_train_command(CLI::App& app, const GlobalOptions& global, Action& action);
// compile, bench
void add_compile_bench_commands(CLI::App& app, const GlobalOptions& global, Action& action);
// run, grad
void add_run_grad_commands(CLI::App& app, const GlobalOptions& global, Action& action);

// nabla diff MODEL.nn (the expression form is in expr_commands.cpp).
int run_model_diff(const std::string& path, const std::string& wrt, bool no_simplify, bool trace_rules,
                   const std::string& format, bool hvp, const GlobalOptions& global);

}  // namespace nabla::cli
