// nabla init MODEL.nn -o P.npz [--seed N]: parameters by their `init`.
#include <iostream>
#include <random>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "runtime/init.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

int run_init(const std::string& path, const std::string& out, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(path, *options, std::cerr);
  if (!loaded) return kExitUserError;
  std::vector<runtime::ParamInit> params;
  for (const ParamDecl& p : loaded->model.params)
    params.push_back({p.name, p.shape.dims(), kind_of(p.init.kind), p.init.a, p.init.b});
  uint64_t seed = 0;
  if (global.seed) {
    seed = *global.seed;
  } else {  // say which seed was drawn, so the file can be made again
    seed = std::random_device{}();
    std::cerr << "nabla: initialized with --seed " << seed << "\n";
  }
  try {
    runtime::check_output(out, {path});
    runtime::write_npz(out,
                       runtime::initialize(params, seed,
                                           global.dtype == "f64" ? runtime::DType::F64 : runtime::DType::F32),
                       false, {path});
  } catch (const runtime::NpzError& e) {
    print_error(std::cerr, e.what());
    return kExitUserError;
  }
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
