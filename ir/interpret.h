// The reference interpreter: evaluates any IR in f64, straightforwardly.
// It is the oracle the simplifier, the differentiator and the code generator
// are tested against, and what `nabla eval` computes with.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "ir/node.h"

namespace nabla::ir {

struct Tensor {
  Shape shape;
  std::vector<double> data;  // C order

  static Tensor scalar(double v) { return {Shape{}, {v}}; }
  static Tensor zeros(const Shape& s) {
    return {s, std::vector<double>(static_cast<size_t>(s.numel()), 0.0)};
  }
  double item() const { return data.at(0); }
};

// One element of an elementwise op: `a` (and `b`, `c`) are the operands' values.
double scalar_op(Op op, double a, double b = 0, double c = 0);

// The value of each Var (Const vars may return their node value).
using VarValues = std::function<Tensor(const Node* var)>;

// Evaluates `roots`, computing each reachable node once.
std::vector<Tensor> interpret(std::span<const Node* const> roots, const VarValues& values);

}  // namespace nabla::ir
