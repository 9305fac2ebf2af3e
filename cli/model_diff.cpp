// nabla diff MODEL.nn and nabla graph: the gradient program of a model's
// loss (driver/gradient.h), printed with the names a textbook uses for
// backpropagation, and its graph in Graphviz DOT.
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/gradient.h"
#include "frontend/lower.h"
#include "runtime/output.h"

namespace nabla::cli {

int run_model_diff(const std::string& path, const std::string& wrt_list, bool no_simplify, bool trace_rules,
                   const std::string& format, bool hvp, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(path, *options, std::cerr);
  if (!loaded) return kExitUserError;
  if (!loaded->model.loss) {
    print_error(std::cerr, "'" + path + "' has no loss: there is nothing to differentiate");
    return kExitUserError;
  }
  ir::Context ctx(global.dtype == "f64" ? ir::DType::F64 : ir::DType::F32);
  LoweredModel m = lower_model(loaded->model, ctx);
  std::vector<std::string> names;
  std::stringstream ss(wrt_list);
  for (std::string name; std::getline(ss, name, ',');) names.push_back(name);
  const std::vector<const ir::Node*> wrt = driver::params_named(m, names, path);
  std::cout << (hvp ? driver::hvp_text(ctx, m, wrt, !no_simplify, format)
                    : driver::gradient_text(ctx, m, wrt, !no_simplify, format, trace_rules ? &std::cerr : nullptr));
  return kExitOk;
}

namespace {

int run_graph(const std::string& path, bool grad, const std::string& out_path, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(path, *options, std::cerr);
  if (!loaded) return kExitUserError;
  ir::Context ctx;
  LoweredModel m = lower_model(loaded->model, ctx);
  const std::string dot = driver::graph_text(ctx, m, grad, path);
  if (out_path.empty() || out_path == "-") {
    std::cout << dot;
    return kExitOk;
  }
  runtime::write_output(out_path, dot, {path});
  return kExitOk;
}

}  // namespace

void add_graph_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  struct Args {
    std::string path, out;
    bool grad = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("graph", "Write a model's computational graph (or its gradient's) in Graphviz DOT");
  cmd->add_option("MODEL", args->path, "the .nn file")->required();
  cmd->add_flag("--grad", args->grad, "the graph of the gradient program instead of the forward pass and loss");
  cmd->add_option("-o,--output", args->out, "the .dot file to write (default: standard output)");
  cmd->callback([args, &action, &global] {
    action = [args, &global] { return run_graph(args->path, args->grad, args->out, global); };
  });
}

}  // namespace nabla::cli
