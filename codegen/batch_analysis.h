// What batching (batching.h) decides before it builds a step, for every node
// reachable from a kernel's roots: whether it is batched (depends on an input
// or label), whether it is fused into its user's expression tree instead of
// stored, and which batch means are computed and how (pushed down through
// linear operations, a GEMM over the batch, or a per-sample loop).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ir/node.h"

namespace nabla::codegen {

// A constant, never stored by the walk (written to a buffer on first use).
inline bool is_constant(const ir::Node* n) {
  return n->op() == ir::Op::Constant || (n->op() == ir::Op::Var && n->var_kind() == ir::VarKind::Const);
}

class BatchAnalysis {
public:
  // `gradient`: the roots' batch means are wanted (the loss and gradients),
  // not their values per sample.
  BatchAnalysis(const std::vector<const ir::Node*>& roots, bool gradient);

  // How the batch mean of a batched node is computed.
  enum class MeanForm : uint8_t { Linear, OuterGemm, Tree, Stored };

  const std::vector<const ir::Node*>& order() const { return order_; }  // operands first
  bool batched(const ir::Node* n) const { return batched_.at(n); }
  // Evaluated inside its single user's expression tree, not stored.
  bool fusable(const ir::Node* n) const { return fusable_.count(n) != 0; }
  bool stored(const ir::Node* n) const { return store_.count(n) != 0; }
  bool averaged(const ir::Node* n) const { return mean_.count(n) != 0; }  // its batch mean is computed
  MeanForm mean_form(const ir::Node* n) const;
  // The outer product operand of an Add/Sub whose mean is a GEMM accumulating
  // onto the other term's; nullptr otherwise.
  const ir::Node* fused_outer(const ir::Node* n) const;
  // The other term of a fused GEMM (fused_outer), computed inside its
  // initializing loop.
  bool inline_term(const ir::Node* o, const ir::Node* sum) const;

private:
  enum class Need : uint8_t { Tree, Load, Mean };

  void analyze(const std::vector<const ir::Node*>& roots);
  void mark(const std::vector<const ir::Node*>& roots, bool gradient);
  std::vector<std::pair<const ir::Node*, Need>> mean_operands(const ir::Node* n) const;

  std::vector<const ir::Node*> order_;
  std::unordered_map<const ir::Node*, bool> batched_;
  std::unordered_map<const ir::Node*, int> users_;
  std::unordered_map<const ir::Node*, const ir::Node*> user_;
  std::unordered_map<const ir::Node*, int> fused_depth_;
  std::unordered_set<const ir::Node*> fusable_, store_, mean_;
};

}  // namespace nabla::codegen
