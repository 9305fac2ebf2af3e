// Symbolic differentiation as a program transformation on the DAG.
//
// Reverse mode walks the nodes reachable from a scalar root in descending id
// (reverse topological) order, summing each node's adjoint from its users and
// pushing it to its operands with the op's derivative rule (differentiate.cpp,
// one rule per op, the math as the comment). The result is ordinary IR that
// shares the forward nodes it reuses (d tanh = 1 - tanh^2 uses the tanh node
// itself), so derivative size stays linear in the function's size, and second
// derivatives are gradient(gradient(f)). Kinks follow PyTorch: relu'(0) = 0,
// leaky_relu'(0) = gamma, abs'(0) = 0, max/min split the gradient on a tie,
// a reduction max sends it to the first maximal element.
#pragma once

#include <span>
#include <unordered_map>
#include <vector>

#include "ir/node.h"

namespace nabla::ir {

// d root / d wrt[i] for a scalar `root`; each result has the shape of wrt[i]
// (a zero when root does not depend on it).
std::vector<const Node*> gradient(Context& ctx, const Node* root,
                                  std::span<const Node* const> wrt);

// Forward mode: the directional derivative (JVP) of `root` when each var in
// `tangents` moves along its tangent (a node of the var's shape); vars not in
// the map stay fixed. Walks the nodes in ascending id order, pushing tangents
// with the same partials the reverse mode uses. The result has root's shape.
const Node* jvp(Context& ctx, const Node* root,
                const std::unordered_map<const Node*, const Node*>& tangents);

// Hessian-vector product of a scalar `root`: for directions v (one per wrt,
// same shapes), H v = d/dwrt of sum_i sum(grad_i * v_i) (reverse over reverse).
std::vector<const Node*> hvp(Context& ctx, const Node* root, std::span<const Node* const> wrt,
                             std::span<const Node* const> directions);

}  // namespace nabla::ir
