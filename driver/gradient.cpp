#include "driver/gradient.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <unordered_set>

#include "driver/error.h"
#include "driver/render.h"
#include "ir/differentiate.h"

namespace nabla::driver {
namespace {

// The activations whose operand is a pre-activation z_k (a list, not a
// switch: most ops are not activations).
constexpr ir::Op kActivations[] = {
    ir::Op::Sigmoid, ir::Op::Tanh,     ir::Op::Relu,        ir::Op::LeakyRelu,   ir::Op::Elu,
    ir::Op::Swish,   ir::Op::Gelu,     ir::Op::GeluTanh,    ir::Op::GeluSigmoid, ir::Op::Softplus,
    ir::Op::HardSigmoid, ir::Op::HardTanh, ir::Op::Softmax, ir::Op::LogSoftmax,  ir::Op::Maxout,
};

bool is_activation(ir::Op op) { return std::find(std::begin(kActivations), std::end(kActivations), op) != std::end(kActivations); }

}  // namespace

ir::SimplifyOptions simplify_options(const LoweredModel& m) {
  ir::SimplifyOptions so;
  for (size_t i = 0; i < m.labels.size(); ++i)
    if (m.label_distribution[i]) so.distributions.insert(m.labels[i]);
  return so;
}

GradientProgram gradient_program(ir::Context& ctx, const LoweredModel& m,
                                 const std::vector<const ir::Node*>& wrt, bool simplify,
                                 std::ostream* trace) {
  GradientProgram p;
  ir::SimplifyOptions so = simplify_options(m);
  so.trace = trace;
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

std::vector<const ir::Node*> hessian_vector_products(ir::Context& ctx, const LoweredModel& m,
                                                     const std::vector<const ir::Node*>& wrt, bool simplify) {
  std::vector<const ir::Node*> dirs;
  for (const ir::Node* w : wrt)
    dirs.push_back(ctx.var(ir::VarKind::Input, 1000 + w->var_index(), "v_" + w->name(), w->shape()));
  const ir::SimplifyOptions so = simplify_options(m);
  const ir::Node* loss = simplify ? ir::simplify(ctx, m.loss, so) : m.loss;
  std::vector<const ir::Node*> hv = ir::hvp(ctx, loss, wrt, dirs);
  if (simplify) hv = ir::simplify(ctx, hv, so);
  return hv;
}

std::vector<const ir::Node*> params_named(const LoweredModel& m, const std::vector<std::string>& names,
                                          const std::string& file) {
  if (names.empty()) return m.params;
  std::vector<const ir::Node*> wrt;
  for (const std::string& name : names) {
    auto it = std::find_if(m.params.begin(), m.params.end(), [&](const ir::Node* v) { return v->name() == name; });
    if (it == m.params.end()) {
      std::string params;
      for (const ir::Node* v : m.params) params += (params.empty() ? "" : ", ") + v->name();
      // "wrt" is the command's --wrt and the library's and Python's argument alike.
      throw Error("wrt names '" + name + "', but '" + file + "' has no param named '" + name + "' (its params: " +
                  params + ")");
    }
    if (std::find(wrt.begin(), wrt.end(), *it) == wrt.end()) wrt.push_back(*it);  // W1,W1 is W1 once
  }
  return wrt;
}

std::string gradient_text(ir::Context& ctx, const LoweredModel& m, const std::vector<const ir::Node*>& wrt,
                          bool simplify, const std::string& format, std::ostream* trace) {
  GradientProgram p = gradient_program(ctx, m, wrt, simplify, trace);
  ir::PrintOptions po;
  po.names = p.names;
  po.bind_named = true;
  std::vector<std::string> labels;
  for (const ir::Node* w : wrt) labels.push_back("d/d" + w->name());
  return render(p.gradients, labels, po, format);
}

std::string hvp_text(ir::Context& ctx, const LoweredModel& m, const std::vector<const ir::Node*>& wrt,
                     bool simplify, const std::string& format) {
  const std::vector<const ir::Node*> hv = hessian_vector_products(ctx, m, wrt, simplify);
  std::vector<std::string> labels;
  for (const ir::Node* w : wrt) labels.push_back("Hv/d" + w->name());
  ir::PrintOptions po;
  for (const auto& [name, node] : m.lets) po.names[node] = name;
  return render(hv, labels, po, format);
}

std::string graph_text(ir::Context& ctx, const LoweredModel& m, bool grad, const std::string& file) {
  std::vector<const ir::Node*> roots;
  std::vector<std::string> labels;
  if (grad) {
    if (!m.loss) throw Error("'" + file + "' has no loss: there is no gradient to draw");
    roots = gradient_program(ctx, m, m.params, true).gradients;
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
  return ir::print_dot(roots, labels);
}

}  // namespace nabla::driver
