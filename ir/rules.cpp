// The simplifier's rewrite rules, grouped by root op. Each is one named
// rewrite; the algebra is in the name and the one-line comment.
#include <algorithm>
#include <cmath>
#include <map>

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

N collect_terms(Context& c, N n, const RuleEnv& env) {
  std::vector<std::pair<N, double>> stack{{n, 1.0}};
  std::map<uint32_t, std::pair<N, double>> terms;  // by id: canonical order
  double constant = 0;
  int visited = 0;
  while (!stack.empty()) {
    auto [m, sign] = stack.back();
    stack.pop_back();
    ++visited;
    const bool atomic = keep_whole(m, n, env);
    if (atomic) {
      accumulate(terms, m, sign);
    } else if (is(m, Op::Add)) {
      stack.push_back({m->operand(1), sign});
      stack.push_back({m->operand(0), sign});
    } else if (is(m, Op::Sub)) {
      stack.push_back({m->operand(1), -sign});
      stack.push_back({m->operand(0), sign});
    } else if (is(m, Op::Neg) && (is(m->operand(0), Op::Add) || is(m->operand(0), Op::Sub) ||
                                  is(m->operand(0), Op::Neg))) {
      stack.push_back({m->operand(0), -sign});
    } else {
      auto [coef, t] = split_coefficient(m);
      if (!t) {
        constant += sign * coef;
        continue;
      }
      accumulate(terms, t, sign * coef);
    }
  }
  if (visited == 1) return nullptr;  // not a sum
  // sigmoid(u) + sigmoid(-u) = 1 and softplus(u) - softplus(-u) = u, for
  // terms with equal (opposite) coefficients.
  for (auto& [id, tc] : terms) {
    auto& [t, coef] = tc;
    if (coef == 0 || (!is(t, Op::Sigmoid) && !is(t, Op::Softplus)) || !is(t->operand(0), Op::Neg))
      continue;
    auto mirror = terms.find(c.unary(t->op(), t->operand(0)->operand(0))->id());
    if (mirror == terms.end() || mirror->second.second == 0) continue;
    double& other = mirror->second.second;
    const N u = t->operand(0)->operand(0);
    if (is(t, Op::Sigmoid) && other == coef) {  // c sigmoid(-u) + c sigmoid(u) = c
      constant += coef;
      other = coef = 0;
    } else if (is(t, Op::Softplus) && other == -coef) {  // c softplus(u) - c softplus(-u) = c u
      accumulate(terms, u, other);
      other = coef = 0;
    }
  }
  // Deeper terms first, leaves last (w * x + b, outer(delta, h) + lambda * W,
  // as a textbook writes them); ties by id.
  std::vector<std::pair<N, double>> ordered;
  for (const auto& [id, tc] : terms) ordered.push_back(tc);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return a.first->depth() > b.first->depth();
  });
  std::vector<std::pair<N, double>> pos, neg;
  for (const auto& tc : ordered) {
    if (tc.second > 0) pos.push_back(tc);
    else if (tc.second < 0) neg.push_back(tc);
  }
  N acc = nullptr;
  if (pos.empty() && constant > 0) {  // 1 - x rather than -x + 1
    acc = k(c, constant);
    constant = 0;
  }
  for (const auto& [t, coef] : pos) acc = acc ? c.add(acc, scaled(c, coef, t)) : scaled(c, coef, t);
  for (const auto& [t, coef] : neg) acc = acc ? c.sub(acc, scaled(c, -coef, t)) : scaled(c, coef, t);
  if (!acc) acc = k(c, constant);
  else if (constant > 0) acc = c.add(acc, k(c, constant));
  else if (constant < 0) acc = c.sub(acc, k(c, -constant));
  else if (std::isnan(constant)) acc = c.add(acc, k(c, constant));
  return keep_shape(c, acc, n);
}

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
      coef *= std::pow(m->value(), e);
    } else {
      accumulate(factors, m, e);
    }
  }
  if (visited == 1) return nullptr;  // not a product
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

N pow_simple(Context& c, N n, const RuleEnv&) {
  N x = n->operand(0), e = n->operand(1);
  if (e->is_constant(1)) return keep_shape(c, x, n);                     // x^1 -> x
  if (e->is_constant(0)) return keep_shape(c, k(c, 1), n);               // x^0 -> 1
  if (x->is_constant(1)) return keep_shape(c, k(c, 1), n);               // 1^x -> 1
  if (e->is_constant(0.5)) return keep_shape(c, c.unary(Op::Sqrt, x), n);  // x^0.5 -> sqrt(x)
  return nullptr;
}

// 1 / (1 + exp(-u)) -> sigmoid(u); c / (exp(v) + 1) -> c sigmoid(-v).
N div_sigmoid(Context& c, N n, const RuleEnv&) {
  N num = n->operand(0), den = n->operand(1);
  if (!num->is_constant() || !is(den, Op::Add) || !den->operand(1)->is_constant(1) ||
      !is(den->operand(0), Op::Exp))
    return nullptr;
  N s = c.unary(Op::Sigmoid, c.neg(den->operand(0)->operand(0)));
  return keep_shape(c, num->is_constant(1) ? s : c.mul(num, s), n);
}

