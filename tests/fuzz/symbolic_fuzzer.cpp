// libFuzzer target: the simplifier and the differentiator on random
// well-formed expressions. The bytes decode (fuzz_ir.h) into a scalar
// function f over scalar vars x, y, z and, for half the inputs, tensors
// a [2], v [3], u [6], S [2, 2], A [2, 3], B [3, 2]. At a few points in the
// domain (every intermediate finite, no branch near a tie), it checks:
//   - simplify(f) has f's value, within what rounding explains;
//   - simplify is idempotent: simplify(simplify(f)) is simplify(f) (pointer
//     equality in the hash-consed DAG), and the same for the gradient;
//   - the gradient as differentiated, and simplified after simplifying f,
//     agree with each other and with central differences of f where f is
//     smooth (two step sizes agree and the one-sided slopes show no kink);
//     the second derivatives along x likewise; forward mode (jvp) along
//     random directions agrees with the reverse-mode gradient;
//   - the printed forms parse back to DAGs with the same values: f and
//     simplify(f) in expression mode (scalar inputs), and f, simplify(f)
//     and the gradient as a .nn file (vars declared, bindings as lets,
//     each root an output).
// A failed check prints the expression and traps. Size is bounded by the
// decoder's node budget, so nothing here can take long.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>

#include "frontend/lower.h"
#include "frontend/parser.h"
#include "frontend/sema.h"
#include "fuzz_ir.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"

