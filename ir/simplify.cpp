#include "ir/simplify.h"

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

  std::vector<const Node*> run(std::vector<const Node*> roots) {
    for (int pass = 0; pass < o_.max_passes; ++pass) {
      count_users(roots);
      std::vector<const Node*> next;
      for (const Node* r : roots) next.push_back(simplified(r));
      if (next == roots) break;
      roots = std::move(next);
      memo_.clear();
    }
    return roots;
  }

private:
  // The simplified form of `root`: its reachable nodes are rebuilt bottom-up
  // from simplified operands, each rewritten to a fixpoint of the rules.
  const Node* simplified(const Node* root) {
    if (auto it = memo_.find(root); it != memo_.end()) return it->second;
    for (const Node* n : reachable(std::span<const Node* const>(&root, 1))) {
      if (memo_.count(n)) continue;
      std::vector<const Node*> ops;
      bool changed = false;
      for (const Node* o : n->operands()) {
        ops.push_back(memo_.at(o));
        changed |= ops.back() != o;
      }
      const Node* rebuilt = changed ? c_.make(n->op(), ops, n->attr(), n->shape()) : n;
      if (multi_use_.count(n)) shared_.insert(rebuilt);
      memo_[n] = rewrite(rebuilt);
      if (multi_use_.count(n)) shared_.insert(memo_[n]);
    }
    return memo_.at(root);
  }

  const Node* rewrite(const Node* n) {
    for (int steps = 0; steps < 1000; ++steps) {
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
      if (o_.on_rule) o_.on_rule(*fired, n, next);
      if (o_.trace)
        *o_.trace << "rule " << fired->name << ": " << print_text(n) << "  ->  " << print_text(next)
                  << "\n";
      memo_[n] = next;
      n = simplified(next);  // new nodes the rule built are simplified too
    }
    return n;
  }

  // Marks the nodes of the DAG under `roots` that have more than one user.
  void count_users(const std::vector<const Node*>& roots) {
    std::unordered_map<const Node*, int> users;
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
