// nabla: symbolic differentiation and expression compiler for neural networks.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "codegen/llvm_info.h"
#include "driver/error.h"
#include "driver/nabla.h"
#include "ir/stack.h"
#include "runtime/budget.h"
#include "runtime/comm.h"
#include "runtime/npz.h"
#include "runtime/output.h"

namespace {

// MPI's part of --version: whether the build has it, and the plugin a job
// would load (runtime/comm.h).
std::string mpi_text() {
  if (!nabla::runtime::mpi_built()) return "not built in";
  const std::string plugin = nabla::runtime::mpi_plugin_path();
  return plugin.empty() ? "built, but its plugin libnabla_mpi.so is missing: set NABLA_MPI_PLUGIN"
                        : "built in: mpirun -np N nabla train ... (plugin " + nabla::runtime::escaped(plugin) + ")";
}

std::string version_text() {
  return "nabla " + nabla::version() + " (LLVM " + nabla::llvm_version() + ", host " +
         nabla::host_target_triple() + ", cpu " + nabla::host_cpu_name() + ", MPI " +
         mpi_text() + ")";
}

// Runs the command; an exception that escapes it is reported, never an
// abort: a resource over its bound or a file that cannot be written is a
// user error, anything else an internal error (a bug to report).
int run_guarded(const nabla::cli::Action& action) {
  using nabla::cli::print_error;
  try {
    return nabla::run_on_large_stack(action);
  } catch (const std::bad_alloc&) {
    print_error(std::cerr, "out of memory (NABLA_MEMORY_LIMIT=BYTES bounds what nabla asks for)");
  } catch (const nabla::runtime::ResourceError& e) {
    print_error(std::cerr, e.what());
  } catch (const nabla::runtime::OutputError& e) {
    print_error(std::cerr, e.what());
  } catch (const nabla::runtime::NpzError& e) {
    print_error(std::cerr, e.what());
  } catch (const nabla::driver::Error& e) {
    print_error(std::cerr, e.what());
  } catch (const std::exception& e) {
    print_error(std::cerr, std::string("internal error: ") + e.what());
  }
  return nabla::cli::kExitUserError;
}

// Whatever went to standard output must have arrived: a full disk or a closed
// pipe is an error (exit 1), not a silent success.
int finish_stdout(int rc) {
  errno = 0;
  std::cout.flush();
  const bool failed = !std::cout || std::fflush(stdout) != 0 || std::ferror(stdout);
  if (!failed) return rc;
  nabla::cli::print_error(std::cerr, std::string("cannot write to standard output: ") +
                                         (errno ? std::strerror(errno) : "write error"));
  return rc == nabla::cli::kExitOk ? nabla::cli::kExitUserError : rc;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nabla::cli;
  // Before any thread starts: the heaps LLVM compiles in may use huge pages
  // (codegen/compile_heap.h).
  nabla::use_huge_pages_for_compiling();
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
      ->check(positive_integer("thread count", nabla::runtime::kMaxThreads));
  app.add_option("--set", global.set, "Override a const: --set NAME=VALUE (repeatable)")
      ->allow_extra_args(false)
      ->check(set_value());
  app.add_option("--seed", global.seed, "Seed for initialization and shuffling")->check(seed_value());
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
    const int rc = app.exit(e);  // --help prints to standard output: it must arrive
    return finish_stdout(rc == 0 ? kExitOk : kExitUsage);
  }
  if (show_version) {
    std::cout << version_text() << "\n";
    return finish_stdout(kExitOk);
  }
  if (!action) {
    std::cerr << app.help();
    return kExitUsage;
  }
  // Deeply nested input recurses deeply: run the work on a large stack.
  // NABLA_MEMORY_LIMIT is read first, so a malformed one stops every
  // command, not only those that come to check memory.
  const int rc = run_guarded([&action] {
    nabla::runtime::memory_budget();
    return action();
  });
  // A process of a data-parallel job that fails ends the job: its peers
  // would otherwise wait for it in their next allreduce.
  if (rc != kExitOk && rc != 130)
    if (const nabla::runtime::Comm* w = nabla::runtime::started_world()) {
      std::cout.flush();
      std::cerr << "nabla: rank " << w->rank() << " of " << w->size() << " failed (exit " << rc
                << "): ending the job\n";
      w->abort(rc);
    }
  return finish_stdout(rc);
}
