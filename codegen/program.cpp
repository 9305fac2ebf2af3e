#include "codegen/program.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "ir/assert.h"

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

// The view of `a` (over shape `from`) as seen over the larger shape `to`
// under NumPy broadcasting: leading new axes and size-1 axes get stride 0.
Access broadcast_access(const Access& a, const Shape& from, const Shape& to) {
  Access r{a.buf, a.batch_stride, std::vector<int64_t>(static_cast<size_t>(to.rank()), 0)};
  const int off = to.rank() - from.rank();
  for (int d = 0; d < from.rank(); ++d)
    if (from[d] == to[d + off]) r.strides[static_cast<size_t>(d + off)] = a.strides[static_cast<size_t>(d)];
  return r;
}

class Builder {
public:
  Builder(const KernelSpec& spec, KernelKind kind, ir::DType dtype, bool in_place = true)
      : spec_(spec), gradient_(kind != KernelKind::Forward), sgd_(kind == KernelKind::SgdStep), in_place_(in_place) {
    p_.dtype = dtype;
  }

  Program run() {
    std::vector<const Node*> roots;
    if (gradient_) {
      NABLA_ASSERT(spec_.loss, "a gradient kernel needs a loss");
      roots.push_back(spec_.loss);
      roots.insert(roots.end(), spec_.gradients.begin(), spec_.gradients.end());
    } else {
      for (const auto& o : spec_.outputs) roots.push_back(o.second);
    }
    analyze(roots);
    declare_arguments();
    mark(roots);
    // Stored values in topological order, then the batch means.
    for (const Node* n : order_)
      if (store_.count(n)) stored(n);
    for (const Node* n : order_)
      if (mean_.count(n)) mean_of(n);
    bind_outputs(roots);
    fuse_epilogues();
    plan_buffers();
    return std::move(p_);
  }

private:
  enum class Need : uint8_t { Tree, Load, Mean };

  // --- analysis ---------------------------------------------------------

