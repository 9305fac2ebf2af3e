// The simplifier's rewrite rules. Fixed-shape rewrites are table rows (a
// pattern and its replacement, ir/pattern.h); the rules that need a
// predicate or a computation (collecting sums and products, the mirror
// identities, shapes, shared nodes) are code. Each has one name, the one
// --trace-rules prints, and the measure it lowers (Rule::lowers).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "ir/assert.h"
#include "ir/pattern.h"
#include "ir/simplify.h"

namespace nabla::ir {
namespace {

using N = const Node*;

bool is(N n, Op op) { return n->op() == op; }
N k(Context& c, double v) { return c.constant(v); }

// A shared node stays whole when flattening a sum or product, unless it is
// small (at most kSmallTree nodes as a tree): then copying its few factors
// costs less than it gains (x*x*x used twice still cancels against x^6).
constexpr int kSmallTree = 8;
bool small_tree(N n, int budget = kSmallTree) {
  std::vector<N> stack{n};
  while (!stack.empty()) {
    N m = stack.back();
    stack.pop_back();
    if (--budget < 0) return false;
    for (N o : m->operands()) stack.push_back(o);
  }
  return true;
}
bool keep_whole(N m, N root, const RuleEnv& env) {
  return m != root && !m->is_constant() && env.shared.count(m) && !small_tree(m);
}
// `n` with the shape `like` has (an identity rewrite must keep the shape).
N keep_shape(Context& c, N n, N like) { return c.broadcast_to(n, like->shape()); }

// Adds `weight` to the entry of `n` in a term or factor table keyed by id.
void accumulate(std::map<uint32_t, std::pair<N, double>>& table, N n, double weight) {
  table.emplace(n->id(), std::make_pair(n, 0.0)).first->second.second += weight;
}

// ---------------------------------------------------------------------------
// Sums: a + b, a - b, -a flattened into coefficient * term, like terms
// merged, then rebuilt in a canonical order: terms by id, positive ones
// first, the constant last: 3*x - x + 2*x + 1 -> 4*x + 1.

// n = coefficient * rest.
std::pair<double, N> split_coefficient(N n) {
  if (n->is_constant()) return {n->value(), nullptr};
  if (is(n, Op::Mul) && n->operand(0)->is_constant()) return {n->operand(0)->value(), n->operand(1)};
  if (is(n, Op::Neg)) {
    auto [c, t] = split_coefficient(n->operand(0));
    return {-c, t};
  }
  return {1.0, n};
}

N scaled(Context& c, double coef, N t) {
  if (coef == 1) return t;
  if (coef == -1) return c.neg(t);
  return c.mul(k(c, coef), t);
}

// A sum flattened: its terms by id (canonical order) with their
// coefficients, and its constant.
struct Terms {
  std::map<uint32_t, std::pair<N, double>> terms;
  double constant = 0;
};

// The terms of `n`, or nullopt when `n` is not a sum (nothing to flatten).
std::optional<Terms> flatten_terms(N n, const RuleEnv& env) {
  std::vector<std::pair<N, double>> stack{{n, 1.0}};
  Terms t;
  int visited = 0;
  bool inputs_finite = true;  // every constant met
  while (!stack.empty()) {
    auto [m, sign] = stack.back();
    stack.pop_back();
    ++visited;
    const bool atomic = keep_whole(m, n, env);
    if (atomic) {
      accumulate(t.terms, m, sign);
    } else if (is(m, Op::Add)) {
      stack.push_back({m->operand(1), sign});
      stack.push_back({m->operand(0), sign});
    } else if (is(m, Op::Sub)) {
      stack.push_back({m->operand(1), -sign});
      stack.push_back({m->operand(0), sign});
    } else if (is(m, Op::Neg) && (is(m->operand(0), Op::Add) || is(m->operand(0), Op::Sub) ||
                                  is(m->operand(0), Op::Neg))) {
      stack.push_back({m->operand(0), -sign});
    } else if (is(m, Op::Neg) && keep_whole(m->operand(0), n, env)) {
      // -T for a T kept whole is the term T, as T alone is: were T split
      // here (0.1 * s -> s) but kept whole elsewhere, the two forms of one
      // sum would rebuild into each other forever.
      accumulate(t.terms, m->operand(0), -sign);
    } else {
      auto [coef, rest] = split_coefficient(m);
      inputs_finite = inputs_finite && std::isfinite(coef);
      if (!rest) {
        t.constant += sign * coef;
        continue;
      }
      accumulate(t.terms, rest, sign * coef);
    }
  }
  if (visited == 1) return std::nullopt;
  // Folding finite coefficients into an infinity (1e308 * x + 1e308 * x)
  // would change the value where the term is 0 (inf * 0 is NaN): such a
  // sum is left as written.
  bool folded_finite = std::isfinite(t.constant);
  for (const auto& [id, tc] : t.terms) folded_finite = folded_finite && std::isfinite(tc.second);
  if (!folded_finite && inputs_finite) return std::nullopt;
  return t;
}

// The canonical sum of `t` (with the shape of `like`).
N rebuild_sum(Context& c, Terms t, N like) {
  // Deeper terms first, leaves last (w * x + b, outer(delta, h) + lambda * W,
  // as a textbook writes them); ties by id.
  std::vector<std::pair<N, double>> ordered;
  for (const auto& [id, tc] : t.terms) ordered.push_back(tc);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return a.first->depth() > b.first->depth();
  });
  std::vector<std::pair<N, double>> pos, neg;
  for (const auto& tc : ordered) {
    if (tc.second > 0) pos.push_back(tc);
    else if (tc.second < 0) neg.push_back(tc);
  }
  double constant = t.constant;
  N acc = nullptr;
  if (pos.empty() && constant > 0) {  // 1 - x rather than -x + 1
    acc = k(c, constant);
    constant = 0;
  }
  for (const auto& [term, coef] : pos) acc = acc ? c.add(acc, scaled(c, coef, term)) : scaled(c, coef, term);
  for (const auto& [term, coef] : neg) acc = acc ? c.sub(acc, scaled(c, -coef, term)) : scaled(c, coef, term);
  if (!acc) acc = k(c, constant);
  else if (constant > 0) acc = c.add(acc, k(c, constant));
  else if (constant < 0) acc = c.sub(acc, k(c, -constant));
  else if (std::isnan(constant)) acc = c.add(acc, k(c, constant));
  return keep_shape(c, acc, like);
}

