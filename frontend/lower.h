// Lowering: checked model (model.h) -> tensor IR (ir/node.h).
//
// Every value becomes a node of one Context; lets are not nodes of their own
// (the IR shares structure by hash-consing) but their names are kept beside
// the graph for printers. Builtins that are known functions (sigmoid,
// softplus, softmax, log_softmax, logsumexp, ...) stay nodes; losses and norms
// lower to their definitions (cross_entropy(y, p) = -sum(y * log(p)), ...),
// which the simplifier then puts in stable form. The graph is per sample.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "frontend/model.h"
#include "ir/node.h"

namespace nabla {

struct LoweredModel {
  std::vector<const ir::Node*> inputs, labels, params, consts;  // Var nodes, by declaration
  std::vector<bool> label_distribution;                         // per label: declared distribution
  std::vector<std::pair<std::string, const ir::Node*>> outputs;
  std::vector<std::pair<std::string, const ir::Node*>> lets;    // for naming in printers
  const ir::Node* loss = nullptr;
};

LoweredModel lower_model(const CheckedModel& model, ir::Context& ctx);

struct LoweredExpr {
  std::vector<const ir::Node*> vars;  // scalar Input vars, in CheckedExpr::vars order
  const ir::Node* root = nullptr;
};

// `vars` (optional) gives the node to use for a free name; other free names
// become scalar Input vars numbered by first use.
LoweredExpr lower_expression(const CheckedExpr& expr, ir::Context& ctx,
                             const std::map<std::string, const ir::Node*>* vars = nullptr);

}  // namespace nabla
