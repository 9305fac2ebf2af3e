// The gradient program of a model (nabla diff MODEL.nn).
#pragma once

#include <iosfwd>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli/commands.h"
#include "frontend/lower.h"
#include "ir/node.h"

namespace nabla::cli {

struct GradientProgram {
  const ir::Node* loss = nullptr;            // simplified
  std::vector<const ir::Node*> gradients;    // one per wrt param, simplified
  // Textbook names: the model's lets, pre-activations z1, z2, ... (in forward
  // order) and their error terms delta1, delta2, ... (the loss's gradient
  // with respect to each pre-activation).
  std::unordered_map<const ir::Node*, std::string> names;
};

GradientProgram gradient_program(ir::Context& ctx, const LoweredModel& model,
                                 const std::vector<const ir::Node*>& wrt, bool simplify,
                                 std::ostream* trace = nullptr);

int run_model_diff(const std::string& path, const std::string& wrt, bool no_simplify,
                   bool trace_rules, const std::string& format, bool hvp,
                   const GlobalOptions& global);

}  // namespace nabla::cli
