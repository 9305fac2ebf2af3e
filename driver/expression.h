// Expression mode (docs/language.md): one scalar expression over free
// variables, simplified, differentiated to first or second order, and
// evaluated at a point in f64 (`nabla eval`, `simplify`, `diff -e`).
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "driver/load.h"
#include "frontend/lower.h"
#include "ir/node.h"

namespace nabla::driver {

// An expression lowered into a context, with a var node per name.
struct Expression {
  LoadedExpr loaded;
  LoweredExpr lowered;
  std::map<std::string, const ir::Node*> vars;
};

// Parses, checks and lowers `text` into `ctx`; each name of `extra` the
// expression does not use becomes a variable too (its derivative is 0).
// Throws Error with the diagnostics when the text does not check.
Expression expression(const std::string& text, ir::Context& ctx, const std::vector<std::string>& extra = {});

// A variable of `roots` that `point` gives no value, or "".
std::string missing_variable(std::span<const ir::Node* const> roots, const std::map<std::string, double>& point);

// The values of `roots` at `point` (f64; every variable given).
std::vector<double> evaluate(std::span<const ir::Node* const> roots, const std::map<std::string, double>& point);

// Runs `work` on a thread whose stack holds the deepest nesting the parser
// allows (for callers of this file on their own, default-sized threads).
void with_large_stack(const std::function<void()>& work);

// The text of `n` as nabla prints it (re-parseable).
std::string text(const ir::Node* n);

// `nabla simplify`: the simplified expression.
const ir::Node* simplified(ir::Context& ctx, const Expression& e, std::ostream* trace = nullptr);

// One derivative of an expression: d/dx (y empty) or d2/dx dy.
struct Derivative {
  std::string x, y;
  const ir::Node* value = nullptr;
};

// First partials along each of `wrt` (order 1); the second derivative along
// wrt[0] (order 2); or, with `hessian`, the second partials of every pair
// (row by row). `simplify` false: as differentiated.
std::vector<Derivative> derivatives(ir::Context& ctx, const Expression& e, const std::vector<std::string>& wrt,
                                    int order, bool hessian, bool simplify, std::ostream* trace = nullptr);

}  // namespace nabla::driver
