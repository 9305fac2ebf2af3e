// nabla check MODEL.nn: parse, type- and shape-check, print a one-line summary.
#include <charconv>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/gradient.h"
#include "driver/render.h"
#include "frontend/ast_printer.h"
#include "frontend/lower.h"
#include "ir/simplify.h"

namespace nabla::cli {
namespace {

std::string list(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}

template <typename Decl>
std::vector<std::string> tensors(const std::vector<Decl>& decls) {
  std::vector<std::string> out;
  for (const Decl& d : decls) out.push_back(d.name + " " + d.shape.str());
  return out;
}

}  // namespace

std::string model_summary(const CheckedModel& m) {
  std::vector<std::string> labels;
  for (const LabelDecl& l : m.labels)
    labels.push_back(l.name + " " + l.shape.str() + (l.distribution ? " distribution" : ""));
  std::vector<std::string> outputs;
  for (const OutputDecl& o : m.outputs) outputs.push_back(o.name + " " + o.value->shape.str());
  std::vector<std::string> consts;
  for (const ConstDecl& c : m.consts) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, c.value);
    consts.push_back(c.name + "=" + std::string(buf, end));
  }
  const int64_t count = m.param_count();
  std::string s = (m.name.empty() ? std::string("model") : m.name) + ": " +
                  std::to_string(count) + (count == 1 ? " parameter in " : " parameters in ") +
                  std::to_string(m.params.size()) + (m.params.size() == 1 ? " tensor (" : " tensors (") +
                  list(tensors(m.params)) +
                  "); inputs " + list(tensors(m.inputs)) + "; labels " + list(labels) +
                  "; outputs " + list(outputs) + "; loss " + (m.loss ? "scalar" : "none");
  if (!consts.empty()) s += "; consts " + list(consts);
  return s;
}

// Prints the stage `emit` names ("" for the summary), timing the passes it runs.
int emit_model(const LoadedModel& loaded, const std::string& emit, PassTimes& times) {
  if (emit == "ast") {
    std::cout << print_ast(loaded.ast);
    return kExitOk;
  }
  if (emit.empty()) {
    std::cout << model_summary(loaded.model) << "\n";
    return kExitOk;
  }
  ir::Context ctx;
  const LoweredModel m = times.time("lower", [&] { return lower_model(loaded.model, ctx); });
  ir::PrintOptions po;
  for (const auto& [name, node] : m.lets) po.names[node] = name;
  po.bind_named = true;
  std::vector<const ir::Node*> roots;
  std::vector<std::string> labels;
  if (emit == "grad") {
    if (!m.loss) {
      print_error(std::cerr, "the model has no loss: there is no gradient program");
      return kExitUserError;
    }
    driver::GradientProgram p =
        times.time("differentiate", [&] { return driver::gradient_program(ctx, m, m.params, true); });
    po.names = p.names;
    roots = p.gradients;
    for (const ir::Node* w : m.params) labels.push_back("d/d" + w->name());
  } else {
    for (const auto& [name, node] : m.outputs) {
      roots.push_back(node);
      labels.push_back("output " + name);
    }
    if (m.loss) {
      roots.push_back(m.loss);
      labels.push_back("loss");
    }
    if (emit == "simplified") {
      const ir::SimplifyOptions so = driver::simplify_options(m);
      roots = times.time("simplify", [&] { return ir::simplify(ctx, roots, so); });
      po.names.clear();
      po.bind_named = false;
    }
  }
  times.time("print", [&] {
    std::cout << driver::render(roots, labels, po, "text");
    return 0;
  });
  return kExitOk;
}

void add_check_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("check", "Parse and type/shape-check a model (or an expression "
                                          "with -e); print a one-line summary");
  struct Args {
    std::string path, expr, emit;
  };
  auto args = std::make_shared<Args>();
  auto* model_opt = cmd->add_option("MODEL", args->path, "the .nn file");
  auto* expr_opt = cmd->add_option("-e,--expr", args->expr, "check an expression instead of a file");
  model_opt->excludes(expr_opt);
  cmd->add_option("--emit", args->emit,
                  "stop after a stage and print it: ast, ir (lowered), simplified, grad (the gradient program)")
      ->check(CLI::IsMember({"ast", "ir", "simplified", "grad"}));
  cmd->callback([&global, &action, args, model_opt, expr_opt] {
    if (model_opt->count() + expr_opt->count() == 0)
      throw CLI::RequiredError("MODEL or -e EXPR");
    action = [&global, args, expr_mode = expr_opt->count() > 0] {
      if (expr_mode) {
        const Stage last = args->emit == "ast" ? Stage::Parse : Stage::Check;
        auto loaded = load_expression(args->expr, std::cerr, last);
        if (!loaded) return kExitUserError;
        if (args->emit == "ast") {
          std::cout << print_ast(loaded->ast);
          return kExitOk;
        }
        std::string vars;
        for (const std::string& v : loaded->expr.vars) vars += (vars.empty() ? "" : ", ") + v;
        std::cout << "expression of " << (vars.empty() ? "no variables" : vars) << ": scalar\n";
        return kExitOk;
      }
      auto options = sema_options(global, std::cerr);
      if (!options) return kExitUserError;
      const Stage last = args->emit == "ast" ? Stage::Parse : Stage::Check;
      PassTimes times;
      auto loaded = load_model(args->path, *options, std::cerr, last, &times);
      if (!loaded) return kExitUserError;
      const int rc = emit_model(*loaded, args->emit, times);
      if (global.time_passes) print_times(times, std::cerr);
      return rc;
    };
  });
}

}  // namespace nabla::cli
