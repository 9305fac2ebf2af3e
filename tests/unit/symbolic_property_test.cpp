// Property tests of the symbolic core on thousands of random expressions:
// gradients match central finite differences in f64; simplification keeps
// values; every rule that fires is checked numerically; simplify is
// idempotent; derivative size stays linear.
#include <gtest/gtest.h>

#include <map>

#include "frontend/lower.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"
#include "random_ir.h"
#include "test_util.h"

namespace nabla {
namespace {

using test::close;
using test::values_of;

double eval1(const ir::Node* n, const std::unordered_map<const ir::Node*, ir::Tensor>& p) {
  return ir::interpret(std::span<const ir::Node* const>(&n, 1), values_of(p))[0].item();
}

// Every intermediate value of `f` at `p` is finite. Where one is not (a log
// of a negative number in a branch `where` does not take, say), derivatives
// are NaN in every AD system and values may differ after simplification
// widened a domain (exp(log(y)) -> y): such points are outside the domain.
// Points where a comparison, max or min is (nearly) a tie are left out as
// well: rounding decides the branch there (exp(log(y)) > y), so a rewrite that
// removes the rounding may take the other one.
bool in_domain(const ir::Node* f, const std::unordered_map<const ir::Node*, ir::Tensor>& p) {
  const auto nodes = ir::reachable(std::span<const ir::Node* const>(&f, 1));
  const auto values = ir::interpret(nodes, values_of(p));
  std::unordered_map<const ir::Node*, const ir::Tensor*> value_of;
  for (size_t i = 0; i < nodes.size(); ++i) {
    value_of[nodes[i]] = &values[i];
    for (double d : values[i].data)
      if (!std::isfinite(d)) return false;
  }
  for (const ir::Node* n : nodes) {
    const bool branch = ir::op_kind(n->op()) == ir::OpKind::Compare || n->op() == ir::Op::Max ||
                        n->op() == ir::Op::Min;
    if (!branch) continue;
    const ir::Tensor& a = *value_of[n->operand(0)];
    const ir::Tensor& b = *value_of[n->operand(1)];
    if (a.data.size() != b.data.size()) continue;
    for (size_t i = 0; i < a.data.size(); ++i)
      if (std::fabs(a.data[i] - b.data[i]) <= 1e-7 * (1 + std::fabs(a.data[i]) + std::fabs(b.data[i])))
        return false;
  }
  return true;
}

// Checks d f / d var against central differences at `p`, element by element;
// elements at a kink (the two step sizes disagree) are skipped. Returns the
// number of elements compared.
int check_gradient(const ir::Node* f, std::span<const ir::Node* const> vars,
                   std::span<const ir::Node* const> grads,
                   std::unordered_map<const ir::Node*, ir::Tensor> p, const std::string& what) {
  std::vector<const ir::Node*> roots(grads.begin(), grads.end());
  const auto g = ir::interpret(roots, values_of(p));
  int compared = 0;
  for (size_t i = 0; i < vars.size(); ++i) {
    for (size_t e = 0; e < p[vars[i]].data.size(); ++e) {
      auto fd = [&](double h) {
        auto q = p;
        q[vars[i]].data[e] += h;
        const double up = eval1(f, q);
        q[vars[i]].data[e] -= 2 * h;
        return (up - eval1(f, q)) / (2 * h);
      };
      const double h = 1e-5 * std::max(1.0, std::fabs(p[vars[i]].data[e]));
      const double d1 = fd(h), d2 = fd(h / 2);
      if (!std::isfinite(d1) || !std::isfinite(d2) || !close(d1, d2, 1e-4, 1e-6)) continue;
      if (std::fabs(d1) > 1e6) continue;
      ++compared;
      EXPECT_TRUE(close(g[i].data[e], d2, 1e-4, 1e-5))
          << what << ": d/d" << vars[i]->name() << "[" << e << "] = " << g[i].data[e]
          << ", finite differences " << d2;
    }
  }
  return compared;
}

TEST(SymbolicProperty, GradientsMatchFiniteDifferences) {
  ir::Context c;
  test::RandomIr gen(c, 7);
  const auto vars = gen.all_vars();
  int compared = 0;
  for (int i = 0; i < 1500; ++i) {
    const ir::Node* f = gen.scalar(3);
    auto p = gen.point();
    if (!in_domain(f, p)) continue;
    const auto raw = ir::gradient(c, f, vars);
    // Where a partial derivative on the way is infinite (x^0.5 at 0 times a
    // zero), the chain rule gives NaN: such points are left out too.
    bool finite = true;
    for (const ir::Node* g : raw) finite = finite && in_domain(g, p);
    if (!finite) continue;
    compared += check_gradient(f, vars, raw, p, "raw " + ir::print_text(f));
    const ir::Node* fs = ir::simplify(c, f);
    const auto simplified = ir::simplify(c, ir::gradient(c, fs, vars));
    compared += check_gradient(f, vars, simplified, p, "simplified " + ir::print_text(f));
  }
  EXPECT_GT(compared, 3000);
}

TEST(SymbolicProperty, SimplifyKeepsValuesOfEveryRewrite) {
  ir::Context c;
  test::RandomIr gen(c, 11);
  std::map<std::string, int> fired, checked;
  ir::SimplifyOptions options;
  std::vector<std::tuple<std::string, const ir::Node*, const ir::Node*>> rewrites;
  options.on_rule = [&](const ir::Rule& r, const ir::Node* before, const ir::Node* after) {
    rewrites.emplace_back(r.name, before, after);
  };
  for (int i = 0; i < 3000; ++i) {
    const ir::Node* f = gen.scalar(3);
    rewrites.clear();
    const ir::Node* s = ir::simplify(c, f, options);
    EXPECT_EQ(ir::simplify(c, s), s) << "not idempotent: " << ir::print_text(f);
    for (int k = 0; k < 3; ++k) {
      auto p = gen.point();
      const double before = eval1(f, p);
      if (in_domain(f, p)) {
        EXPECT_TRUE(close(eval1(s, p), before, 1e-9, 1e-9))
            << ir::print_text(f) << "\n  simplified to\n" << ir::print_text(s);
      }
      for (const auto& [name, b, a] : rewrites) {
        if (!in_domain(b, p)) continue;
        const double vb = eval1(b, p);
        ++checked[name];
        EXPECT_TRUE(close(eval1(a, p), vb, 1e-9, 1e-9))
            << "rule " << name << ": " << ir::print_text(b) << "  ->  " << ir::print_text(a);
      }
    }
    for (const auto& r : rewrites) ++fired[std::get<0>(r)];
  }
  // Every rule is checked case by case in rules_test.cpp; random
  // expressions must reach most of them too (rare shapes, such as the mirror
  // identities or x^0.5, need not).
  int reached = 0;
  for (const ir::Rule& r : ir::simplifier_rules()) reached += checked[r.name] > 0;
  EXPECT_GE(reached, 14) << "random expressions reach few rules: the generator lost coverage";
}

TEST(Simplify, SumOfDistributionIsOne) {
  ir::Context c;
  const ir::Node* y = c.var(ir::VarKind::Label, 0, "y", {4});
  const ir::Node* z = c.var(ir::VarKind::Input, 0, "z", {4});
  ir::SimplifyOptions o;
  o.distributions.insert(y);
  // d/dz of -sum(y * log(softmax(z))) is softmax(z) * sum(y) - y, and
  // softmax(z) - y when y sums to one.
  const ir::Node* loss = c.neg(c.make(ir::Op::Sum, {c.mul(y, c.unary(ir::Op::Log, c.make(ir::Op::Softmax, {z}, 0)))}));
  const ir::Node* g = ir::gradient(c, ir::simplify(c, loss, o), std::vector<const ir::Node*>{z})[0];
  EXPECT_EQ(ir::print_text(ir::simplify(c, g, o)), "softmax(z) - y");
  EXPECT_EQ(ir::print_text(ir::simplify(c, g)), "softmax(z) * sum(y) - y");
}

TEST(Simplify, Examples) {
  ir::Context c;
  const ir::Node* x = c.var(ir::VarKind::Input, 0, "x", {});
  const ir::Node* w = c.var(ir::VarKind::Input, 1, "w", {});
  auto s = [&](const ir::Node* n) { return ir::print_text(ir::simplify(c, n)); };
  auto k = [&](double v) { return c.constant(v); };
  EXPECT_EQ(s(c.add(c.add(c.sub(c.mul(k(3), x), x), c.mul(k(2), x)), k(1))), "4 * x + 1");
  EXPECT_EQ(s(c.mul(x, x)), "x^2");
  EXPECT_EQ(s(c.sub(x, x)), "0");
  EXPECT_EQ(s(c.div(x, x)), "1");
  EXPECT_EQ(s(c.mul(c.pow(x, k(2)), c.pow(x, k(3)))), "x^5");
  EXPECT_EQ(s(c.div(k(1), c.add(k(1), c.unary(ir::Op::Exp, c.neg(c.mul(w, x)))))), "sigmoid(x * w)");  // factors by age: x was made first
  EXPECT_EQ(s(c.unary(ir::Op::Log, c.add(k(1), c.unary(ir::Op::Exp, x)))), "softplus(x)");
  EXPECT_EQ(s(c.unary(ir::Op::Log, c.unary(ir::Op::Sigmoid, x))), "-softplus(-x)");
  EXPECT_EQ(s(c.neg(c.neg(x))), "x");
}

// The simplified gradient of a k-deep chain of sigmoids has O(k) nodes.
TEST(Simplify, DerivativeSizeIsLinearInDepth) {
  std::map<int, size_t> sizes;
  for (int depth : {10, 100, 1000}) {
    ir::Context c;
    const ir::Node* x = c.var(ir::VarKind::Input, 0, "x", {});
    const ir::Node* w = c.var(ir::VarKind::Input, 1, "w", {});
    const ir::Node* f = x;
    for (int i = 0; i < depth; ++i) f = c.unary(ir::Op::Sigmoid, c.mul(w, f));
    const auto g = ir::simplify(c, ir::gradient(c, f, std::vector<const ir::Node*>{x, w}));
    sizes[depth] = ir::reachable(g).size();
  }
  EXPECT_LT(sizes[1000], 12u * 1000);
  EXPECT_LT(static_cast<double>(sizes[1000]) / static_cast<double>(sizes[100]), 11.0);
  EXPECT_LT(static_cast<double>(sizes[100]) / static_cast<double>(sizes[10]), 12.0);
}


// Vars `prefix`NAME, one per var of `vars` with its shape: directions.
std::vector<const ir::Node*> direction_vars(ir::Context& c, const std::vector<const ir::Node*>& vars,
                                            const std::string& prefix, int first_index) {
  std::vector<const ir::Node*> dirs;
  for (const ir::Node* v : vars)
    dirs.push_back(c.var(ir::VarKind::Input, first_index + v->var_index(), prefix + v->name(), v->shape()));
  return dirs;
}

// Random values in [-1, 1] for each of `dirs`, added to the point `p`.
void randomize(test::RandomIr& gen, const std::vector<const ir::Node*>& dirs,
               std::unordered_map<const ir::Node*, ir::Tensor>& p) {
  for (const ir::Node* d : dirs) {
    ir::Tensor t = ir::Tensor::zeros(d->shape());
    for (double& x : t.data) x = gen.uniform(-1, 1);
    p[d] = t;
  }
}

bool all_scalar(const ir::Node* f) {
  for (const ir::Node* n : ir::reachable(std::span<const ir::Node* const>(&f, 1)))
    if (!n->shape().is_scalar()) return false;
  return true;
}

// Forward mode agrees with reverse mode: jvp(f; v) = sum_i <grad_i f, v_i>.
TEST(SymbolicProperty, ForwardModeAgreesWithReverseMode) {
  ir::Context c;
  test::RandomIr gen(c, 23);
  const auto vars = gen.all_vars();
  // The directions are extra vars (v_x, v_A, ...) given random values.
  const std::vector<const ir::Node*> dirs = direction_vars(c, vars, "v_", 100);
  std::unordered_map<const ir::Node*, const ir::Node*> tangents;
  for (size_t k = 0; k < vars.size(); ++k) tangents[vars[k]] = dirs[k];
  int compared = 0;
  for (int i = 0; i < 1000; ++i) {
    const ir::Node* f = gen.scalar(3);
    auto p = gen.point();
    randomize(gen, dirs, p);
    if (!in_domain(f, p)) continue;
    const ir::Node* forward = ir::jvp(c, f, tangents);
    const auto grads = ir::gradient(c, f, vars);
    if (!in_domain(forward, p)) continue;
    bool finite = true;
    for (const ir::Node* g : grads) finite = finite && in_domain(g, p);
    if (!finite) continue;
    double dot = 0;
    const auto gv = ir::interpret(grads, values_of(p));
    for (size_t k = 0; k < vars.size(); ++k)
      for (size_t e = 0; e < gv[k].data.size(); ++e) dot += gv[k].data[e] * p[dirs[k]].data[e];
    ++compared;
    EXPECT_TRUE(close(eval1(forward, p), dot, 1e-9, 1e-9)) << ir::print_text(f);
    EXPECT_TRUE(close(eval1(ir::simplify(c, forward), p), dot, 1e-9, 1e-9)) << ir::print_text(f);
  }
  EXPECT_GT(compared, 300);
}

// H v matches central differences of the gradient along v.
TEST(SymbolicProperty, HessianVectorProductMatchesFiniteDifferences) {
  ir::Context c;
  test::RandomIr gen(c, 31);
  const auto vars = gen.all_vars();
  const std::vector<const ir::Node*> dirs = direction_vars(c, vars, "d_", 200);
  int compared = 0;
  for (int i = 0; i < 400; ++i) {
    const ir::Node* f = gen.scalar(2);
    auto p = gen.point();
    randomize(gen, dirs, p);
    const auto grads = ir::gradient(c, f, vars);
    const auto hv = ir::hvp(c, f, vars, dirs);
    bool ok = in_domain(f, p);
    for (const ir::Node* g : hv) ok = ok && in_domain(g, p);
    if (!ok) continue;
    auto grad_at = [&](double h) {
      auto q = p;
      for (size_t k = 0; k < vars.size(); ++k)
        for (size_t e = 0; e < q[vars[k]].data.size(); ++e) q[vars[k]].data[e] += h * p[dirs[k]].data[e];
      return ir::interpret(grads, values_of(q));
    };
    const auto hvv = ir::interpret(hv, values_of(p));
    const double h = 1e-5;
    const auto up = grad_at(h), down = grad_at(-h), up2 = grad_at(h / 2), down2 = grad_at(-h / 2);
    for (size_t k = 0; k < vars.size(); ++k)
      for (size_t e = 0; e < hvv[k].data.size(); ++e) {
        const double fd = (up[k].data[e] - down[k].data[e]) / (2 * h);
        const double fd2 = (up2[k].data[e] - down2[k].data[e]) / h;
        if (!std::isfinite(fd) || !close(fd, fd2, 1e-4, 1e-6)) continue;  // a kink nearby
        ++compared;
        EXPECT_TRUE(close(hvv[k].data[e], fd2, 1e-4, 1e-5)) << ir::print_text(f) << " d/d" << vars[k]->name();
      }
  }
  EXPECT_GT(compared, 500);
}

}  // namespace
}  // namespace nabla