N collect_terms(Context& c, N n, const RuleEnv& env) {
  std::optional<Terms> t = flatten_terms(n, env);
  return t ? rebuild_sum(c, std::move(*t), n) : nullptr;
}

// The mirror identities, wherever the two terms stand in a sum, with equal
// coefficients a (sigmoid) or opposite ones (softplus):
//   a sigmoid(u) + a sigmoid(-u) = a;   a softplus(u) - a softplus(-u) = a u.
// `f` is Sigmoid or Softplus.
N mirror_terms(Context& c, N n, const RuleEnv& env, Op f) {
  std::optional<Terms> t = flatten_terms(n, env);
  if (!t) return nullptr;
  bool fired = false;
  for (auto& [id, tc] : t->terms) {
    auto& [term, coef] = tc;
    if (coef == 0 || !is(term, f) || !is(term->operand(0), Op::Neg)) continue;
    const N u = term->operand(0)->operand(0);
    auto mirror = t->terms.find(c.unary(f, u)->id());
    if (mirror == t->terms.end() || mirror->second.second == 0) continue;
    double& other = mirror->second.second;
    if (f == Op::Sigmoid && other == coef) {
      t->constant += coef;
      other = coef = 0;
      fired = true;
    } else if (f == Op::Softplus && other == -coef) {
      accumulate(t->terms, u, other);
      other = coef = 0;
      fired = true;
    }
  }
  return fired ? rebuild_sum(c, std::move(*t), n) : nullptr;
}
N sigmoid_mirror(Context& c, N n, const RuleEnv& env) { return mirror_terms(c, n, env, Op::Sigmoid); }
N softplus_mirror(Context& c, N n, const RuleEnv& env) { return mirror_terms(c, n, env, Op::Softplus); }

// ---------------------------------------------------------------------------
// Products: a * b, a / b, -a, x^c (numeric c) flattened into coefficient *
// base^exponent, equal bases merged (x * x -> x^2, x^a * x^b -> x^(a+b)),
// then rebuilt as coefficient * numerator / denominator, bases by id.

N power(Context& c, N base, double e) { return e == 1 ? base : c.pow(base, k(c, e)); }

