// Rewrite patterns over the IR in a small s-expression notation, so that a
// fixed-shape rule is one table row (rules.cpp): its pattern and its
// replacement, read as the algebra is written.
//
//   (log (exp u))              an op, as ops.def spells it, with its operands;
//                              `-` is neg with one operand, sub with two
//   u, x, z                    a pattern variable: any node; a variable used
//                              twice matches the same node twice
//   1, 0.5                     a number: a constant of that value
//   #c                         any constant, bound to c
//   (softmax:a z)              `:a` binds the op's attribute (its axis, its
//                              group size); in a replacement it gives it
//
// Patterns are parsed once, when the rule table is built; a malformed one is
// an internal error (NABLA_ASSERT), never a user's.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ir/node.h"

namespace nabla::ir {

struct Pattern {
  enum class Kind : uint8_t { Apply, Variable, Number, AnyConstant };
  Kind kind = Kind::Variable;
  Op op = Op::Constant;   // Apply
  std::string name;       // Variable, AnyConstant: the binding; Apply: the attribute binding ("" for none)
  double value = 0;       // Number
  std::vector<Pattern> operands;
};

struct Bindings {
  std::map<std::string, const Node*> nodes;
  std::map<std::string, int64_t> attrs;
};

Pattern parse_pattern(std::string_view text);

// Whether `n` matches `p`, extending `b` (left partly filled when not).
bool match(const Pattern& p, const Node* n, Bindings& b);

// The replacement `p` with the bound nodes and attributes.
const Node* instantiate(Context& ctx, const Pattern& p, const Bindings& b);

// Nodes of `p` as a tree: the cost a rule's replacement must lower.
int tree_size(const Pattern& p);

// The pattern as written (normalized spacing), for messages and docs.
std::string pattern_text(const Pattern& p);

}  // namespace nabla::ir