// exp(u) / (exp(u) + 1) -> sigmoid(u).
N div_sigmoid_exp(Context& c, N n, const RuleEnv&) {
  N num = n->operand(0), den = n->operand(1);
  if (!is(num, Op::Exp) || !is(den, Op::Add) || den->operand(0) != num ||
      !den->operand(1)->is_constant(1))
    return nullptr;
  return keep_shape(c, c.unary(Op::Sigmoid, num->operand(0)), n);
}

// log(exp(u) + 1) -> softplus(u).
N log_softplus(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0);
  if (!is(a, Op::Add) || !a->operand(1)->is_constant(1) || !is(a->operand(0), Op::Exp)) return nullptr;
  return c.unary(Op::Softplus, a->operand(0)->operand(0));
}

N log_exp(Context& c, N n, const RuleEnv&) {  // log(exp(u)) -> u
  return is(n->operand(0), Op::Exp) ? n->operand(0)->operand(0) : nullptr;
}
N exp_log(Context& c, N n, const RuleEnv&) {  // exp(log(u)) -> u (where log(u) is defined)
  return is(n->operand(0), Op::Log) ? n->operand(0)->operand(0) : nullptr;
}
N log_one(Context& c, N n, const RuleEnv&) {  // log(1) folds; log(sigmoid(z)) -> -softplus(-z)
  N a = n->operand(0);
  if (is(a, Op::Sigmoid)) return c.neg(c.unary(Op::Softplus, c.neg(a->operand(0))));
  return nullptr;
}
// log(1 - sigmoid(z)) -> -softplus(z)
N log_one_minus_sigmoid(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0);
  if (!is(a, Op::Sub) || !a->operand(0)->is_constant(1) || !is(a->operand(1), Op::Sigmoid)) return nullptr;
  return keep_shape(c, c.neg(c.unary(Op::Softplus, a->operand(1)->operand(0))), n);
}
// log(softmax(z)) -> log_softmax(z)
N log_softmax(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0);
  if (!is(a, Op::Softmax)) return nullptr;
  return c.make(Op::LogSoftmax, {a->operand(0)}, a->attr());
}
// exp(log_softmax(z)) -> softmax(z)
N exp_log_softmax(Context& c, N n, const RuleEnv&) {
  N a = n->operand(0);
  if (!is(a, Op::LogSoftmax)) return nullptr;
  return c.make(Op::Softmax, {a->operand(0)}, a->attr());
}

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

// (A.T).T -> A
N transpose_transpose(Context& c, N n, const RuleEnv&) {
  return is(n->operand(0), Op::Transpose) ? n->operand(0)->operand(0) : nullptr;
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

// where(1, a, b) -> a; where(0, a, b) -> b; where(c, a, a) -> a.
N where_simple(Context& c, N n, const RuleEnv&) {
  N cond = n->operand(0);
  if (cond->is_constant()) return keep_shape(c, cond->value() != 0 ? n->operand(1) : n->operand(2), n);
  if (n->operand(1) == n->operand(2)) return keep_shape(c, n->operand(1), n);
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

std::vector<Rule> make_rules() {
  std::vector<Rule> r;
  for (Op op : {Op::Add, Op::Sub, Op::Neg}) r.push_back({"collect-terms", op, collect_terms});
  for (Op op : {Op::Mul, Op::Div, Op::Neg, Op::Pow}) r.push_back({"collect-factors", op, collect_factors});
  r.push_back({"stable-bce-logits", Op::Add, bce_logits});
  r.push_back({"stable-bce-logits", Op::Sub, bce_logits});
  r.push_back({"matmul-shared-factor", Op::Add, shared_factor});
  r.push_back({"matmul-shared-factor", Op::Sub, shared_factor});
  r.push_back({"pow-identities", Op::Pow, pow_simple});
  r.push_back({"recognize-sigmoid", Op::Div, div_sigmoid});
  r.push_back({"recognize-sigmoid-exp", Op::Div, div_sigmoid_exp});
  r.push_back({"recognize-softplus", Op::Log, log_softplus});
  r.push_back({"log-exp", Op::Log, log_exp});
  r.push_back({"exp-log", Op::Exp, exp_log});
  r.push_back({"stable-log-sigmoid", Op::Log, log_one});
  r.push_back({"stable-log-one-minus-sigmoid", Op::Log, log_one_minus_sigmoid});
  r.push_back({"stable-log-softmax", Op::Log, log_softmax});
  r.push_back({"exp-log-softmax", Op::Exp, exp_log_softmax});
  r.push_back({"recognize-swish", Op::Mul, mul_swish});
  r.push_back({"transpose-transpose", Op::Transpose, transpose_transpose});
  r.push_back({"sum-distribution", Op::Sum, sum_distribution});
  r.push_back({"sum-scalar-factor", Op::Sum, sum_scalar_factor});
  r.push_back({"where-constant", Op::Where, where_simple});
  for (Op op : {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Where})
    r.push_back({"implicit-broadcast", op, elementwise_unbroadcast});
  return r;
}

}  // namespace

const std::vector<Rule>& simplifier_rules() {
  static const std::vector<Rule> rules = make_rules();
  return rules;
}

}  // namespace nabla::ir