  void analyze(const std::vector<const Node*>& roots) {
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

  static bool is_constant(const Node* n) {
    return n->op() == Op::Constant || (n->op() == Op::Var && n->var_kind() == ir::VarKind::Const);
  }

  // Which values must be stored and which batch means computed: a walk from
  // the roots (an explicit stack: graphs may be deep).
  void mark(const std::vector<const Node*>& roots) {
    std::vector<std::pair<const Node*, Need>> stack;
    for (size_t i = 0; i < roots.size(); ++i)
      stack.emplace_back(roots[i], gradient_ ? Need::Mean : Need::Load);
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
  std::vector<std::pair<const Node*, Need>> mean_operands(const Node* n) const {
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

  enum class MeanForm : uint8_t { Linear, OuterGemm, Tree, Stored };

  // An Add/Sub whose batch mean is one GEMM over the batch plus the other
  // operand's mean: the outer product operand (used only here, same shape),
  // whose GEMM then accumulates onto the other term (e.g. outer(delta, x) +
  // lambda * W: C = lambda W, then C += Delta^T X / n). nullptr otherwise.
  // The other term of a fused GEMM, computed inside its initializing loop.
  bool inline_term(const Node* o, const Node* sum) const {
    return !batched_.at(o) && ir::is_elementwise(o->op()) && users_.at(o) == 1 && o->shape() == sum->shape();
  }

  const Node* fused_outer(const Node* n) const {
    if (n->op() != Op::Add && n->op() != Op::Sub) return nullptr;
    for (const Node* o : n->operands())
      if (o->op() == Op::Outer && o->shape() == n->shape() && users_.at(o) == 1 &&
          batched_.at(o->operand(0)) && batched_.at(o->operand(1)) && n->operand(0) != n->operand(1))
        return o;
    return nullptr;
  }

  MeanForm mean_form(const Node* n) const {
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

  // --- buffers ----------------------------------------------------------

  int add_buffer(BufKind kind, int index, bool batched, const Shape& shape, std::string name) {
    Buffer b;
    b.kind = kind;
    b.index = index;
    b.batched = batched;
    b.shape = shape;
    b.name = name.empty() ? "t" + std::to_string(p_.buffers.size()) : std::move(name);
    p_.buffers.push_back(std::move(b));
    return static_cast<int>(p_.buffers.size()) - 1;
  }

  Access contiguous(int buf) const {
    const Buffer& b = p_.buffers[static_cast<size_t>(buf)];
    return {buf, b.batched ? b.shape.numel() : 0, row_major(b.shape)};
  }

  bool is_contiguous(const Access& a, const Shape& shape) const {
    const Buffer& b = p_.buffers[static_cast<size_t>(a.buf)];
    if (b.shape.numel() != shape.numel()) return false;
    if (a.batch_stride != (b.batched ? b.shape.numel() : 0)) return false;
    const auto rm = row_major(shape);
    for (int d = 0; d < shape.rank(); ++d)
      if (shape[d] != 1 && a.strides[static_cast<size_t>(d)] != rm[static_cast<size_t>(d)]) return false;
    return true;
  }

  void declare_arguments() {
    auto declare = [&](const std::vector<const Node*>& vars, BufKind kind, bool batched) {
      for (size_t i = 0; i < vars.size(); ++i) {
        const int buf = add_buffer(kind, static_cast<int>(i), batched, vars[i]->shape(), vars[i]->name());
        stored_[vars[i]] = contiguous(buf);
      }
    };
    declare(spec_.inputs, BufKind::Input, true);
    if (gradient_) declare(spec_.labels, BufKind::Label, true);
    declare(spec_.params, BufKind::Param, false);
    if (sgd_) rate_ = add_buffer(BufKind::Rate, 0, false, Shape{}, "rate");
  }

  // --- expressions --------------------------------------------------------

  // Node `n` evaluated at an index of the space `to` (n's shape broadcasts
  // to it), as a tree in `step`.
  int expr_at(Step& step, const Node* n, const Shape& to) {
    Expr e;
    if (is_constant(n)) {
      e.kind = Expr::Kind::Const;
      e.value = n->value();
    } else if (auto it = stored_.find(n); it != stored_.end()) {
      e.kind = Expr::Kind::Load;
      e.access = broadcast_access(it->second, n->shape(), to);
    } else {
      NABLA_ASSERT(fusable_.count(n) && n->shape() == to, "an unstored value outside a fused tree");
      return apply(step, n);
    }
    step.exprs.push_back(std::move(e));
    return static_cast<int>(step.exprs.size()) - 1;
  }

  // The elementwise node `n` applied to its operands, at n's own index space.
  int apply(Step& step, const Node* n) {
    Expr e;
    e.kind = Expr::Kind::Apply;
    e.op = n->op();
    for (const Node* o : n->operands()) e.args.push_back(expr_at(step, o, n->shape()));
    step.exprs.push_back(std::move(e));
    return static_cast<int>(step.exprs.size()) - 1;
  }

  int load(Step& step, const Access& a) {
    Expr e;
    e.kind = Expr::Kind::Load;
    e.access = a;
    step.exprs.push_back(std::move(e));
    return static_cast<int>(step.exprs.size()) - 1;
  }

  int temp(bool batched, const Shape& shape) { return add_buffer(BufKind::Temp, 0, batched, shape, ""); }

  // Large GEMMs get packing space for the cache-blocked loop nest (the
  // emitter still takes plain loops at run time when the rows are few).
  void plan_gemm(Step& s) {
    if (s.kind != StepKind::Gemm || s.n.times_n || s.n.value < 16) return;
    if (!s.kdim.times_n && s.kdim.value < 8) return;  // k = 10 (delta3 W3, 1024 rows): 100 -> 30 us blocked
    s.scratch = temp(false, Shape{gemm_scratch_tasks(s.n.value)});
  }

  // A step writing a new contiguous temp; returns its access.
  Access push(Step step) {
    plan_gemm(step);
    p_.steps.push_back(std::move(step));
    return contiguous(p_.steps.back().out);
  }

  // `a` (over `shape`) as a contiguous buffer, copying a strided view.
  Access contiguous_copy(const Access& a, const Shape& shape, bool batched) {
    return is_contiguous(a, shape) ? a : copy(a, shape, batched);
  }

  // `a` (over `shape`) copied into a fresh temp by a step emitted now.
  Access copy(const Access& a, const Shape& shape, bool batched) {
    Step s;
    s.kind = StepKind::Elementwise;
    s.batched = batched;
    s.shape = shape;
    s.root = load(s, a);
    s.out = temp(batched, shape);
    return push(std::move(s));
  }

  // --- stored values --------------------------------------------------------

  // The stored value of `o`; a constant (never stored by the walk) is
  // written to a small buffer the first time a consumer needs it in memory.
  Access access_of(const Node* o) {
    if (auto it = stored_.find(o); it != stored_.end()) return it->second;
    NABLA_ASSERT(is_constant(o), "a value used before it is stored");
    Step s;
    s.kind = StepKind::Elementwise;
    s.shape = o->shape();
    s.root = expr_at(s, o, o->shape());
    s.out = temp(false, o->shape());
    return stored_[o] = push(std::move(s));
  }

  void stored(const Node* n) {
    if (stored_.count(n)) return;  // arguments
    const Op op = n->op();
    const bool b = batched_.at(n);
    Step s;
    s.batched = b;
    s.op = op;
    if (ir::is_elementwise(op)) {
      s.kind = StepKind::Elementwise;
      s.shape = n->shape();
      s.root = apply(s, n);
      s.out = temp(b, n->shape());
      stored_[n] = push(std::move(s));
      return;
    }
    switch (op) {
      case Op::Transpose: {
        Access a = access_of(n->operand(0));
        std::reverse(a.strides.begin(), a.strides.end());
        stored_[n] = a;
        return;
      }
      case Op::Broadcast: {
        const Node* o = n->operand(0);
        Access a = access_of(o);
        if (n->attr() == ir::kAllAxes) {
          stored_[n] = broadcast_access(a, o->shape(), n->shape());
        } else {
          const int axis = *normalize_axis(n->attr(), n->shape().rank());
          a.strides.insert(a.strides.begin() + axis, 0);
          stored_[n] = a;
        }
        return;
      }
      case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
      case Op::SumTo: {
        const Node* o = n->operand(0);
        s.kind = StepKind::Reduce;
        s.op = op == Op::SumTo ? Op::Sum : op;
        s.shape = o->shape();
        s.reduced.assign(static_cast<size_t>(s.shape.rank()), false);
        if (op == Op::SumTo) {
          const int off = s.shape.rank() - n->shape().rank();
          for (int d = 0; d < s.shape.rank(); ++d)
            s.reduced[static_cast<size_t>(d)] = d < off || (n->shape()[d - off] == 1 && s.shape[d] != 1);
        } else if (n->attr() == ir::kAllAxes) {
          s.reduced.assign(s.reduced.size(), true);
        } else {
          s.reduced[static_cast<size_t>(*normalize_axis(n->attr(), s.shape.rank()))] = true;
        }
        s.root = expr_at(s, o, o->shape());
        s.out = temp(b, n->shape());
        stored_[n] = push(std::move(s));
        return;
      }
      case Op::Softmax: case Op::LogSoftmax: case Op::ArgmaxMask: case Op::ArgminMask:
      case Op::MaxoutMask: case Op::Maxout: case Op::Repeat: case Op::GroupSum: {
        const Node* o = n->operand(0);
        s.kind = op == Op::Softmax || op == Op::LogSoftmax ? StepKind::Softmax : StepKind::Special;
        s.shape = o->shape();
        s.in = contiguous_copy(access_of(o), o->shape(), batched_.at(o));
        if (op == Op::Softmax || op == Op::LogSoftmax)  // as the interpreter: all axes = the last
          s.axis = n->attr() == ir::kAllAxes ? s.shape.rank() - 1 : *normalize_axis(n->attr(), s.shape.rank());
        else if (op == Op::ArgmaxMask || op == Op::ArgminMask)
          s.axis = n->attr() == ir::kAllAxes ? -1 : *normalize_axis(n->attr(), s.shape.rank());
        else
          s.k = n->attr();
        if (s.shape.rank() == 0) s.axis = -1;
        s.out = temp(b, n->shape());
        stored_[n] = push(std::move(s));
        return;
      }
      case Op::Outer: {
        s.kind = StepKind::Elementwise;
        s.shape = n->shape();
        Access u = access_of(n->operand(0)), v = access_of(n->operand(1));
        u.strides = {u.strides[0], 0};
        v.strides = {0, v.strides[0]};
        Expr e;
        e.kind = Expr::Kind::Apply;
        e.op = Op::Mul;
        e.args = {load(s, u), load(s, v)};
        s.exprs.push_back(std::move(e));
        s.root = static_cast<int>(s.exprs.size()) - 1;
        s.out = temp(b, n->shape());
        stored_[n] = push(std::move(s));
        return;
      }
      case Op::MatMul:
        stored_[n] = matmul(n);
        return;
      // Arguments are stored already, constants on use; elementwise ops were handled above.
      case Op::Constant: case Op::Var:
      case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
      case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
      case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
      case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
      case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
      case Op::Where:
        break;
    }
    NABLA_ASSERT(false, std::string("no code generation for ") + ir::op_name(op));
  }

  static Matrix as_matrix(const Access& a, const Shape& shape, bool left, int64_t* rows, int64_t* cols) {
    Matrix m;
    m.buf = a.buf;
    m.batch_stride = a.batch_stride;
    if (shape.rank() == 2) {
      *rows = shape[0];
      *cols = shape[1];
      m.row_stride = a.strides[0];
      m.col_stride = a.strides[1];
    } else if (left) {
      *rows = 1;
      *cols = shape[0];
      m.col_stride = a.strides[0];
    } else {
      *rows = shape[0];
      *cols = 1;
      m.row_stride = a.strides[0];
    }
    return m;
  }

  static Matrix transpose(Matrix m) {
    std::swap(m.row_stride, m.col_stride);
    return m;
  }

  Access matmul(const Node* n) {
    const Node* x = n->operand(0);
    const Node* y = n->operand(1);
    Step s;
    s.kind = StepKind::Gemm;
    s.op = Op::MatMul;
    s.batched = batched_.at(n);
    int64_t m = 0, k = 0, k2 = 0, cols = 0;
    s.a = as_matrix(access_of(x), x->shape(), true, &m, &k);
    s.b = as_matrix(access_of(y), y->shape(), false, &k2, &cols);
    s.out = temp(s.batched, n->shape());
    Access out = contiguous(s.out);
    // C as a matrix [m, cols] over the contiguous result.
    s.c.buf = s.out;
    s.c.batch_stride = out.batch_stride;
    if (x->shape().rank() == 2 && y->shape().rank() == 2) {
      s.c.row_stride = cols;
      s.c.col_stride = 1;
    } else if (x->shape().rank() == 2) {
      s.c.row_stride = 1;
    } else {
      s.c.col_stride = 1;
    }
    const bool ba = batched_.at(x), bb = batched_.at(y);
    if (bb && !ba) {  // C^T = B^T A^T: the batched operand on the left
      Matrix a = transpose(s.b), bm = transpose(s.a);
      s.a = a;
      s.b = bm;
      s.c = transpose(s.c);
      std::swap(m, cols);
    }
    const bool left_batched = ba || bb, right_batched = ba && bb;
    s.m = {m, false};
    s.n = {cols, false};
    s.kdim = {k, false};
    s.gemm_batched = s.batched;
    if (left_batched && !right_batched) {
      // The batch folds into the rows when they are consecutive across samples.
      if (m == 1) {
        s.a.row_stride = s.a.batch_stride;
        s.c.row_stride = s.c.batch_stride;
      }
      if (s.a.batch_stride == m * s.a.row_stride && s.c.batch_stride == m * s.c.row_stride) {
        s.m.times_n = true;
        s.gemm_batched = false;
      }
    }
    plan_gemm(s);
    p_.steps.push_back(std::move(s));
    return out;
  }

  // --- batch means ----------------------------------------------------------

  // mean_b outer(u_b, v_b) = U^T V / n: a GEMM reducing over the batch,
  // written to (or, with `accumulate`, added to) the buffer `out`.
  Step outer_gemm(const Node* n, int out, double sign, bool accumulate) {
    const Access u = stored_.at(n->operand(0)), v = stored_.at(n->operand(1));
    Step s;
    s.kind = StepKind::Gemm;
    s.op = Op::Outer;
    s.a = {u.buf, 0, u.strides[0], u.batch_stride};
    s.b = {v.buf, 0, v.batch_stride, v.strides[0]};
    s.out = out;
    s.c = {out, 0, n->shape()[1], 1};
    s.m = {n->shape()[0], false};
    s.n = {n->shape()[1], false};
    s.kdim = {1, true};
    s.alpha = sign;
    s.alpha_over_n = true;
    s.accumulate = accumulate;
    return s;
  }

  Access mean_value(const Node* n) {
    if (!batched_.at(n)) return access_of(n);
    return means_.at(n);
  }

  void mean_of(const Node* n) {
    const Op op = n->op();
    Step s;
    s.shape = n->shape();
    s.op = op;
    switch (mean_form(n)) {
      case MeanForm::Linear: {
        if (op == Op::Transpose) {
          Access a = mean_value(n->operand(0));
          std::reverse(a.strides.begin(), a.strides.end());
          means_[n] = a;
          return;
        }
        s.kind = StepKind::Elementwise;
        if (const Node* o = fused_outer(n)) {
          const Node* other = n->operand(0) == o ? n->operand(1) : n->operand(0);
          // C = (+/-) other, then C += (+/-) mean outer(u, v).
          const bool negate_other = op == Op::Sub && n->operand(0) == o;
          const double gemm_sign = op == Op::Sub && n->operand(1) == o ? -1 : 1;
          int v = is_constant(other)      ? expr_at(s, other, n->shape())
                  : inline_term(other, n)    ? apply(s, other)
                  : load(s, broadcast_access(operand_mean(other), other->shape(), n->shape()));
          if (negate_other) {
            Expr neg;
            neg.kind = Expr::Kind::Apply;
            neg.op = Op::Neg;
            neg.args = {v};
            s.exprs.push_back(std::move(neg));
            v = static_cast<int>(s.exprs.size()) - 1;
          }
          s.root = v;
          s.out = temp(false, n->shape());
          means_[n] = push(std::move(s));
          p_.steps.push_back(outer_gemm(o, means_[n].buf, gemm_sign, true));
          plan_gemm(p_.steps.back());
          fused_steps_[n] = {p_.steps.size() - 2, p_.steps.size() - 1};
          return;
        }
        Expr e;
        e.kind = Expr::Kind::Apply;
        e.op = op;
        if (op == Op::Outer) {  // one operand batched
          e.op = Op::Mul;
          Access u = operand_mean(n->operand(0)), v = operand_mean(n->operand(1));
          u.strides = {u.strides[0], 0};
          v.strides = {0, v.strides[0]};
          e.args = {load(s, u), load(s, v)};
        } else {
          for (const Node* o : n->operands()) {
            if (is_constant(o)) {
              e.args.push_back(expr_at(s, o, n->shape()));
            } else {
              e.args.push_back(load(s, broadcast_access(operand_mean(o), o->shape(), n->shape())));
            }
          }
        }
        s.exprs.push_back(std::move(e));
        s.root = static_cast<int>(s.exprs.size()) - 1;
        s.out = temp(false, n->shape());
        means_[n] = push(std::move(s));
        return;
      }
      case MeanForm::OuterGemm: {
        const int out = temp(false, n->shape());
        means_[n] = push(outer_gemm(n, out, 1, false));
        return;
      }
      case MeanForm::Tree:
      case MeanForm::Stored:
        s.kind = StepKind::BatchMean;
        s.batched = true;
        s.root = stored_.count(n) ? expr_at(s, n, n->shape()) : apply(s, n);
        s.out = temp(false, n->shape());
        means_[n] = push(std::move(s));
        return;
    }
  }

  Access operand_mean(const Node* o) { return batched_.at(o) ? means_.at(o) : access_of(o); }

  // --- results --------------------------------------------------------------

  Access param_access(size_t i) { return stored_.at(spec_.params[i]); }

  // An Apply expression in `step`; returns its index.
  int apply_op(Step& step, Op op, std::vector<int> args) {
    Expr e;
    e.kind = Expr::Kind::Apply;
    e.op = op;
    e.args = std::move(args);
    step.exprs.push_back(std::move(e));
    return static_cast<int>(step.exprs.size()) - 1;
  }

  // The expression p - rate * g in `step` (g: the expression at index `g`).
  int subtract_rate_times(Step& step, int pbuf, int g, const Shape& shape) {
    const int rate = load(step, broadcast_access(contiguous(rate_), Shape{}, shape));
    const int scaled = apply_op(step, Op::Mul, {rate, g});
    return apply_op(step, Op::Sub, {load(step, contiguous(pbuf)), scaled});
  }

  // SgdStep: p -= rate * (mean gradient), fused into the gradient's GEMM where
  // it has one, else a step after everything else. A gradient that is a view
  // of a param (loss a * b: the gradient of a is b) is copied before the
  // first update, or the update of b would read the updated a.
  void bind_updates(const std::vector<const Node*>& roots) {
    std::vector<Step> late;
    for (size_t r = 1; r < roots.size(); ++r) {
      const Node* n = roots[r];
      const Access p = param_access(r - 1);
      const int pbuf = p.buf;
      const bool shared = std::count(roots.begin(), roots.end(), n) > 1;
      if (auto it = fused_steps_.find(n); in_place_ && it != fused_steps_.end() && !shared) {
        // init: p = p - rate * other; gemm: p += (-alpha * rate) A B.
        Step& init = p_.steps[it->second.first];
        Step& gemm = p_.steps[it->second.second];
        init.root = subtract_rate_times(init, pbuf, init.root, n->shape());
        init.out = pbuf;
        gemm.out = pbuf;
        gemm.c.buf = pbuf;
        gemm.alpha = -gemm.alpha;
        gemm.alpha_times_rate = true;
        continue;
      }
      Step s;
      s.kind = StepKind::Elementwise;
      s.shape = n->shape();
      Expr g;
      if (is_constant(n)) {
        g.kind = Expr::Kind::Const;
        g.value = n->value();
        s.exprs.push_back(std::move(g));
      } else {
        Access mean = mean_value(n);
        if (p_.buffers[static_cast<size_t>(mean.buf)].kind == BufKind::Param) mean = copy(mean, n->shape(), false);
        load(s, mean);
      }
      s.root = subtract_rate_times(s, pbuf, static_cast<int>(s.exprs.size()) - 1, n->shape());
      s.out = pbuf;
      late.push_back(std::move(s));
    }
    for (Step& s : late) p_.steps.push_back(std::move(s));
  }

  void bind_outputs(const std::vector<const Node*>& roots) {
    for (size_t r = 0; r < roots.size(); ++r) {
      if (sgd_ && r > 0) {
        bind_updates(roots);
        break;
      }
      const Node* n = roots[r];
      BufKind kind = BufKind::Output;
      int index = static_cast<int>(r);
      std::string name;
      if (gradient_) {
        kind = r == 0 ? BufKind::Loss : BufKind::Grad;
        index = r == 0 ? 0 : static_cast<int>(r) - 1;
        name = r == 0 ? "loss" : spec_.params[r - 1]->name();
      } else {
        name = spec_.outputs[r].first;
      }
      const bool out_batched = !gradient_;
      Access a;
      bool have = false;
      if (!is_constant(n)) {
        a = gradient_ ? mean_value(n) : stored_.at(n);
        have = true;
      }
      if (have) {
        Buffer& buf = p_.buffers[static_cast<size_t>(a.buf)];
        if (buf.kind == BufKind::Temp && buf.batched == out_batched && is_contiguous(a, n->shape())) {
          buf.kind = kind;
          buf.index = index;
          buf.name = name;
          continue;
        }
      }
      Step s;
      s.kind = StepKind::Elementwise;
      s.batched = out_batched;
      s.shape = n->shape();
      s.root = have ? load(s, a) : expr_at(s, n, n->shape());
      s.out = add_buffer(kind, index, out_batched, n->shape(), name);
      p_.steps.push_back(std::move(s));
    }
  }

  // --- GEMM epilogues ---------------------------------------------------------

  // The steps reading buffer `buf` (each once per Load, operand or input).
  std::vector<size_t> readers(int buf) const {
    std::vector<size_t> r;
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& s = p_.steps[i];
      for (const Expr& e : s.exprs)
        if (e.kind == Expr::Kind::Load && e.access.buf == buf) r.push_back(i);
      if (s.in.buf == buf || s.a.buf == buf || s.b.buf == buf || s.bias == buf || s.mask == buf ||
          (s.accumulate && s.c.buf == buf))
        r.push_back(i);
    }
    return r;
  }
  size_t writers(int buf) const {
    size_t w = 0;
    for (const Step& s : p_.steps) w += s.out == buf;
    return w;
  }
  // `a` reads, over `s`'s index space, each element of its buffer at that
  // same index (the buffer laid out row-major over the space).
  bool identity_access(const Step& s, const Access& a) const {
    const Buffer& b = p_.buffers[static_cast<size_t>(a.buf)];
    return b.shape == s.shape && b.batched == s.batched && a.strides == row_major(s.shape) &&
           a.batch_stride == (b.batched ? s.shape.numel() : 0);
  }
  const Expr& expr(const Step& s, int e) const { return s.exprs[static_cast<size_t>(e)]; }

  // The layer pattern `relu(W @ x + b)` of the batch, stored as the GEMM's
  // tiles are (the bias and activation as its epilogue), instead of three
  // passes over the batch's activations (GEMM, + b, relu). Three rewrites:
  //  1. relu'(z) is read as relu(z) > 0 where relu(z) is stored (equal, NaN
  //     included), so z itself need not be kept for the backward pass;
  //  2. a temp read by just one same-shaped elementwise step, at the same
  //     index, is computed inside that step (z = G + b into relu(z));
  //  3. a step `relu?(G + b)` over the batch, G a GEMM's product read by it
  //     alone, b a vector along G's columns: the GEMM writes the step's
  //     buffer and applies bias and relu itself; likewise a step
  //     `(X > 0) * G` (relu' in the backward pass) becomes a mask epilogue.
  void fuse_epilogues() {
    auto& steps = p_.steps;
    auto is_temp = [&](int buf) { return buf >= 0 && p_.buffers[static_cast<size_t>(buf)].kind == BufKind::Temp; };
    // 1.
    for (size_t r = 0; r < steps.size(); ++r) {
      const Step& s = steps[r];
      if (s.kind != StepKind::Elementwise) continue;
      const Expr& root = expr(s, s.root);
      if (root.kind != Expr::Kind::Apply || root.op != Op::Relu) continue;
      const Expr& z = expr(s, root.args[0]);
      if (z.kind != Expr::Kind::Load || !identity_access(s, z.access) || !is_temp(z.access.buf)) continue;
      const Buffer& out = p_.buffers[static_cast<size_t>(s.out)];
      if (out.shape != s.shape || out.batched != s.batched || writers(s.out) != 1) continue;
      const int zbuf = z.access.buf, rbuf = s.out;
      for (size_t j = r + 1; j < steps.size(); ++j)
        for (Expr& e : steps[j].exprs) {
          if (e.kind != Expr::Kind::Apply || e.op != Op::Gt) continue;
          Expr& lhs = steps[j].exprs[static_cast<size_t>(e.args[0])];
          const Expr& rhs = steps[j].exprs[static_cast<size_t>(e.args[1])];
          if (lhs.kind == Expr::Kind::Load && lhs.access.buf == zbuf && rhs.kind == Expr::Kind::Const && rhs.value == 0)
            lhs.access.buf = rbuf;
        }
    }
    // 2.
    for (size_t t = 0; t < steps.size(); ++t) {
      const Step& producer = steps[t];
      if (producer.kind != StepKind::Elementwise || !is_temp(producer.out) || writers(producer.out) != 1) continue;
      const std::vector<size_t> rd = readers(producer.out);
      if (rd.size() != 1 || rd[0] <= t) continue;
      Step& user = steps[rd[0]];
      if (user.kind != StepKind::Elementwise || user.shape != producer.shape || user.batched != producer.batched) continue;
      int at = -1;
      for (size_t e = 0; e < user.exprs.size(); ++e)
        if (user.exprs[e].kind == Expr::Kind::Load && user.exprs[e].access.buf == producer.out) at = static_cast<int>(e);
      if (at < 0 || !identity_access(user, user.exprs[static_cast<size_t>(at)].access)) continue;
      // Nothing between writes what the producer reads.
      bool safe = true;
      for (size_t j = t + 1; j < rd[0]; ++j)
        for (const Expr& e : producer.exprs)
          safe = safe && !(e.kind == Expr::Kind::Load && e.access.buf == steps[j].out);
      if (!safe) continue;
      // Append the producer's tree; its root replaces the load.
      const int base = static_cast<int>(user.exprs.size());
      for (Expr e : producer.exprs) {
        for (int& a : e.args) a += base;
        user.exprs.push_back(std::move(e));
      }
      user.exprs[static_cast<size_t>(at)] = user.exprs[static_cast<size_t>(base + producer.root)];
      steps.erase(steps.begin() + static_cast<std::ptrdiff_t>(t));
      --t;
    }
    // 3.
    for (size_t r = 0; r < steps.size(); ++r) {
      const Step& s = steps[r];
      if (s.kind != StepKind::Elementwise || !s.batched || s.shape.rank() != 1) continue;
      int g = -1, bias = -1, mask = -1;
      bool relu = false;
      if (!bias_relu_pattern(s, &g, &bias, &relu)) {
        bias = -1;
        relu = false;
        if (!mask_pattern(s, &g, &mask)) continue;
      }
      const Expr& ge = expr(s, g);
      if (ge.kind != Expr::Kind::Load || !identity_access(s, ge.access) || !is_temp(ge.access.buf)) continue;
      const int gbuf = ge.access.buf;
      if (writers(gbuf) != 1 || readers(gbuf).size() != 1 || writers(s.out) != 1) continue;
      size_t gi = 0;
      while (gi < r && steps[gi].out != gbuf) ++gi;
      Step& gemm = steps[gi];
      if (gi == r || gemm.kind != StepKind::Gemm || gemm.gemm_batched || gemm.accumulate || gemm.c.col_stride != 1 ||
          !gemm.m.times_n || gemm.m.value != 1 || gemm.n.times_n || gemm.n.value != s.shape[0] ||
          gemm.c.row_stride != s.shape[0] || gemm.c.buf != gbuf)
        continue;
      bool safe = true;  // nothing between the two writes what the epilogue reads, or the result
      for (size_t j = gi + 1; j < r; ++j)
        safe = safe && steps[j].out != bias && steps[j].out != mask && steps[j].out != s.out;
      if (!safe) continue;
      gemm.out = gemm.c.buf = s.out;
      gemm.bias = bias;
      gemm.relu = relu;
      gemm.mask = mask;
      steps.erase(steps.begin() + static_cast<std::ptrdiff_t>(r));
      --r;
    }
  }

  // relu?(G + b) or relu(G), b an unbatched vector along the step's axis.
  bool bias_relu_pattern(const Step& s, int* g, int* bias, bool* relu) const {
    int e = s.root;
    *relu = expr(s, e).kind == Expr::Kind::Apply && expr(s, e).op == Op::Relu;
    if (*relu) e = expr(s, e).args[0];
    *g = e;
    if (expr(s, e).kind == Expr::Kind::Apply && expr(s, e).op == Op::Add) {
      const Expr &x = expr(s, expr(s, e).args[0]), &y = expr(s, expr(s, e).args[1]);
      auto is_bias = [&](const Expr& v) {
        return v.kind == Expr::Kind::Load && v.access.batch_stride == 0 && v.access.strides == std::vector<int64_t>{1} &&
               !p_.buffers[static_cast<size_t>(v.access.buf)].batched;
      };
      if (is_bias(y)) *g = expr(s, e).args[0], *bias = y.access.buf;
      else if (is_bias(x)) *g = expr(s, e).args[1], *bias = x.access.buf;
      else return false;
      return true;
    }
    return *relu;
  }

  // Mul(Gt(X, 0), G) either way round, X read at the step's own index (the
  // backward pass's relu': delta = (h > 0) * (delta' W)).
  bool mask_pattern(const Step& s, int* g, int* mask) const {
    const Expr& root = expr(s, s.root);
    if (root.kind != Expr::Kind::Apply || root.op != Op::Mul) return false;
    for (int side = 0; side < 2; ++side) {
      const Expr& gt = expr(s, root.args[static_cast<size_t>(side)]);
      if (gt.kind != Expr::Kind::Apply || gt.op != Op::Gt) continue;
      const Expr &x = expr(s, gt.args[0]), &zero = expr(s, gt.args[1]);
      if (x.kind != Expr::Kind::Load || !identity_access(s, x.access) || zero.kind != Expr::Kind::Const ||
          zero.value != 0)
        continue;
      *g = root.args[static_cast<size_t>(1 - side)];
      *mask = x.access.buf;
      return true;
    }
    return false;
  }

  // Liveness-based placement of temps: first fit within two arenas (values
  // with a batch axis, sized per sample and scaled by n; the others).
  void plan_buffers() {
    const size_t nb = p_.buffers.size();
    std::vector<int> first(nb, -1), last(nb, -1);
    auto touch = [&](int buf, int step) {
      if (buf < 0) return;
      if (first[static_cast<size_t>(buf)] < 0) first[static_cast<size_t>(buf)] = step;
      last[static_cast<size_t>(buf)] = step;
    };
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& s = p_.steps[i];
      const int at = static_cast<int>(i);
      touch(s.out, at);
      for (const Expr& e : s.exprs)
        if (e.kind == Expr::Kind::Load) touch(e.access.buf, at);
      touch(s.in.buf, at);
      touch(s.a.buf, at);
      touch(s.b.buf, at);
      touch(s.c.buf, at);
      touch(s.scratch, at);
      touch(s.bias, at);
      touch(s.mask, at);
    }
    struct Placed {
      int64_t offset, size;
      int first, last;
    };
    std::vector<Placed> arenas[2];
    int64_t top[2] = {0, 0};
    for (size_t i = 0; i < nb; ++i) {
      Buffer& b = p_.buffers[i];
      if (b.kind != BufKind::Temp || first[i] < 0) continue;
      const int arena = b.batched ? 1 : 0;
      const int64_t size = (b.shape.numel() + 15) / 16 * 16;  // 64-byte aligned (f32)
      auto& placed = arenas[arena];
      std::vector<std::pair<int64_t, int64_t>> busy;
      for (const Placed& p : placed)
        if (!(p.last < first[i] || last[i] < p.first)) busy.emplace_back(p.offset, p.offset + p.size);
      std::sort(busy.begin(), busy.end());
      int64_t offset = 0;
      for (const auto& [lo, hi] : busy) {
        if (offset + size <= lo) break;
        offset = std::max(offset, hi);
      }
      placed.push_back({offset, size, first[i], last[i]});
      top[arena] = std::max(top[arena], offset + size);
      b.offset = offset;
    }
    p_.workspace_fixed = top[0];
    p_.workspace_batched = top[1];
  }

  const KernelSpec& spec_;
  bool gradient_, sgd_, in_place_;
  int rate_ = -1;                                        // SgdStep: the rate argument
  std::unordered_map<const Node*, std::pair<size_t, size_t>> fused_steps_;  // mean -> (init, gemm) steps
  Program p_;
  std::vector<const Node*> order_;
  std::unordered_map<const Node*, bool> batched_;
  std::unordered_map<const Node*, int> users_;
  std::unordered_map<const Node*, const Node*> user_;
  std::unordered_map<const Node*, int> fused_depth_;
  std::unordered_set<const Node*> fusable_, store_, mean_;
  std::unordered_map<const Node*, Access> stored_, means_;
};

const char* kind_name(BufKind k) {
  switch (k) {
    case BufKind::Input: return "input";
    case BufKind::Label: return "label";
    case BufKind::Param: return "param";
    case BufKind::Output: return "output";
    case BufKind::Loss: return "loss";
    case BufKind::Grad: return "grad";
    case BufKind::Temp: return "temp";
    case BufKind::Rate: return "rate";
  }
  return "?";
}

std::string access_str(const Access& a) {
  std::string s = "%" + std::to_string(a.buf) + "<" + std::to_string(a.batch_stride);
  for (int64_t st : a.strides) s += "," + std::to_string(st);
  return s + ">";
}

std::string expr_str(const Step& s, int e) {
  const Expr& x = s.exprs[static_cast<size_t>(e)];
  switch (x.kind) {
    case Expr::Kind::Const: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", x.value);
      return buf;
    }
    case Expr::Kind::Load: return access_str(x.access);
    case Expr::Kind::Apply: {
      std::string r = std::string(ir::op_name(x.op)) + "(";
      for (size_t i = 0; i < x.args.size(); ++i) r += (i ? ", " : "") + expr_str(s, x.args[i]);
      return r + ")";
    }
  }
  return "?";
}

std::string matrix_str(const Matrix& m) {
  return "%" + std::to_string(m.buf) + "<" + std::to_string(m.batch_stride) + "," +
         std::to_string(m.row_stride) + "," + std::to_string(m.col_stride) + ">";
}

std::string dim_str(const Dim& d) { return std::to_string(d.value) + (d.times_n ? "n" : ""); }

}  // namespace

