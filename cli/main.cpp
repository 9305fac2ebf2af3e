// nabla: symbolic differentiation and expression compiler for neural networks.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/pipeline.h"
#include "codegen/llvm_info.h"
#include "ir/stack.h"

namespace {

std::string version_text() {
  return "nabla " NABLA_VERSION " (LLVM " + nabla::llvm_version() + ", host " +
         nabla::host_target_triple() + ", cpu " + nabla::host_cpu_name() + ")";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nabla::cli;
  CLI::App app{"nabla: symbolic differentiation and expression compiler for neural networks.\n"
               "Reads .nn model files; see `nabla SUBCOMMAND --help`.",
               "nabla"};
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options may follow the subcommand's own arguments
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version of nabla and of its LLVM");

  GlobalOptions global;
  app.add_option("--dtype", global.dtype, "Element type of tensors: f32 (default) or f64")
      ->check(CLI::IsMember({"f32", "f64"}));
  app.add_option("--threads", global.threads, "Threads to run kernels on (default: all cores)")
      ->check(CLI::PositiveNumber);
  app.add_option("--set", global.set, "Override a const: --set NAME=VALUE (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--seed", global.seed, "Seed for initialization and shuffling");
  app.add_flag("--no-cache", global.no_cache,
               "Compile kernels afresh, without reading or writing the kernel cache "
               "($NABLA_CACHE_DIR, else $XDG_CACHE_HOME/nabla or ~/.cache/nabla)");
  app.add_flag("--time-passes", global.time_passes, "Print the time of each compilation pass to stderr");

  Action action;
  add_check_command(app, global, action);
  add_expression_commands(app, global, action);
  add_graph_command(app, global, action);
  add_run_grad_commands(app, global, action);
  add_init_command(app, global, action);
  add_gradcheck_command(app, global, action);
  add_compile_bench_commands(app, global, action);
  add_train_command(app, global, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (show_version) {
    std::cout << version_text() << "\n";
    return kExitOk;
  }
  if (!action) {
    std::cerr << app.help();
    return kExitUsage;
  }
  // Deeply nested input recurses deeply: run the work on a large stack.
  return nabla::run_on_large_stack(action);
}