N collect_factors(Context& c, N n, const RuleEnv& env) {
  std::vector<std::pair<N, double>> stack{{n, 1.0}};
  std::map<uint32_t, std::pair<N, double>> factors;
  double coef = 1;
  int visited = 0;
  bool inputs_finite = true;  // every constant factor met
  while (!stack.empty()) {
    auto [m, e] = stack.back();
    stack.pop_back();
    ++visited;
    // (a b)^e = a^e b^e only for integral e (a, b may be negative).
    const bool integral = e == std::floor(e);
    if (keep_whole(m, n, env) || (!integral && (is(m, Op::Mul) || is(m, Op::Div)))) {
      accumulate(factors, m, e);
    } else if (is(m, Op::Mul)) {
      stack.push_back({m->operand(1), e});
      stack.push_back({m->operand(0), e});
    } else if (is(m, Op::Div)) {
      stack.push_back({m->operand(1), -e});
      stack.push_back({m->operand(0), e});
    } else if (is(m, Op::Neg) && integral) {
      coef *= std::pow(-1.0, e);
      stack.push_back({m->operand(0), e});
    } else if (is(m, Op::Pow) && m->operand(1)->is_constant() && integral &&
               std::isfinite(m->operand(1)->value())) {
      // (x^c)^e = x^(c e) for integral e.
      stack.push_back({m->operand(0), e * m->operand(1)->value()});
    } else if (m->is_constant()) {
      const double v = std::pow(m->value(), e);
      inputs_finite = inputs_finite && std::isfinite(v);
      coef *= v;
    } else {
      accumulate(factors, m, e);
    }
  }
  if (visited == 1) return nullptr;  // not a product
  // Finite constants that multiply into an infinity or NaN (x * 1e308 * 10)
  // would change the value where x is 0: the product is left as written.
  if (!std::isfinite(coef) && inputs_finite) return nullptr;
  if (coef == 0) return keep_shape(c, k(c, 0), n);
  // Scalar names first (lambda * W), then by id.
  std::vector<std::pair<N, double>> ordered;
  for (const auto& [id, be] : factors) ordered.push_back(be);
  auto scalar_leaf = [](N f) { return f->arity() == 0 && f->shape().is_scalar(); };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const auto& a, const auto& b) {
    return scalar_leaf(a.first) && !scalar_leaf(b.first);
  });
  // coefficient * num1 * num2 ... / (den1 * den2 ...), the coefficient
  // heading the chain (2 * alpha * V) and a -1 as a negation.
  N num = coef == 1 || coef == -1 ? nullptr : k(c, coef);
  N den = nullptr;
  for (const auto& [base, e] : ordered) {
    if (e > 0) num = num ? c.mul(num, power(c, base, e)) : power(c, base, e);
    if (e < 0) den = den ? c.mul(den, power(c, base, -e)) : power(c, base, -e);
  }
  if (!num) num = k(c, coef == -1 && den ? 1 : coef);
  N acc = den ? c.div(num, den) : num;
  if (coef == -1 && !(acc->is_constant())) acc = c.neg(acc);
  return keep_shape(c, acc, n);
}

// ---------------------------------------------------------------------------

// x * sigmoid(x) -> swish(x, 1); x * sigmoid(b * x) -> swish(x, b), unless
// the sigmoid is shared (as in a derivative x s (1 - s)): then it stays.
N mul_swish(Context& c, N n, const RuleEnv& env) {
  N x = n->operand(0), s = n->operand(1);
  if (!is(s, Op::Sigmoid)) std::swap(x, s);
  if (!is(s, Op::Sigmoid) || env.shared.count(s)) return nullptr;
  N u = s->operand(0);
  if (u == x) return keep_shape(c, c.make(Op::Swish, {x, k(c, 1)}), n);
  if (is(u, Op::Mul) && u->operand(1) == x && u->operand(0)->shape().is_scalar())
    return keep_shape(c, c.make(Op::Swish, {x, u->operand(0)}), n);
  return nullptr;
}

// sum(y) -> 1 for a label declared `distribution`.
N sum_distribution(Context& c, N n, const RuleEnv& env) {
  if (n->attr() != kAllAxes || !env.options.distributions.count(n->operand(0))) return nullptr;
  return k(c, 1);
}
// sum(c * x) -> c * sum(x), sum(-x) -> -sum(x) for a scalar c.
N sum_scalar_factor(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0);
  if (is(a, Op::Neg)) return c.neg(c.make(Op::Sum, {a->operand(0)}, n->attr()));
  if (is(a, Op::Mul) && a->operand(0)->shape().is_scalar() && a->operand(1)->shape() == a->shape())
    return c.mul(a->operand(0), c.make(Op::Sum, {a->operand(1)}, n->attr()));
  return nullptr;
}

