// The gradient program of a model (what `nabla diff` prints and the kernels
// compute): the simplified loss, the gradient of each param, and the names a
// textbook gives backpropagation's intermediates.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "frontend/lower.h"
#include "ir/node.h"
#include "ir/simplify.h"

namespace nabla::driver {

struct GradientProgram {
  const ir::Node* loss = nullptr;            // simplified
  std::vector<const ir::Node*> gradients;    // one per wrt param, simplified
  // Textbook names: the model's lets, pre-activations z1, z2, ... (in forward
  // order) and their error terms delta1, delta2, ... (the loss's gradient
  // with respect to each pre-activation).
  std::unordered_map<const ir::Node*, std::string> names;
};

// `trace`: where --trace-rules writes each rewrite (nullptr: nowhere).
GradientProgram gradient_program(ir::Context& ctx, const LoweredModel& model,
                                 const std::vector<const ir::Node*>& wrt, bool simplify,
                                 std::ostream* trace = nullptr);

// Hessian-vector products H v of the loss for the params `wrt`, the
// direction of each param a new input named v_PARAM of its shape.
std::vector<const ir::Node*> hessian_vector_products(ir::Context& ctx, const LoweredModel& model,
                                                     const std::vector<const ir::Node*>& wrt, bool simplify);

// The params named in `names` (in that order); throws Error naming the
// first unknown one and listing the model's params. Empty: every param.
std::vector<const ir::Node*> params_named(const LoweredModel& model, const std::vector<std::string>& names,
                                          const std::string& file);

// The gradient program of `wrt` as `nabla diff` prints it, in `format`
// (text, latex, dot, json: driver/render.h).
std::string gradient_text(ir::Context& ctx, const LoweredModel& model, const std::vector<const ir::Node*>& wrt,
                          bool simplify, const std::string& format, std::ostream* trace = nullptr);
// The same for the Hessian-vector products (`nabla diff --hvp`).
std::string hvp_text(ir::Context& ctx, const LoweredModel& model, const std::vector<const ir::Node*>& wrt,
                     bool simplify, const std::string& format);
// The model's graph in Graphviz DOT: outputs and loss, or (`grad`) the
// gradient program; throws Error for `grad` without a loss.
std::string graph_text(ir::Context& ctx, const LoweredModel& model, bool grad, const std::string& file);

// The simplifier's options for `model` (labels declared distributions).
ir::SimplifyOptions simplify_options(const LoweredModel& model);

}  // namespace nabla::driver
