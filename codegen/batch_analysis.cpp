// Batching's analysis: batched nodes, vertical fusion of elementwise chains,
// and the walk from the roots that decides what is stored and which batch
// means are computed.
#include "codegen/batch_analysis.h"

#include <algorithm>

namespace nabla::codegen {
namespace {

using ir::Node;
using ir::Op;

// Longest chain of elementwise operations fused into one expression tree;
// a longer chain is stored every so many steps (bounds the emitter's
// recursion and the size of one loop body).
constexpr int kMaxFusedDepth = 24;

bool reads_once(Op op) {
  return ir::is_elementwise(op) || op == Op::Sum || op == Op::Mean || op == Op::MaxReduce ||
         op == Op::MinReduce || op == Op::SumTo;
}

}  // namespace

BatchAnalysis::BatchAnalysis(const std::vector<const Node*>& roots, bool gradient) {
  analyze(roots);
  mark(roots, gradient);
}

void BatchAnalysis::analyze(const std::vector<const Node*>& roots) {
  order_ = ir::reachable(roots);
  for (const Node* n : order_) {
    bool b = n->op() == Op::Var &&
             (n->var_kind() == ir::VarKind::Input || n->var_kind() == ir::VarKind::Label);
    int depth = 0;
    for (const Node* o : n->operands()) {
      b = b || batched_.at(o);
      ++users_[o];
      user_[o] = n;
      if (fused_depth_.count(o)) depth = std::max(depth, fused_depth_[o]);
    }
    batched_[n] = b;
    if (ir::is_elementwise(n->op())) fused_depth_[n] = depth + 1;
  }
  for (const Node* r : roots) users_[r] += 2;  // roots are results: never fused away
  for (const Node* n : order_) {
    if (!ir::is_elementwise(n->op()) || users_[n] != 1) continue;
    const Node* u = user_.at(n);
    if (!reads_once(u->op()) || batched_.at(u) != batched_.at(n)) continue;
    if (ir::is_elementwise(u->op()) && u->shape() != n->shape()) continue;
    if (fused_depth_.at(n) % kMaxFusedDepth == 0) continue;
    fusable_.insert(n);
  }
}

// Which values must be stored and which batch means computed: a walk from
// the roots (an explicit stack: graphs may be deep).
void BatchAnalysis::mark(const std::vector<const Node*>& roots, bool gradient) {
  std::vector<std::pair<const Node*, Need>> stack;
  for (size_t i = 0; i < roots.size(); ++i)
    stack.emplace_back(roots[i], gradient ? Need::Mean : Need::Load);
  std::unordered_set<uint64_t> seen;
  while (!stack.empty()) {
    auto [n, need] = stack.back();
    stack.pop_back();
    if (is_constant(n)) continue;
    if (!seen.insert(uint64_t{n->id()} * 3 + static_cast<uint64_t>(need)).second) continue;
    auto push = [&](const Node* o, Need k) { stack.emplace_back(o, k); };
    if (need == Need::Mean) {
      if (!batched_.at(n)) {
        push(n, Need::Load);
        continue;
      }
      mean_.insert(n);
      for (auto [o, k] : mean_operands(n)) push(o, k);
      continue;
    }
    if (need == Need::Tree && fusable_.count(n)) {
      for (const Node* o : n->operands()) push(o, Need::Tree);
      continue;
    }
    // Stored.
    store_.insert(n);
    const Op op = n->op();
    if (op == Op::Var) continue;
    const bool trees = reads_once(op);
    for (const Node* o : n->operands()) push(o, trees ? Need::Tree : Need::Load);
  }
}

// How the batch mean of `n` (batched) is computed: what it needs of its
// operands. An empty list with n itself as Tree/Load is the fallback.
std::vector<std::pair<const Node*, BatchAnalysis::Need>> BatchAnalysis::mean_operands(const Node* n) const {
  auto kind_of = [&](const Node* o) { return batched_.at(o) ? Need::Mean : Need::Load; };
  switch (mean_form(n)) {
    case MeanForm::Linear: {
      std::vector<std::pair<const Node*, Need>> r;
      const Node* fused = fused_outer(n);
      for (const Node* o : n->operands()) {
        if (o == fused) {
          r.emplace_back(o->operand(0), Need::Load);
          r.emplace_back(o->operand(1), Need::Load);
        } else if (fused && inline_term(o, n)) {
          for (const Node* x : o->operands()) r.emplace_back(x, Need::Tree);
        } else {
          r.emplace_back(o, kind_of(o));
        }
      }
      return r;
    }
    case MeanForm::OuterGemm:
      return {{n->operand(0), Need::Load}, {n->operand(1), Need::Load}};
    case MeanForm::Tree: {
      std::vector<std::pair<const Node*, Need>> r;
      for (const Node* o : n->operands()) r.emplace_back(o, Need::Tree);
      return r;
    }
    case MeanForm::Stored:
      break;
  }
  return {{n, Need::Load}};
}

bool BatchAnalysis::inline_term(const Node* o, const Node* sum) const {
  return !batched_.at(o) && ir::is_elementwise(o->op()) && users_.at(o) == 1 && o->shape() == sum->shape();
}

// An Add/Sub whose batch mean is one GEMM over the batch plus the other
// operand's mean: the outer product operand (used only here, same shape),
// whose GEMM then accumulates onto the other term (e.g. outer(delta, x) +
// lambda * W: C = lambda W, then C += Delta^T X / n).
const Node* BatchAnalysis::fused_outer(const Node* n) const {
  if (n->op() != Op::Add && n->op() != Op::Sub) return nullptr;
  for (const Node* o : n->operands())
    if (o->op() == Op::Outer && o->shape() == n->shape() && users_.at(o) == 1 &&
        batched_.at(o->operand(0)) && batched_.at(o->operand(1)) && n->operand(0) != n->operand(1))
      return o;
  return nullptr;
}

BatchAnalysis::MeanForm BatchAnalysis::mean_form(const Node* n) const {
  const Op op = n->op();
  auto b = [&](size_t i) { return batched_.at(n->operand(i)); };
  switch (op) {
    case Op::Add: case Op::Sub: case Op::Neg: case Op::Transpose:
      return MeanForm::Linear;
    case Op::Mul:
      if (b(0) != b(1)) return MeanForm::Linear;
      break;
    case Op::Div:
      if (!b(1)) return MeanForm::Linear;
      break;
    case Op::Outer:
      return b(0) && b(1) ? MeanForm::OuterGemm : MeanForm::Linear;
    // The others are decided below.
    case Op::Constant: case Op::Var:
    case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
    case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
    case Op::Pow: case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
    case Op::Where: case Op::MatMul: case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce:
    case Op::LogSumExp: case Op::Softmax: case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast: case Op::SumTo:
    case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
      break;
  }
  if (ir::is_elementwise(op) && users_.at(n) <= 3) return MeanForm::Tree;  // a root used once
  return MeanForm::Stored;
}

}  // namespace nabla::codegen