std::vector<int64_t> row_major(const Shape& s) {
  std::vector<int64_t> strides(static_cast<size_t>(s.rank()));
  int64_t step = 1;
  for (int d = s.rank() - 1; d >= 0; --d) {
    strides[static_cast<size_t>(d)] = step;
    step *= s[d];
  }
  return strides;
}

std::string Program::str() const {
  std::ostringstream out;
  out << "dtype " << ir::dtype_name(dtype) << " workspace " << workspace_fixed << " + "
      << workspace_batched << "n\n";
  for (size_t i = 0; i < buffers.size(); ++i) {
    const Buffer& b = buffers[i];
    out << "%" << i << " = " << kind_name(b.kind) << " " << b.index << " " << b.name << " "
        << (b.batched ? "[n]" : "") << b.shape.str();
    if (b.kind == BufKind::Temp) out << " @" << b.offset;
    out << "\n";
  }
  for (const Step& s : steps) {
    out << "%" << s.out << " <- ";
    switch (s.kind) {
      case StepKind::Elementwise:
        out << "map" << (s.batched ? "[n]" : "") << s.shape.str() << " " << expr_str(s, s.root);
        break;
      case StepKind::Reduce: {
        out << "reduce " << ir::op_name(s.op) << (s.batched ? " [n]" : " ") << s.shape.str() << " axes";
        for (size_t d = 0; d < s.reduced.size(); ++d)
          if (s.reduced[d]) out << " " << d;
        out << " " << expr_str(s, s.root);
        break;
      }
      case StepKind::BatchMean:
        out << "batch_mean " << s.shape.str() << " " << expr_str(s, s.root);
        break;
      case StepKind::Softmax:
      case StepKind::Special:
        out << ir::op_name(s.op) << (s.batched ? " [n]" : " ") << s.shape.str() << " axis " << s.axis
            << " k " << s.k << " " << access_str(s.in);
        break;
      case StepKind::Gemm:
        out << "gemm" << (s.gemm_batched ? "[n]" : "") << " m " << dim_str(s.m) << " n "
            << dim_str(s.n) << " k " << dim_str(s.kdim) << " " << matrix_str(s.a) << " "
            << matrix_str(s.b) << " " << matrix_str(s.c) << " alpha " << s.alpha
            << (s.alpha_over_n ? "/n" : "") << (s.accumulate ? " accumulate" : "")
            << (s.scratch >= 0 ? " blocked %" + std::to_string(s.scratch) : "")
            << (s.bias >= 0 ? " bias %" + std::to_string(s.bias) : "") << (s.relu ? " relu" : "")
            << (s.mask >= 0 ? " mask %" + std::to_string(s.mask) : "");
        break;
    }
    out << "\n";
  }
  return out.str();
}

// SgdStep: true when no step reads a param after the step that first writes
// it, other than the GEMM of its own fused update.
bool updates_are_safe(const Program& p) {
  for (size_t b = 0; b < p.buffers.size(); ++b) {
    if (p.buffers[b].kind != BufKind::Param) continue;
    const int pbuf = static_cast<int>(b);
    bool written = false;
    for (const Step& s : p.steps) {
      const bool writes = s.out == pbuf;
      bool reads = s.in.buf == pbuf || s.a.buf == pbuf || s.b.buf == pbuf || s.bias == pbuf || s.mask == pbuf;
      for (const Expr& e : s.exprs) reads = reads || (e.kind == Expr::Kind::Load && e.access.buf == pbuf);
      if (written && (reads || (writes && s.kind != StepKind::Gemm))) return false;
      written = written || writes;
    }
  }
  return true;
}

Program build_program(const KernelSpec& spec, KernelKind kind, ir::DType dtype) {
  Program p = Builder(spec, kind, dtype).run();
  if (kind == KernelKind::SgdStep && !updates_are_safe(p)) return Builder(spec, kind, dtype, false).run();
  return p;
}

}  // namespace nabla::codegen
