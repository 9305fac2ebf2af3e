#include "driver/expression.h"

#include "driver/error.h"
#include "driver/kernels.h"
#include "ir/differentiate.h"
#include "ir/interpret.h"
#include "ir/print.h"
#include "ir/simplify.h"
#include "ir/stack.h"

namespace nabla::driver {

Expression expression(const std::string& text, ir::Context& ctx, const std::vector<std::string>& extra) {
  auto r = load_expression(text);
  if (!r.value) throw Error(std::move(r.messages), r.rendered);
  Expression e{std::move(*r.value), {}, {}};
  e.lowered = lower_expression(e.loaded.expr, ctx);
  for (const ir::Node* v : e.lowered.vars) e.vars[v->name()] = v;
  for (const std::string& w : extra)
    if (!e.vars.count(w)) e.vars[w] = ctx.var(ir::VarKind::Input, static_cast<int>(e.vars.size()), w, {});
  return e;
}

std::string missing_variable(std::span<const ir::Node* const> roots, const std::map<std::string, double>& point) {
  std::string missing;
  for (const ir::Node* n : ir::reachable(roots))
    if (n->op() == ir::Op::Var && !point.count(n->name())) missing = n->name();
  return missing;
}

std::vector<double> evaluate(std::span<const ir::Node* const> roots, const std::map<std::string, double>& point) {
  if (std::string name = missing_variable(roots, point); !name.empty()) throw Error("no value for '" + name + "'");
  check_interpreter_memory("evaluating the expression", roots);
  auto values = ir::interpret(roots, [&](const ir::Node* v) { return ir::Tensor::scalar(point.at(v->name())); });
  std::vector<double> out;
  for (const ir::Tensor& t : values) out.push_back(t.item());
  return out;
}

void with_large_stack(const std::function<void()>& work) {
  run_on_large_stack([&] {
    work();
    return 0;
  });
}

std::string text(const ir::Node* n) { return ir::print_text(n); }

const ir::Node* simplified(ir::Context& ctx, const Expression& e, std::ostream* trace) {
  ir::SimplifyOptions o;
  o.trace = trace;
  return ir::simplify(ctx, e.lowered.root, o);
}

std::vector<Derivative> derivatives(ir::Context& ctx, const Expression& e, const std::vector<std::string>& wrt,
                                    int order, bool hessian, bool simplify, std::ostream* trace) {
  ir::SimplifyOptions so;
  so.trace = trace;
  auto maybe_simplify = [&](std::vector<const ir::Node*> v) {
    if (simplify) v = ir::simplify(ctx, v, so);
    return v;
  };
  std::vector<const ir::Node*> wrt_nodes;
  for (const std::string& w : wrt) {
    auto it = e.vars.find(w);
    if (it == e.vars.end()) throw Error("'" + w + "' is not a variable of the expression");
    wrt_nodes.push_back(it->second);
  }
  const ir::Node* f = simplify ? ir::simplify(ctx, e.lowered.root, so) : e.lowered.root;
  const std::vector<const ir::Node*> grads = maybe_simplify(ir::gradient(ctx, f, wrt_nodes));
  std::vector<Derivative> out;
  if (order == 1 && !hessian) {
    for (size_t i = 0; i < wrt.size(); ++i) out.push_back({wrt[i], "", grads[i]});
    return out;
  }
  const size_t rows = hessian ? wrt.size() : 1;
  for (size_t i = 0; i < rows; ++i) {
    const std::vector<const ir::Node*> second = maybe_simplify(ir::gradient(ctx, grads[i], wrt_nodes));
    const size_t cols = hessian ? wrt.size() : 1;
    for (size_t j = 0; j < cols; ++j) out.push_back({wrt[i], wrt[j], second[j]});
  }
  return out;
}

}  // namespace nabla::driver
