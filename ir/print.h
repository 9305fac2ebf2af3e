// Printing the IR in the language's own syntax.
//
// Nodes used more than once (and not trivially cheap) are printed once, as
// `NAME = EXPR` binding lines before the expressions that use them, so the
// output is a DAG, not a tree, and parses back to the same DAG. Parentheses
// are the fewest the language's precedence needs.
#pragma once

#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ir/node.h"

namespace nabla::ir {

struct Printed {
  std::vector<std::pair<std::string, std::string>> bindings;  // in dependency order
  std::vector<std::string> roots;                             // one per root
};

struct PrintOptions {
  // Names to give particular nodes when they are bound (e.g. a model's lets).
  std::unordered_map<const Node*, std::string> names;
  // Bind every node that has a name in `names`, even if used once.
  bool bind_named = false;
  // Prefix of generated binding names (t1, t2, ...).
  std::string prefix = "t";
  // Text: the language's syntax (parses back). Latex: for papers and notes
  // (\sigma, \odot, W^\top, \frac{a}{b}); names become symbols (delta2 ->
  // \delta_{2}, yhat -> \hat{y}).
  enum class Syntax { Text, Latex } syntax = Syntax::Text;
};

Printed print_text(std::span<const Node* const> roots, const PrintOptions& options = {});

// One expression with its bindings, as lines: "t1 = ...\n...\nEXPR".
std::string print_text(const Node* root);

// A name as LaTeX: greek letters by name, trailing digits as a subscript,
// a "hat" suffix as an accent (yhat -> \hat{y}).
std::string latex_name(const std::string& name);

// The DAG under `roots` in Graphviz DOT, each root labelled with its name.
std::string print_dot(std::span<const Node* const> roots, std::span<const std::string> names);

// The DAG under `roots` as JSON: every node (id, op, shape, operands, and a
// value or a name), and each root with its name and its text form.
std::string print_json(std::span<const Node* const> roots, std::span<const std::string> names);

// A number as the printer writes it: the shortest text that reads back as the
// same double.
std::string format_number(double v);

}  // namespace nabla::ir
