// Expression mode: nabla eval, nabla simplify, nabla diff -e (docs/commands.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/error.h"
#include "driver/expression.h"
#include "driver/render.h"
#include "ir/print.h"

namespace nabla::cli {
namespace {

std::string format_value(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// "x=1.5,w=2" -> {x: 1.5, w: 2} in *out; "" or the error message.
std::string parse_point(const std::string& text, std::map<std::string, double>* out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::string name;
    double v = 0;
    if (const std::string why = parse_name_value(item, "--at", &name, &v); !why.empty()) return why;
    if (!out->emplace(name, v).second) return "'" + name + "' is given twice";
  }
  return "";
}

// --at's check (a usage error, exit 2).
CLI::Validator point_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::map<std::string, double> point;
        return parse_point(text, &point);
      },
      "NAME=VALUE,...");
}

// The point of --at (point_value() checked it).
std::map<std::string, double> point_of(const std::string& text) {
  std::map<std::string, double> point;
  parse_point(text, &point);
  return point;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// driver::expression with its diagnostics printed; nullopt when it does not check.
std::optional<driver::Expression> setup(const std::string& text, ir::Context& ctx,
                                        const std::vector<std::string>& wrt) {
  try {
    return driver::expression(text, ctx, wrt);
  } catch (const driver::Error& e) {
    std::cerr << e.rendered();
    return std::nullopt;
  }
}

// Values of the variables at a point; nullopt (with an error) when one is missing.
std::optional<std::vector<double>> evaluate_at(std::span<const ir::Node* const> roots,
                                               const std::map<std::string, double>& point) {
  if (const std::string missing = driver::missing_variable(roots, point); !missing.empty()) {
    print_error(std::cerr, "no value for '" + missing + "': give it with --at " + missing + "=VALUE");
    return std::nullopt;
  }
  return driver::evaluate(roots, point);
}

struct ExprArgs {
  std::string model, expr, at, wrt, format = "text";
  bool no_simplify = false, hessian = false, trace_rules = false, hvp = false;
  int order = 1;
};

int run_eval(const ExprArgs& a) {
  ir::Context ctx;
  auto s = setup(a.expr, ctx, {});
  if (!s) return kExitUserError;
  const std::map<std::string, double> point = point_of(a.at);
  const ir::Node* root = s->lowered.root;
  auto v = evaluate_at(std::span<const ir::Node* const>(&root, 1), point);
  if (!v) return kExitUserError;
  std::cout << format_value((*v)[0]) << "\n";
  return kExitOk;
}

int run_simplify(const ExprArgs& a) {
  ir::Context ctx;
  auto s = setup(a.expr, ctx, {});
  if (!s) return kExitUserError;
  std::cout << ir::print_text(driver::simplified(ctx, *s, a.trace_rules ? &std::cerr : nullptr)) << "\n";
  return kExitOk;
}

int run_diff(const ExprArgs& a) {
  const std::vector<std::string> wrt = split_names(a.wrt);
  if (wrt.empty()) {
    print_error(std::cerr, "--wrt needs at least one variable, as in --wrt x,w");
    return kExitUsage;
  }
  for (size_t i = 0; i < wrt.size(); ++i)
    if (std::find(wrt.begin(), wrt.begin() + static_cast<long>(i), wrt[i]) != wrt.begin() + static_cast<long>(i)) {
      print_error(std::cerr, "--wrt names '" + wrt[i] + "' twice");
      return kExitUsage;
    }
  ir::Context ctx;
  auto s = setup(a.expr, ctx, wrt);
  if (!s) return kExitUserError;
  const std::vector<driver::Derivative> ds =
      driver::derivatives(ctx, *s, wrt, a.order, a.hessian, !a.no_simplify, a.trace_rules ? &std::cerr : nullptr);
  // Labels: d/dx, d2/dx2 and d2/dxdy (by position in the Hessian), or at a
  // point the variables alone.
  std::vector<std::string> labels;
  std::vector<const ir::Node*> roots;
  for (size_t k = 0; k < ds.size(); ++k) {
    const driver::Derivative& d = ds[k];
    const bool diagonal = !a.hessian || k / wrt.size() == k % wrt.size();
    if (d.y.empty()) labels.push_back(a.at.empty() ? "d/d" + d.x : d.x);
    else if (!a.at.empty()) labels.push_back(a.hessian ? d.x + "," + d.y : d.x);
    else labels.push_back(diagonal ? "d2/d" + d.x + "2" : "d2/d" + d.x + "d" + d.y);
    roots.push_back(d.value);
  }
  if (!a.at.empty()) {
    auto values = evaluate_at(roots, point_of(a.at));
    if (!values) return kExitUserError;
    for (size_t i = 0; i < roots.size(); ++i) std::cout << labels[i] << " " << format_value((*values)[i]) << "\n";
    return kExitOk;
  }
  std::cout << driver::render(roots, labels, {}, a.format);
  return kExitOk;
}

}  // namespace

void add_expression_commands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto args = std::make_shared<ExprArgs>();

  auto* eval = app.add_subcommand("eval", "Print the value of an expression at a point (f64, %.17g)");
  eval->add_option("-e,--expr", args->expr, "the expression")->required();
  eval->add_option("--at", args->at, "the point, as x=1.5,w=2")->required()->check(point_value());
  eval->callback([args, &action] { action = [args] { return run_eval(*args); }; });

  auto* simp = app.add_subcommand("simplify", "Print the simplified expression");
  simp->add_option("-e,--expr", args->expr, "the expression")->required();
  simp->add_flag("--trace-rules", args->trace_rules, "print each rewrite rule as it fires (stderr)");
  simp->callback([args, &action] { action = [args] { return run_simplify(*args); }; });

  auto* diff = app.add_subcommand("diff", "Differentiate a model's loss (MODEL.nn) or an expression (-e) symbolically");
  auto* model_opt = diff->add_option("MODEL", args->model, "the .nn file: print the gradient program of its loss");
  auto* expr_opt = diff->add_option("-e,--expr", args->expr, "the expression");
  model_opt->excludes(expr_opt);
  diff->add_option("--wrt", args->wrt, "the variables (as x,w) or, for a model, params (default: all)");
  diff->add_option("--at", args->at, "print the derivatives' values at this point, as x=1.5,w=2")->check(point_value());
  diff->add_flag("--no-simplify", args->no_simplify, "print the derivative as differentiated");
  diff->add_option("--order", args->order, "1 (default) or 2: the second derivative along the first --wrt variable")
      ->check(CLI::Range(1, 2));
  diff->add_flag("--hessian", args->hessian, "the matrix of second partials of the --wrt variables");
  diff->add_flag("--hvp", args->hvp, "(model) the Hessian-vector product H v, v given per param as v_PARAM");
  diff->add_flag("--trace-rules", args->trace_rules, "print each rewrite rule as it fires (stderr)");
  diff->add_option("--format", args->format, "text (default, re-parseable), latex, dot (Graphviz) or json")
      ->check(CLI::IsMember({"text", "latex", "dot", "json"}));
  diff->callback([args, &action, &global, model_opt, expr_opt] {
    if (model_opt->count() + expr_opt->count() == 0) throw CLI::RequiredError("MODEL or -e EXPR");
    if (model_opt->count()) {
      action = [args, &global] {
        return run_model_diff(args->model, args->wrt, args->no_simplify, args->trace_rules,
                              args->format, args->hvp, global);
      };
    } else {
      action = [args] { return run_diff(*args); };
    }
  });
}

}  // namespace nabla::cli
