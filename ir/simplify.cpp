#include "ir/simplify.h"

#include <algorithm>
#include <ostream>
#include <unordered_map>

#include "ir/assert.h"
#include "ir/print.h"

namespace nabla::ir {
namespace {

class Simplifier {
public:
  Simplifier(Context& ctx, const SimplifyOptions& options) : c_(ctx), o_(options) {
    for (const Rule& r : simplifier_rules()) by_op_[r.root].push_back(&r);
  }

  // Passes over the whole DAG until one changes nothing (the sharing of
  // nodes, which flattening respects, can change with a pass).
  std::vector<const Node*> run(std::vector<const Node*> roots) {
    for (int pass = 1;; ++pass) {
      count_users(roots);
      std::vector<const Node*> next;
      for (const Node* r : roots) next.push_back(simplified(r));
      if (next == roots) return roots;
      if (pass >= o_.max_passes)
        throw SimplifyError("the simplifier did not reach a fixpoint in " + std::to_string(o_.max_passes) +
                            " passes (the last rule to fire: " + last_rule_ + ")");
      roots = std::move(next);
      memo_.clear();
    }
  }

private:
  // The simplified form of `root`: the nodes under it that are not
  // simplified yet are rebuilt bottom-up from simplified operands, each
  // rewritten to a fixpoint of the rules. Nodes simplified before are not
  // walked again, so each node costs once however often rules fire above it.
  const Node* simplified(const Node* root) {
    if (auto it = memo_.find(root); it != memo_.end()) return it->second;
    const std::vector<const Node*> fresh = unsimplified_below(root);
    // Users among the fresh nodes (older nodes cannot use fresh ones).
    std::unordered_map<const Node*, std::pair<int, Op>> users;
    for (const Node* n : fresh)
      for (const Node* o : n->operands()) {
        auto& [count, op] = users[o];
        ++count;
        op = n->op();
      }
    for (const Node* n : fresh) {
      if (memo_.count(n)) continue;
      std::vector<const Node*> ops;
      bool changed = false;
      for (const Node* o : n->operands()) {
        ops.push_back(memo_.at(o));
        changed |= ops.back() != o;
      }
      const Node* rebuilt = changed ? c_.make(n->op(), ops, n->attr(), n->shape()) : n;
      const bool multi = multi_use_.count(n) > 0;
      if (multi) shared_.insert(rebuilt);
      auto u = users.find(n);
      if (!multi && u != users.end() && u->second.first == 1 && flattened_into(n->op(), u->second.second)) {
        memo_[n] = rebuilt;  // its one user flattens it: collected there, once
        continue;
      }
      const Node* r = rewrite(rebuilt);
      memo_[n] = r;
      memo_.emplace(r, r);  // a fixpoint: not walked again
      if (multi) shared_.insert(r);
    }
    return memo_.at(root);
  }

  // A product inside a product, a sum inside a sum: the collect rules at the
  // outer node flatten the inner one whole (it is not shared), so rewriting
  // the inner one first would only be undone. Skipping it keeps a chain of k
  // products linear (each level flattened again cost k^2: the derivative of
  // tanh nested 4,000 deep took 48 s).
  static bool flattened_into(Op inner, Op user) {
    const bool product = inner == Op::Mul || inner == Op::Div, sum = inner == Op::Add || inner == Op::Sub;
    return (product && (user == Op::Mul || user == Op::Div)) || (sum && (user == Op::Add || user == Op::Sub));
  }

  // The nodes under `root` (itself included) that have no simplified form
  // yet, in ascending id (topological) order; the walk stops at nodes that
  // have one.
  std::vector<const Node*> unsimplified_below(const Node* root) {
    std::vector<const Node*> out, stack{root};
    std::unordered_set<const Node*> seen;
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      if (memo_.count(n) || !seen.insert(n).second) continue;
      out.push_back(n);
      for (const Node* o : n->operands()) stack.push_back(o);
    }
    std::sort(out.begin(), out.end(), [](const Node* a, const Node* b) { return a->id() < b->id(); });
    return out;
  }

  // `n` rewritten until no rule fires (at most kMaxSteps rewrites: more is
  // a rule set that cycles, an error).
  const Node* rewrite(const Node* n) {
    constexpr int kMaxSteps = 1000;
    for (int steps = 0;; ++steps) {
      if (steps == kMaxSteps)
        throw SimplifyError("rule " + last_rule_ + " kept firing: " + std::to_string(kMaxSteps) +
                            " rewrites at one node, ending at " + print_text(n));
      const Node* next = nullptr;
      const Rule* fired = nullptr;
      if (auto it = by_op_.find(n->op()); it != by_op_.end()) {
        for (const Rule* r : it->second) {
          next = r->apply(c_, n, env_);
          if (next && next != n) {
            fired = r;
            break;
          }
        }
      }
      if (!fired) return n;
      NABLA_ASSERT(next->shape() == n->shape(), fired->name);
      last_rule_ = fired->name;
      if (o_.on_rule) o_.on_rule(*fired, n, next);
      if (o_.trace)
        *o_.trace << "rule " << fired->name << ": " << print_text(n) << "  ->  " << print_text(next)
                  << "\n";
      memo_[n] = next;
      n = simplified(next);  // new nodes the rule built are simplified too
    }
  }

  // Marks the nodes of the DAG under `roots` that have more than one user.
  // Being a root counts as a use: a root that other nodes use too (a delta
  // of backpropagation, used by the delta before it) stays one shared node,
  // not copied flattened into each user (k deltas of a chain would be k^2).
  void count_users(const std::vector<const Node*>& roots) {
    std::unordered_map<const Node*, int> users;
    for (const Node* r : roots) ++users[r];
    for (const Node* n : reachable(roots))
      for (const Node* o : n->operands()) ++users[o];
    multi_use_.clear();
    shared_.clear();
    for (const auto& [n, count] : users)
      if (count > 1) {
        multi_use_.insert(n);
        shared_.insert(n);
      }
  }

  Context& c_;
  const SimplifyOptions& o_;
  std::unordered_set<const Node*> multi_use_, shared_;
  RuleEnv env_{o_, shared_};
  std::unordered_map<Op, std::vector<const Rule*>> by_op_;
  std::unordered_map<const Node*, const Node*> memo_;
  std::string last_rule_ = "none";
};

}  // namespace

std::vector<const Node*> simplify(Context& ctx, std::vector<const Node*> roots,
                                  const SimplifyOptions& options) {
  return Simplifier(ctx, options).run(std::move(roots));
}

const Node* simplify(Context& ctx, const Node* root, const SimplifyOptions& options) {
  return simplify(ctx, std::vector<const Node*>{root}, options)[0];
}

}  // namespace nabla::ir
