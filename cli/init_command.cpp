// nabla init MODEL.nn -o P.npz [--seed N]: parameters by their `init`.
#include <iostream>
#include <random>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/arrays.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

int run_init(const std::string& path, const std::string& out, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(path, *options, std::cerr);
  if (!loaded) return kExitUserError;
  const uint64_t seed = global.seed ? *global.seed : std::random_device{}();
  runtime::check_output(out, {path});
  runtime::write_npz(out, driver::initial_params(loaded->model, seed, dtype_of(global)), false, {path});
  // Say which seed was drawn, so the file can be made again (once it is).
  if (!global.seed) std::cerr << "nabla: initialized with --seed " << seed << "\n";
  return kExitOk;
}

}  // namespace

void add_init_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  struct Args {
    std::string model, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("init", "Initialize a model's parameters by their `init` (.npz)");
  cmd->add_option("MODEL", args->model, "the .nn file")->required();
  cmd->add_option("-o,--output", args->out, "the .npz file to write")->required();
  cmd->callback([args, &action, &global] {
    action = [args, &global] { return run_init(args->model, args->out, global); };
  });
}

}  // namespace nabla::cli