// where(c, a, b) -> a for a constant c != 0, b for c = 0.
N where_constant(Context& c, N n, const RuleEnv&) {
  N cond = n->operand(0);
  if (cond->is_constant()) return keep_shape(c, cond->value() != 0 ? n->operand(1) : n->operand(2), n);
  return nullptr;
}

// A broadcast under an elementwise op whose other operand has the full
// shape is implicit: broadcast(s) * t -> s * t.
N elementwise_unbroadcast(Context& c, N n, const RuleEnv&) {
  std::vector<N> ops(n->operands().begin(), n->operands().end());
  bool changed = false;
  for (N& o : ops) {
    if (!is(o, Op::Broadcast) || o->attr() != kAllAxes) continue;
    N inner = o->operand(0);
    std::vector<N> trial = ops;
    trial[static_cast<size_t>(&o - ops.data())] = inner;
    Shape s = trial[0]->shape();
    for (N t : trial) s = *broadcast(s, t->shape());
    if (s == n->shape()) {
      o = inner;
      changed = true;
    }
  }
  return changed ? c.make(n->op(), ops, n->attr(), n->shape()) : nullptr;
}

// (1 - y) softplus(z) + y softplus(-z) -> softplus(z) - y z: binary
// cross-entropy of sigmoid(z), whose gradient is then sigmoid(z) - y.
N bce_logits(Context& c, N n, const RuleEnv& env) {
  auto split = [](N m, Op f) -> std::pair<N, N> {  // m = other * f(..)
    if (!is(m, Op::Mul)) return {nullptr, nullptr};
    if (is(m->operand(1), f)) return {m->operand(0), m->operand(1)};
    if (is(m->operand(0), f)) return {m->operand(1), m->operand(0)};
    return {nullptr, nullptr};
  };
  // The two terms with their coefficients (a - b is a + (-1) b); equal
  // coefficients c give c (softplus(z) - y z).
  auto [ca, ta] = split_coefficient(n->operand(0));
  auto [cb, tb] = split_coefficient(n->operand(1));
  if (is(n, Op::Sub)) cb = -cb;
  if (!ta || !tb || ca != cb) return nullptr;
  for (auto [p, q] : {std::pair{ta, tb}, std::pair{tb, ta}}) {
    auto [one_minus_y, sp] = split(p, Op::Softplus);
    auto [y, sn] = split(q, Op::Softplus);
    if (!sp || !sn) continue;
    // -z as the collect rule writes it (-(t + b) is -t - b).
    N z = sp->operand(0), neg_z = c.neg(z);
    if (N canonical = collect_terms(c, neg_z, env)) neg_z = canonical;
    if (sn->operand(0) != neg_z && !(is(sn->operand(0), Op::Neg) && sn->operand(0)->operand(0) == z)) continue;
    if (!is(one_minus_y, Op::Sub) || !one_minus_y->operand(0)->is_constant(1) || one_minus_y->operand(1) != y)
      continue;
    return keep_shape(c, scaled(c, ca, c.sub(sp, c.mul(y, sp->operand(0)))), n);
  }
  return nullptr;
}

// A @ x + A @ y -> A @ (x + y); x @ A + y @ A -> (x + y) @ A;
// outer(u, x) + outer(v, x) -> outer(u + v, x) (and the other side).
N shared_factor(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0), b = n->operand(1);
  if (a->op() != b->op() || (!is(a, Op::MatMul) && !is(a, Op::Outer))) return nullptr;
  N a0 = a->operand(0), a1 = a->operand(1), b0 = b->operand(0), b1 = b->operand(1);
  const bool sub = is(n, Op::Sub);
  auto combine = [&](N x, N y) { return sub ? c.sub(x, y) : c.add(x, y); };
  if (a0 == b0 && a1->shape() == b1->shape()) return keep_shape(c, c.make(a->op(), {a0, combine(a1, b1)}), n);
  if (a1 == b1 && a0->shape() == b0->shape()) return keep_shape(c, c.make(a->op(), {combine(a0, b0), a1}), n);
  return nullptr;
}

// ---------------------------------------------------------------------------
// Fixed-shape rewrites: one row each, in the notation of ir/pattern.h. The
// replacement is broadcast to the shape of what it replaces. `lowers`: the
// measure the rewrite lowers ("nodes" is checked by a test for every row).

struct Row {
  const char* name;
  const char* pattern;
  const char* replacement;
  const char* lowers = "nodes";
};

