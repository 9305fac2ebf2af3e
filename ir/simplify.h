// The simplifier: named rewrite rules applied to a fixpoint.
//
// Rules are grouped by the op at the root of what they rewrite (rules.cpp
// lists them). simplify() rebuilds the DAG bottom-up (ascending id order, no
// recursion over depth), applies the rules at each rebuilt node until none
// fires, and repeats over the whole DAG until nothing changes.
//
// Termination: every rule lowers a measure (Rule::lowers): most shrink the
// node count of what they rewrite; the collect rules rewrite a sum or
// product into its canonical form, which they map to itself. The pass and
// step limits guard the fixpoint besides: reaching one is a SimplifyError.
#pragma once

#include <functional>
#include <iosfwd>
#include <span>
#include <stdexcept>
#include <string>
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
  const char* name = "";  // what --trace-rules prints; one name per rule
  Op root = Op::Constant;
  // The rewritten node, or nullptr when the rule does not apply to `n`.
  std::function<const Node*(Context& ctx, const Node* n, const RuleEnv& env)> apply;
  // What every rewrite lowers, so that rewriting ends: "nodes" (the
  // replacement has fewer nodes as a tree than what it replaces), or the
  // exception and its measure ("stability", "canonical form", ...).
  const char* lowers = "nodes";
  // A table row's pattern and replacement (ir/pattern.h); empty for a rule
  // written as code (one that needs a predicate or a computation).
  std::string pattern, replacement;
};

// The simplifier did not reach a fixpoint within its pass limit (a rule set
// that cycles: a bug, reported rather than returning a half-simplified result).
class SimplifyError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Every rule, grouped by root op.
const std::vector<Rule>& simplifier_rules();

std::vector<const Node*> simplify(Context& ctx, std::vector<const Node*> roots,
                                  const SimplifyOptions& options = {});
const Node* simplify(Context& ctx, const Node* root, const SimplifyOptions& options = {});

}  // namespace nabla::ir