namespace nabla {
namespace {

// Print -> parse -> the same node: a simplified random expression, printed
// with its bindings, read back by the expression parser and lowered into the
// same context, simplifies to the very node it was printed from.
TEST(SymbolicProperty, PrintThenParseGivesTheSameNode) {
  ir::Context c;
  test::RandomIr gen(c, 41);
  const auto vars = gen.scalar_vars();
  std::map<std::string, const ir::Node*> by_name;
  for (const ir::Node* v : vars) by_name[v->name()] = v;
  int checked = 0;
  for (int i = 0; i < 2000; ++i) {
    const ir::Node* f = gen.scalar(3);
    if (!all_scalar(f)) continue;  // tensors have no expression-mode spelling
    const ir::Node* s = ir::simplify(c, f);
    const std::string text = ir::print_text(s);
    SourceFile file("<expr>", text);
    Diagnostics diags(file);
    ast::Module m = parse_expression(file, diags);
    CheckedExpr e = check_expression(m, diags);
    std::ostringstream errors;
    diags.render(errors);
    ASSERT_FALSE(diags.has_errors()) << text << "\n" << errors.str();
    const LoweredExpr back = lower_expression(e, c, &by_name);
    ++checked;
    EXPECT_EQ(ir::simplify(c, back.root), s) << "printed:\n" << text << "\nread back as:\n"
                                             << ir::print_text(ir::simplify(c, back.root));
  }
  EXPECT_GT(checked, 1000);
}

}  // namespace
}  // namespace nabla
