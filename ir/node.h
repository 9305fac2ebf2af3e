// The tensor IR: an immutable, hash-consed DAG of tensor operations.
//
// A Node is an operation (ops.def) on operand nodes with a static shape.
// Nodes are created only by a Context, which interns them: structurally equal
// nodes are one node, so equality is pointer identity and common
// subexpressions are shared by construction. Nodes live in the Context's arena
// and are freed with it, all at once (no recursive destruction). Node ids grow
// in creation order and operands are created first, so ascending id order is a
// topological order: passes walk the arena instead of recursing.
//
// Semantics: values are tensors of the Context's element type (f32 or f64);
// elementwise operations follow NumPy broadcasting; a Compare gives 1 where it
// holds and 0 elsewhere. The batch is not in the IR: a model's graph is per
// sample (the code generator batches it).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/shape.h"

namespace nabla::ir {

enum class Op : uint8_t {
#define NABLA_OP(name, spelling, arity, kind) name,
#include "ir/ops.def"
#undef NABLA_OP
};
enum class OpKind : uint8_t { Leaf, Unary, Binary, Compare, Other };

const char* op_name(Op op);      // "Add"
const char* op_spelling(Op op);  // "+"
int op_arity(Op op);
OpKind op_kind(Op op);
// Elementwise: Unary, Binary, Compare, and Where.
bool is_elementwise(Op op);
bool is_commutative(Op op);

enum class DType : uint8_t { F32, F64 };
const char* dtype_name(DType t);

enum class VarKind : uint8_t { Input, Label, Param, Const };

// Attribute value for "every axis" (a full reduction, a NumPy broadcast).
constexpr int64_t kAllAxes = std::numeric_limits<int64_t>::min();

class Node {
public:
  Op op() const { return op_; }
  const Shape& shape() const { return shape_; }
  uint32_t id() const { return id_; }
  // Longest path to a leaf (leaves are 0).
  uint32_t depth() const { return depth_; }
  size_t arity() const { return operands_.size(); }
  const Node* operand(size_t i) const { return operands_[i]; }
  std::span<const Node* const> operands() const { return operands_; }
  // Constant: its value. Var of kind Const: its current value.
  double value() const { return value_; }
  // Reductions, softmax, log_softmax, axis broadcasts: the axis or kAllAxes;
  // maxout ops and repeat: the group size k.
  int64_t attr() const { return attr_; }
  // Var only.
  VarKind var_kind() const { return var_kind_; }
  int var_index() const { return var_index_; }
  const std::string& name() const { return name_; }

  bool is_constant() const { return op_ == Op::Constant; }
  bool is_constant(double v) const { return op_ == Op::Constant && value_ == v; }
  size_t hash() const { return hash_; }

private:
  friend class Context;
  Op op_ = Op::Constant;
  VarKind var_kind_ = VarKind::Input;
  uint32_t id_ = 0;
  uint32_t depth_ = 0;
  int var_index_ = -1;
  int64_t attr_ = kAllAxes;
  double value_ = 0;
  Shape shape_;
  std::vector<const Node*> operands_;
  std::string name_;
  size_t hash_ = 0;
};

// Owns and interns nodes. Construction only canonicalizes: a constant operand
// of a commutative op goes first in products and last elsewhere, and
// elementwise operations on scalar constants are folded. Every other rewrite,
// including the ordering of sums and products, is a named simplifier rule
// (simplify.h).
class Context {
public:
  explicit Context(DType dtype = DType::F64) : dtype_(dtype) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  DType dtype() const { return dtype_; }
  size_t size() const { return arena_.size(); }
  const Node* node(uint32_t id) const { return &arena_[id]; }

  const Node* constant(double v);
  const Node* var(VarKind kind, int index, const std::string& name, const Shape& shape,
                  double value = 0);
  // The general constructor. `attr` as Node::attr; `shape` is used by
  // Broadcast and SumTo (their result shape) and inferred for every other op.
  // Operands must have shapes the op accepts (an internal error otherwise).
  const Node* make(Op op, std::vector<const Node*> operands, int64_t attr = kAllAxes,
                   const Shape& shape = {});

  // Shorthands.
  const Node* add(const Node* a, const Node* b) { return make(Op::Add, {a, b}); }
  const Node* sub(const Node* a, const Node* b) { return make(Op::Sub, {a, b}); }
  const Node* mul(const Node* a, const Node* b) { return make(Op::Mul, {a, b}); }
  const Node* div(const Node* a, const Node* b) { return make(Op::Div, {a, b}); }
  const Node* pow(const Node* a, const Node* b) { return make(Op::Pow, {a, b}); }
  const Node* neg(const Node* a) { return make(Op::Neg, {a}); }
  const Node* unary(Op op, const Node* a) { return make(op, {a}); }
  const Node* binary(Op op, const Node* a, const Node* b) { return make(op, {a, b}); }
  // `a` broadcast to `shape` (NumPy alignment); `a` itself when it has it.
  const Node* broadcast_to(const Node* a, const Shape& shape);
  // `a` summed down to `shape` (the adjoint of a broadcast); `a` when equal.
  const Node* sum_to(const Node* a, const Shape& shape);

private:
  struct Hash {
    size_t operator()(const Node* n) const { return n->hash(); }
  };
  struct Equal {
    bool operator()(const Node* a, const Node* b) const;
  };
  const Node* intern(Node&& n);
  Shape infer_shape(Op op, const std::vector<const Node*>& operands, int64_t attr) const;

  DType dtype_;
  std::deque<Node> arena_;
  std::unordered_set<const Node*, Hash, Equal> table_;
};

// The nodes reachable from `roots`, in ascending id (topological) order.
std::vector<const Node*> reachable(std::span<const Node* const> roots);

}  // namespace nabla::ir
