// The simplifier: named rewrite rules applied to a fixpoint.
//
// Rules are grouped by the op at the root of what they rewrite (rules.cpp
// lists them). simplify() rebuilds the DAG bottom-up (ascending id order, no
// recursion over depth), applies the rules at each rebuilt node until none
// fires, and repeats over the whole DAG until nothing changes.
//
// Termination: every rule either shrinks the node count of what it rewrites,
// or (the two collect rules) rewrites a sum or product into its canonical
// form, which they map to itself; a pass cap guards the fixpoint besides.
#pragma once

#include <functional>
#include <iosfwd>
#include <span>
#include <unordered_set>
#include <vector>

#include "ir/node.h"

namespace nabla::ir {

struct Rule;

struct SimplifyOptions {
  std::ostream* trace = nullptr;  // --trace-rules: one line per rule that fires
  // Labels declared `distribution` (each sums to 1): sum(y) -> 1.
  std::unordered_set<const Node*> distributions;
  int max_passes = 20;
  // Called with each rule that fires, the node before and after (tests use
  // it to check every rewrite numerically).
  std::function<void(const Rule& rule, const Node* before, const Node* after)> on_rule;
};

// What a rule sees besides the node it rewrites.
struct RuleEnv {
  const SimplifyOptions& options;
  // Nodes with more than one user in the DAG being simplified. Rules that
  // flatten sums and products stop at them, so shared subexpressions stay
  // shared (this is what keeps derivatives linear in size).
  const std::unordered_set<const Node*>& shared;
};

struct Rule {
  const char* name;
  Op root;
  // The rewritten node, or nullptr when the rule does not apply to `n`.
  std::function<const Node*(Context& ctx, const Node* n, const RuleEnv& env)> apply;
};

// Every rule, grouped by root op.
const std::vector<Rule>& simplifier_rules();

std::vector<const Node*> simplify(Context& ctx, std::vector<const Node*> roots,
                                  const SimplifyOptions& options = {});
const Node* simplify(Context& ctx, const Node* root, const SimplifyOptions& options = {});

}  // namespace nabla::ir