namespace nabla::fuzz {
namespace {

using ir::Node;
using Roots = std::vector<const Node*>;

constexpr Tolerance kValue{1e-9, 1e-12};
constexpr double kDelta = 1e-10;  // relative jitter of each node when measuring rounding
constexpr int kPoints = 3;
constexpr size_t kMaxDifferenced = 16;  // var elements differenced per point

struct Case {
  ir::Context ctx;
  Roots vars;
  Roots tangents;  // one direction per var (forward mode), valued at each point
  bool tensors = false;
  const Node* f = nullptr;
  const Node* simplified = nullptr;
  Roots grad, grad_simplified;  // of f as decoded; of simplify(f), simplified
  std::vector<Point> points;
  std::mt19937 rng;
};

[[noreturn]] void fail(const Case& c, const std::string& what) {
  std::fprintf(stderr, "symbolic_fuzzer: %s\nexpression:\n%s\nsimplified:\n%s\n", what.c_str(),
               ir::print_text(c.f).c_str(), c.simplified ? ir::print_text(c.simplified).c_str() : "");
  __builtin_trap();
}

// " x=1.5 y=-2 v=0,1,0.25 ...": the point, var by var.
std::string point_text(const Case& c, const Point& p) {
  std::string s;
  for (const Node* v : c.vars) {
    s += " " + v->name() + "=";
    const auto& data = p.at(v).data;
    for (size_t i = 0; i < data.size(); ++i) s += (i ? "," : "") + number(data[i]);
  }
  return s;
}

Roots make_vars(ir::Context& c, bool tensors) {
  using ir::VarKind;
  Roots v{c.var(VarKind::Input, 0, "x", {}), c.var(VarKind::Input, 1, "y", {}), c.var(VarKind::Param, 0, "z", {})};
  if (!tensors) return v;
  v.push_back(c.var(VarKind::Input, 2, "a", {2}));
  v.push_back(c.var(VarKind::Input, 3, "v", {3}));
  v.push_back(c.var(VarKind::Param, 1, "u", {6}));
  v.push_back(c.var(VarKind::Param, 2, "S", {2, 2}));
  v.push_back(c.var(VarKind::Param, 3, "A", {2, 3}));
  v.push_back(c.var(VarKind::Input, 4, "B", {3, 2}));
  return v;
}

// Decodes f and derives everything the checks compare.
void build(Case& c, ByteReader& in) {
  c.tensors = in.byte() & 1;
  c.vars = make_vars(c.ctx, c.tensors);
  ExprGen gen(c.ctx, in, c.vars, GenLimits{5, 32, c.tensors});
  c.f = gen.expr({});
  for (const Node* v : c.vars)
    c.tangents.push_back(c.ctx.var(ir::VarKind::Input, 100 + v->var_index(), "t_" + v->name(), v->shape()));
  c.rng.seed(in.word());
  for (int i = 0; i < kPoints; ++i) {
    c.points.push_back(random_point(c.vars, c.rng));
    for (auto& [t, value] : random_point(c.tangents, c.rng)) c.points.back()[t] = std::move(value);
  }
  c.simplified = ir::simplify(c.ctx, c.f);
  if (ir::simplify(c.ctx, c.simplified) != c.simplified) fail(c, "simplify is not idempotent");
  c.grad = ir::gradient(c.ctx, c.f, c.vars);
  c.grad_simplified = ir::simplify(c.ctx, ir::gradient(c.ctx, c.simplified, c.vars));
  if (ir::simplify(c.ctx, c.grad_simplified) != c.grad_simplified) fail(c, "simplify is not idempotent on the gradient");
  for (size_t i = 0; i < c.vars.size(); ++i)
    if (c.grad[i]->shape() != c.vars[i]->shape() || c.grad_simplified[i]->shape() != c.vars[i]->shape())
      fail(c, "the gradient with respect to " + c.vars[i]->name() + " does not have its shape");
}

// `other` (another form of `reference`, root by root) has its values at
// every point where `reference` (and `defined`, when given) is in the domain.
void check_same_values(Case& c, const Roots& reference, const Roots& other, const std::string& what,
                       const Roots& defined = {}) {
  Sensitivity rounding(c.ctx, reference, kDelta, static_cast<uint32_t>(c.rng()));
  DomainOptions ties_only;
  ties_only.check_finite = false;
  for (const Point& p : c.points) {
    if (!in_domain(reference, p) || !in_domain(other, p, ties_only) || (!defined.empty() && !in_domain(defined, p)))
      continue;
    const auto want = evaluate(reference, p), got = evaluate(other, p);
    const auto spread = rounding.spread(p, want);
    for (size_t r = 0; r < reference.size(); ++r)
      for (size_t e = 0; e < want[r].data.size(); ++e)
        if (!agrees(got[r].data[e], want[r].data[e], spread[r][e], kValue))
          fail(c, what + ": root " + std::to_string(r) + "[" + std::to_string(e) + "] is " +
                      number(got[r].data[e]) + ", expected " + number(want[r].data[e]) +
                      " (rounding spread " + number(spread[r][e]) + ") at" + point_text(c, p) +
                      "\nother form:\n" + ir::print_text(other[r]));
  }
}

// Central differences of f along one var element, at steps h and h/2; how
// far f is from smooth there: the one-sided slopes differ by ~h f'' on a
// smooth function (so the difference halves with h) and by the jump at a
// kink; and the rounding noise in them: f's rounding error `error` over the
// step.
struct Differences {
  double d1, d2, kink, noise;
  bool finite;
};

Differences differences(const Node* f, Point p, const Node* var, size_t e, double error) {
  const double x0 = p[var].data[e], h = 1e-5 * std::max(1.0, std::fabs(x0));
  auto at = [&](double dx) {
    p[var].data[e] = x0 + dx;
    return evaluate(std::span<const Node* const>(&f, 1), p)[0].item();
  };
  const double f0 = at(0), fp1 = at(h), fm1 = at(-h), fp2 = at(h / 2), fm2 = at(-h / 2);
  Differences d{(fp1 - fm1) / (2 * h), (fp2 - fm2) / h, 0, error / h, true};
  d.kink = std::fabs((fp1 - 2 * f0 + fm1) / h - 2 * (fp2 - 2 * f0 + fm2) / (h / 2));
  d.finite = std::isfinite(d.d1) && std::isfinite(d.d2) && std::isfinite(d.kink);
  return d;
}

// The (var, element) pairs f depends on, at most kMaxDifferenced, at random.
std::vector<std::pair<size_t, size_t>> elements_to_difference(Case& c, const Node* f) {
  std::vector<std::pair<size_t, size_t>> all;
  const auto used = ir::reachable(std::span<const Node* const>(&f, 1));
  for (size_t i = 0; i < c.vars.size(); ++i)
    if (std::find(used.begin(), used.end(), c.vars[i]) != used.end())
      for (size_t e = 0; e < static_cast<size_t>(c.vars[i]->shape().numel()); ++e) all.emplace_back(i, e);
  std::shuffle(all.begin(), all.end(), c.rng);
  if (all.size() > kMaxDifferenced) all.resize(kMaxDifferenced);
  return all;
}

// grads[i] = d f / d vars[i], against central differences where f is smooth.
// f's rounding error is its spread with every node jittered by 1e-14, about
// a hundred times what one rounding per node does.
// The derivative's own rounding counts too: at a point where f is flat, its
// terms can be ~1e11 and cancel to 0 exactly in real arithmetic but not in
// f64 (softmax of equal entries raised to a large power: 4,102 instead of 0).
void check_derivative(Case& c, const Node* f, const Roots& grads, const std::string& what) {
  const std::span<const Node* const> fs(&f, 1);
  const Sensitivity rounding(c.ctx, fs, 1e-14, static_cast<uint32_t>(c.rng()));
  const Sensitivity grad_rounding(c.ctx, grads, 1e-14, static_cast<uint32_t>(c.rng()));
  for (const Point& p : c.points) {
    if (!in_domain(fs, p) || !in_domain(grads, p)) continue;
    const auto g = evaluate(grads, p);
    const auto g_spread = grad_rounding.spread(p, g);
    const double error = rounding.spread(p, evaluate(fs, p))[0][0];
    for (const auto& [i, e] : elements_to_difference(c, f)) {
      const Differences d = differences(f, p, c.vars[i], e, error);
      const double size = 1 + std::fabs(d.d2);
      if (!d.finite || std::fabs(d.d2) > 1e6 || std::fabs(d.d1 - d.d2) > 1e-4 * size || d.kink > 1e-4 * size)
        continue;
      const double got = g[i].data[e];
      const double tol = 1e-4 * std::max(std::fabs(got), std::fabs(d.d2)) + 1e-5 + std::fabs(d.d1 - d.d2) + d.kink +
                         d.noise + 10 * g_spread[i][e];
      if (!(std::fabs(got - d.d2) <= tol))
        fail(c, what + ": d/d" + c.vars[i]->name() + "[" + std::to_string(e) + "] = " + number(got) +
                    ", central differences " + number(d.d2) + " (step h: " + number(d.d1) +
                    ") at" + point_text(c, p) + "\nderivative:\n" + ir::print_text(grads[i]));
    }
  }
}

// Forward mode agrees with reverse mode: jvp(f; t) = sum_i <d f/d var_i, t_i>,
// as differentiated and simplified, where f is defined. (Outside f's
// domain the two may differ: reverse mode builds 0 * g as 0 where g is a
// dead branch, forward mode may carry g's NaN, as at log(x) for x < 0.)
void check_forward_mode(Case& c) {
  std::unordered_map<const Node*, const Node*> tangents;
  const Node* dot = c.ctx.constant(0);
  for (size_t i = 0; i < c.vars.size(); ++i) {
    tangents[c.vars[i]] = c.tangents[i];
    dot = c.ctx.add(dot, c.ctx.make(ir::Op::Sum, {c.ctx.mul(c.grad[i], c.tangents[i])}));
  }
  const Node* forward = ir::jvp(c.ctx, c.f, tangents);
  check_same_values(c, {dot}, {forward}, "forward mode (jvp) differs from reverse mode", {c.f});
  check_same_values(c, {dot}, {ir::simplify(c.ctx, forward)}, "simplified forward mode (jvp) differs from reverse mode",
                    {c.f});
}

// The printed form of `root` read back in expression mode, over c's vars.
const Node* reparse_expression(Case& c, const Node* root) {
  const std::string text = ir::print_text(root);
  SourceFile file("<expr>", text);
  Diagnostics diags(file);
  const ast::Module m = parse_expression(file, diags);
  CheckedExpr e;
  if (!diags.has_errors()) e = check_expression(m, diags);
  std::ostringstream err;
  diags.render(err);
  if (diags.has_errors()) fail(c, "the printed form does not parse back:\n" + text + "\n" + err.str());
  std::map<std::string, const Node*> by_name;
  for (const Node* v : c.vars) by_name[v->name()] = v;
  return lower_expression(e, c.ctx, &by_name).root;
}

// `roots` printed as a .nn file: each var declared, bindings as lets, each
// root an output r0, r1, ...
std::string as_model(const Case& c, const Roots& roots) {
  const ir::Printed printed = ir::print_text(roots);
  std::string text;
  for (const Node* v : c.vars)
    text += std::string(v->var_kind() == ir::VarKind::Param ? "param " : "input ") + v->name() + " : " +
            v->shape().str() + "\n";
  for (const auto& [name, expr] : printed.bindings) text += name + " = " + expr + "\n";
  for (size_t i = 0; i < printed.roots.size(); ++i)
    text += "output r" + std::to_string(i) + " = " + printed.roots[i] + "\n";
  return text;
}

// The .nn form of `roots` checked and lowered into c's context, its vars
// replaced by c's (by name), so both forms evaluate at the same points.
Roots reparse_model(Case& c, const Roots& roots) {
  const std::string text = as_model(c, roots);
  SourceFile file("printed.nn", text);
  Diagnostics diags(file);
  const ast::Module m = parse_file(file, diags);
  const CheckedModel model = check_model(m, diags);
  std::ostringstream err;
  diags.render(err);
  if (diags.has_errors()) fail(c, "the printed program does not parse back:\n" + text + "\n" + err.str());
  ir::Context other;
  const LoweredModel lowered = lower_model(model, other);
  // Rebuild the outputs over c's vars: lowering made its own var nodes.
  std::map<std::string, const Node*> by_name;
  for (const Node* v : c.vars) by_name[v->name()] = v;
  Roots outputs;
  for (const auto& [name, node] : lowered.outputs) outputs.push_back(node);
  std::unordered_map<const Node*, const Node*> copy;
  for (const Node* n : ir::reachable(outputs)) {
    if (n->op() == ir::Op::Var) copy[n] = by_name.at(n->name());
    else if (n->is_constant()) copy[n] = c.ctx.constant(n->value());
    else {
      std::vector<const Node*> ops;
      for (const Node* o : n->operands()) ops.push_back(copy.at(o));
      copy[n] = c.ctx.make(n->op(), std::move(ops), n->attr(), n->shape());
    }
  }
  Roots out;
  for (const Node* o : outputs) out.push_back(copy.at(o));
  return out;
}

void check_round_trips(Case& c) {
  if (!c.tensors) {
    check_same_values(c, {c.f}, {reparse_expression(c, c.f)}, "printed f, read back");
    check_same_values(c, {c.simplified}, {reparse_expression(c, c.simplified)}, "printed simplify(f), read back");
  }
  Roots roots{c.f, c.simplified};
  roots.insert(roots.end(), c.grad_simplified.begin(), c.grad_simplified.end());
  check_same_values(c, roots, reparse_model(c, roots), "printed program, read back");
}

}  // namespace
}  // namespace nabla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nabla::fuzz;
  ByteReader in(data, size);
  Case c;
  build(c, in);
  check_same_values(c, {c.f}, {c.simplified}, "simplify changed the value");
  check_same_values(c, c.grad, c.grad_simplified, "the simplified gradient of simplify(f) differs from the gradient");
  check_derivative(c, c.f, c.grad, "gradient");
  check_derivative(c, c.f, c.grad_simplified, "simplified gradient");
  check_forward_mode(c);
  // Second derivatives along x: the gradient of d f / d x against its differences.
  const Roots second = nabla::ir::simplify(c.ctx, nabla::ir::gradient(c.ctx, c.grad_simplified[0], c.vars));
  check_derivative(c, c.grad_simplified[0], second, "second derivative d/d(df/dx)");
  check_round_trips(c);
  return 0;
}
