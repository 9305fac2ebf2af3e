// Evaluation of scalar expressions in f64: consts, init arguments, axes, and
// expression mode. Every operand is a scalar, so reductions and losses take
// their obvious scalar meaning (sum(x) = x, mse(u, v) = (u - v)^2, ...).
#pragma once

#include <functional>

#include "frontend/model.h"

namespace nabla {

// `ref_value` gives the value of each Ref node (a const, or an expression-mode
// variable). Precondition: every node of `e` has a scalar shape.
double eval_scalar(const TExpr& e, const std::function<double(const TExpr&)>& ref_value);

}  // namespace nabla