// In the order they are tried at each root op (after the code rules listed
// before them in make_rules).
// x^1 and x^0 need no rows: collect-factors, tried first, rewrites them.
constexpr Row kPowRows[] = {
    {"one-pow", "(^ 1 x)", "1"},
    {"pow-half", "(^ x 0.5)", "(sqrt x)"},
};
constexpr Row kDivRows[] = {
    {"recognize-sigmoid", "(/ 1 (+ (exp v) 1))", "(sigmoid (- v))"},
    {"recognize-scaled-sigmoid", "(/ #c (+ (exp v) 1))", "(* #c (sigmoid (- v)))"},
    {"recognize-sigmoid-exp", "(/ (exp u) (+ (exp u) 1))", "(sigmoid u)"},
};
constexpr Row kLogExpRows[] = {
    {"recognize-softplus", "(log (+ (exp u) 1))", "(softplus u)"},
    {"log-exp", "(log (exp u))", "u"},
    {"exp-log", "(exp (log u))", "u"},  // where log(u) is defined
    // log(sigmoid(z)) underflows to -inf from z < -104 (f32); -softplus(-z)
    // is finite there.
    {"stable-log-sigmoid", "(log (sigmoid z))", "(- (softplus (- z)))", "stability: finite where the original is -inf"},
    {"stable-log-one-minus-sigmoid", "(log (- 1 (sigmoid z)))", "(- (softplus z))"},
    {"stable-log-softmax", "(log (softmax:a z))", "(log_softmax:a z)"},
    {"exp-log-softmax", "(exp (log_softmax:a z))", "(softmax:a z)"},
};
constexpr Row kOtherRows[] = {
    {"transpose-transpose", "(transpose (transpose a))", "a"},
};
constexpr Row kWhereRows[] = {
    {"where-same", "(where c a a)", "a"},
};

Rule row_rule(const Row& row) {
  const Pattern pattern = parse_pattern(row.pattern), replacement = parse_pattern(row.replacement);
  NABLA_ASSERT(pattern.kind == Pattern::Kind::Apply, std::string("rule ") + row.name + ": a pattern starts with an op");
  Rule r;
  r.name = row.name;
  r.root = pattern.op;
  r.apply = [pattern, replacement](Context& c, N n, const RuleEnv&) -> N {
    Bindings b;
    if (!match(pattern, n, b)) return nullptr;
    return keep_shape(c, instantiate(c, replacement, b), n);
  };
  r.lowers = row.lowers;
  r.pattern = pattern_text(pattern);
  r.replacement = pattern_text(replacement);
  return r;
}

template <size_t K>
void add_rows(std::vector<Rule>& r, const Row (&rows)[K]) {
  for (const Row& row : rows) r.push_back(row_rule(row));
}

// Every rule, in the order they are tried at each root op.
std::vector<Rule> make_rules() {
  std::vector<Rule> r;
  auto code = [&](const char* name, Op root, N (*apply)(Context&, N, const RuleEnv&), const char* lowers) {
    Rule rule;
    rule.name = name;
    rule.root = root;
    rule.apply = apply;
    rule.lowers = lowers;
    r.push_back(std::move(rule));
  };
  for (Op op : {Op::Add, Op::Sub, Op::Neg}) {
    code("sigmoid-mirror", op, sigmoid_mirror, "nodes");
    code("softplus-mirror", op, softplus_mirror, "nodes");
    code("collect-terms", op, collect_terms, "canonical form: a canonical sum maps to itself");
  }
  for (Op op : {Op::Mul, Op::Div, Op::Neg, Op::Pow})
    code("collect-factors", op, collect_factors, "canonical form: a canonical product maps to itself");
  for (Op op : {Op::Add, Op::Sub}) {
    code("stable-bce-logits", op, bce_logits, "nodes");
    code("matmul-shared-factor", op, shared_factor, "nodes");
  }
  add_rows(r, kPowRows);
  add_rows(r, kDivRows);
  add_rows(r, kLogExpRows);
  code("recognize-swish", Op::Mul, mul_swish, "nodes");
  add_rows(r, kOtherRows);
  code("sum-distribution", Op::Sum, sum_distribution, "nodes");
  code("sum-scalar-factor", Op::Sum, sum_scalar_factor,
       "work: the scalar multiplies the sum once instead of every element (the node count is unchanged)");
  code("where-constant", Op::Where, where_constant, "nodes");
  add_rows(r, kWhereRows);
  for (Op op : {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Where})
    code("implicit-broadcast", op, elementwise_unbroadcast, "nodes");
  return r;
}

}  // namespace

const std::vector<Rule>& simplifier_rules() {
  static const std::vector<Rule> rules = make_rules();
  return rules;
}

}  // namespace nabla::ir
