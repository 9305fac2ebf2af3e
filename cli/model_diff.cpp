// nabla diff MODEL.nn: the gradient program of a model's loss, printed with
// the names a textbook uses for backpropagation.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <unordered_set>

#include "cli/commands.h"
#include "cli/model_diff.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "cli/render.h"
#include "frontend/lower.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

bool is_activation(ir::Op op) {
  using ir::Op;
  switch (op) {
    case Op::Sigmoid: case Op::Tanh: case Op::Relu: case Op::LeakyRelu: case Op::Elu:
    case Op::Swish: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid: case Op::Softplus:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Softmax: case Op::LogSoftmax: case Op::Maxout:
      return true;
    default: return false;
  }
}

}  // namespace

GradientProgram gradient_program(ir::Context& ctx, const LoweredModel& m,
                                 const std::vector<const ir::Node*>& wrt, bool simplify,
                                 std::ostream* trace) {
  GradientProgram p;
  ir::SimplifyOptions so;
  so.trace = trace;
  for (size_t i = 0; i < m.labels.size(); ++i)
    if (m.label_distribution[i]) so.distributions.insert(m.labels[i]);
  const ir::Node* loss = simplify ? ir::simplify(ctx, m.loss, so) : m.loss;

  // Pre-activations: the non-leaf operands of activations, in forward order.
  std::vector<const ir::Node*> pre;
  std::unordered_set<const ir::Node*> seen;
  for (const ir::Node* n : ir::reachable(std::span<const ir::Node* const>(&loss, 1)))
    if (is_activation(n->op()) && n->operand(0)->arity() > 0 && seen.insert(n->operand(0)).second)
      pre.push_back(n->operand(0));

  std::vector<const ir::Node*> targets = wrt;
  targets.insert(targets.end(), pre.begin(), pre.end());
  std::vector<const ir::Node*> grads = ir::gradient(ctx, loss, targets);
  if (simplify) grads = ir::simplify(ctx, grads, so);
  p.gradients.assign(grads.begin(), grads.begin() + static_cast<long>(wrt.size()));

  // Names: the model's lets, then z_k and delta_k (unless the user took them).
  std::set<std::string> taken;
  for (const auto& [name, node] : m.lets) taken.insert(name);
  for (const auto* list : {&m.inputs, &m.labels, &m.params, &m.consts})
    for (const ir::Node* v : *list) taken.insert(v->name());
  auto fresh = [&](std::string base) {
    std::string name = base;
    for (int i = 2; taken.count(name); ++i) name = base + "_" + std::to_string(i);
    taken.insert(name);
    return name;
  };
  for (const auto& [name, node] : m.lets) p.names[node] = name;
  for (size_t k = 0; k < pre.size(); ++k) {
    if (!p.names.count(pre[k])) p.names[pre[k]] = fresh("z" + std::to_string(k + 1));
    const ir::Node* delta = grads[wrt.size() + k];
    if (delta->arity() > 0 && !p.names.count(delta)) p.names[delta] = fresh("delta" + std::to_string(k + 1));
  }
  p.loss = loss;
  return p;
}

int run_model_diff(const std::string& path, const std::string& wrt_list, bool no_simplify,
                   bool trace_rules, const std::string& format, bool hvp,
                   const GlobalOptions& global) {
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
  std::vector<const ir::Node*> wrt;
  if (wrt_list.empty()) {
    wrt = m.params;
  } else {
    std::stringstream ss(wrt_list);
    std::string name;
    while (std::getline(ss, name, ',')) {
      auto it = std::find_if(m.params.begin(), m.params.end(),
                             [&](const ir::Node* v) { return v->name() == name; });
      if (it == m.params.end()) {
        std::string params;
        for (const ir::Node* v : m.params) params += (params.empty() ? "" : ", ") + v->name();
        print_error(std::cerr, "--wrt " + name + ": '" + path + "' has no param named '" + name +
                                   "' (its params: " + params + ")");
        return kExitUserError;
      }
      wrt.push_back(*it);
    }
  }
  if (hvp) {  // H v, the direction of each param a tensor named v_PARAM
    std::vector<const ir::Node*> dirs;
    std::vector<std::string> labels;
    for (const ir::Node* w : wrt) {
      dirs.push_back(ctx.var(ir::VarKind::Input, 1000 + w->var_index(), "v_" + w->name(), w->shape()));
      labels.push_back("Hv/d" + w->name());
    }
    ir::SimplifyOptions so;
    for (size_t i = 0; i < m.labels.size(); ++i)
      if (m.label_distribution[i]) so.distributions.insert(m.labels[i]);
    const ir::Node* loss = no_simplify ? m.loss : ir::simplify(ctx, m.loss, so);
    std::vector<const ir::Node*> hv = ir::hvp(ctx, loss, wrt, dirs);
    if (!no_simplify) hv = ir::simplify(ctx, hv, so);
    ir::PrintOptions po;
    for (const auto& [name, node] : m.lets) po.names[node] = name;
    render(std::cout, hv, labels, po, format);
    return kExitOk;
  }
  GradientProgram p = gradient_program(ctx, m, wrt, !no_simplify, trace_rules ? &std::cerr : nullptr);
  ir::PrintOptions po;
  po.names = p.names;
  po.bind_named = true;
  std::vector<std::string> labels;
  for (const ir::Node* w : wrt) labels.push_back("d/d" + w->name());
  render(std::cout, p.gradients, labels, po, format);
  return kExitOk;
}

int run_graph(const std::string& path, bool grad, const std::string& out_path,
              const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(path, *options, std::cerr);
  if (!loaded) return kExitUserError;
  ir::Context ctx;
  LoweredModel m = lower_model(loaded->model, ctx);
  std::vector<const ir::Node*> roots;
  std::vector<std::string> labels;
  if (grad) {
    if (!m.loss) {
      print_error(std::cerr, "'" + path + "' has no loss: there is no gradient to draw");
      return kExitUserError;
    }
    GradientProgram p = gradient_program(ctx, m, m.params, true);
    roots = p.gradients;
    for (const ir::Node* w : m.params) labels.push_back("d/d" + w->name());
  } else {
    for (const auto& [name, node] : m.outputs) {
      roots.push_back(node);
      labels.push_back(name);
    }
    if (m.loss) {
      roots.push_back(m.loss);
      labels.push_back("loss");
    }
  }
  const std::string dot = ir::print_dot(roots, labels);
  if (out_path.empty() || out_path == "-") {
    std::cout << dot;
    return kExitOk;
  }
  runtime::write_output(out_path, dot, {path});
  return kExitOk;
}

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
