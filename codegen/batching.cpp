// Batching: the steps of a kernel program built from the per-sample IR (the
// stored values, the batch means, the results and the SGD step's updates).
#include "codegen/batching.h"

#include <algorithm>
#include <unordered_map>

#include "codegen/batch_analysis.h"
#include "ir/assert.h"

namespace nabla::codegen {
namespace {

using ir::Node;
using ir::Op;
using MeanForm = BatchAnalysis::MeanForm;

// The view of `a` (over shape `from`) as seen over the larger shape `to`
// under NumPy broadcasting: leading new axes and size-1 axes get stride 0.
Access broadcast_access(const Access& a, const Shape& from, const Shape& to) {
  Access r{a.buf, a.batch_stride, std::vector<int64_t>(static_cast<size_t>(to.rank()), 0)};
  const int off = to.rank() - from.rank();
  for (int d = 0; d < from.rank(); ++d)
    if (from[d] == to[d + off]) r.strides[static_cast<size_t>(d + off)] = a.strides[static_cast<size_t>(d)];
  return r;
}

// The kernel's results: the outputs, or the loss and then the gradients.
std::vector<const Node*> roots_of(const KernelSpec& spec, bool gradient) {
  std::vector<const Node*> roots;
  if (gradient) {
    NABLA_ASSERT(spec.loss, "a gradient kernel needs a loss");
    roots.push_back(spec.loss);
    roots.insert(roots.end(), spec.gradients.begin(), spec.gradients.end());
  } else {
    for (const auto& o : spec.outputs) roots.push_back(o.second);
  }
  return roots;
}

class Builder {
public:
  Builder(const KernelSpec& spec, KernelKind kind, ir::DType dtype, bool in_place)
      : spec_(spec), gradient_(kind != KernelKind::Forward), sgd_(kind == KernelKind::SgdStep), in_place_(in_place),
        roots_(roots_of(spec, gradient_)), a_(roots_, gradient_) {
    p_.dtype = dtype;
  }

  Program run() {
    declare_arguments();
    // Stored values in topological order, then the batch means.
    for (const Node* n : a_.order())
      if (a_.stored(n)) stored(n);
    for (const Node* n : a_.order())
      if (a_.averaged(n)) mean_of(n);
    bind_outputs();
    return std::move(p_);
  }

private:
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
      NABLA_ASSERT(a_.fusable(n) && n->shape() == to, "an unstored value outside a fused tree");
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

  // An Apply expression in `step`; returns its index.
  int apply_op(Step& step, Op op, std::vector<int> args) {
    Expr e;
    e.kind = Expr::Kind::Apply;
    e.op = op;
    e.args = std::move(args);
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
    s.scratch = temp(false, Shape{gemm_scratch_for(s)});
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

  // A step computing `n`, its kind and expressions still to be filled in.
  Step step_for(const Node* n) const {
    Step s;
    s.batched = a_.batched(n);
    s.op = n->op();
    return s;
  }

  void stored(const Node* n) {
    if (stored_.count(n)) return;  // arguments
    const Op op = n->op();
    if (ir::is_elementwise(op)) {
      Step s = step_for(n);
      s.kind = StepKind::Elementwise;
      s.shape = n->shape();
      s.root = apply(s, n);
      s.out = temp(s.batched, n->shape());
      stored_[n] = push(std::move(s));
      return;
    }
    switch (op) {
      case Op::Transpose: case Op::Broadcast:
        stored_[n] = view(n);
        return;
      case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
      case Op::SumTo:
        stored_[n] = reduction(n);
        return;
      case Op::Softmax: case Op::LogSoftmax: case Op::ArgmaxMask: case Op::ArgminMask:
      case Op::MaxoutMask: case Op::Maxout: case Op::Repeat: case Op::GroupSum:
        stored_[n] = softmax_or_special(n);
        return;
      case Op::Outer:
        stored_[n] = outer(n);
        return;
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

  // A transpose or broadcast: a strided view of its operand, no step.
  Access view(const Node* n) {
    const Node* o = n->operand(0);
    Access a = access_of(o);
    if (n->op() == Op::Transpose) {
      std::reverse(a.strides.begin(), a.strides.end());
    } else if (n->attr() == ir::kAllAxes) {
      a = broadcast_access(a, o->shape(), n->shape());
    } else {
      const int axis = *normalize_axis(n->attr(), n->shape().rank());
      a.strides.insert(a.strides.begin() + axis, 0);
    }
    return a;
  }

  Access reduction(const Node* n) {
    const Node* o = n->operand(0);
    const Op op = n->op();
    Step s = step_for(n);
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
    s.out = temp(s.batched, n->shape());
    return push(std::move(s));
  }

  Access softmax_or_special(const Node* n) {
    const Node* o = n->operand(0);
    const Op op = n->op();
    Step s = step_for(n);
    s.kind = op == Op::Softmax || op == Op::LogSoftmax ? StepKind::Softmax : StepKind::Special;
    s.shape = o->shape();
    s.in = contiguous_copy(access_of(o), o->shape(), a_.batched(o));
    if (op == Op::Softmax || op == Op::LogSoftmax)  // as the interpreter: all axes = the last
      s.axis = n->attr() == ir::kAllAxes ? s.shape.rank() - 1 : *normalize_axis(n->attr(), s.shape.rank());
    else if (op == Op::ArgmaxMask || op == Op::ArgminMask)
      s.axis = n->attr() == ir::kAllAxes ? -1 : *normalize_axis(n->attr(), s.shape.rank());
    else
      s.k = n->attr();
    if (s.shape.rank() == 0) s.axis = -1;
    s.out = temp(s.batched, n->shape());
    return push(std::move(s));
  }

  // outer(u, v) per sample: u broadcast along columns times v along rows.
  Access outer(const Node* n) {
    Step s = step_for(n);
    s.kind = StepKind::Elementwise;
    s.shape = n->shape();
    Access u = access_of(n->operand(0)), v = access_of(n->operand(1));
    u.strides = {u.strides[0], 0};
    v.strides = {0, v.strides[0]};
    s.root = apply_op(s, Op::Mul, {load(s, u), load(s, v)});
    s.out = temp(s.batched, n->shape());
    return push(std::move(s));
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
    s.batched = a_.batched(n);
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
    const bool ba = a_.batched(x), bb = a_.batched(y);
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

  // The batch mean of a batched `n`, or the value of an unbatched one.
  Access mean_value(const Node* n) {
    if (!a_.batched(n)) return access_of(n);
    return means_.at(n);
  }

  void mean_of(const Node* n) {
    switch (a_.mean_form(n)) {
      case MeanForm::Linear:
        if (n->op() == Op::Transpose) {
          Access a = mean_value(n->operand(0));
          std::reverse(a.strides.begin(), a.strides.end());
          means_[n] = a;
        } else if (const Node* o = a_.fused_outer(n)) {
          fused_outer_mean(n, o);
        } else {
          means_[n] = linear_mean(n);
        }
        return;
      case MeanForm::OuterGemm: {
        const int out = temp(false, n->shape());
        means_[n] = push(outer_gemm(n, out, 1, false));
        outer_steps_[n] = p_.steps.size() - 1;
        return;
      }
      case MeanForm::Tree:
      case MeanForm::Stored: {
        Step s;
        s.shape = n->shape();
        s.op = n->op();
        s.kind = StepKind::BatchMean;
        s.batched = true;
        s.root = stored_.count(n) ? expr_at(s, n, n->shape()) : apply(s, n);
        s.out = temp(false, n->shape());
        means_[n] = push(std::move(s));
        return;
      }
    }
  }

  // The mean of a linear op: the op applied to its operands' means (an
  // outer product with one operand batched, a product or quotient by an
  // unbatched factor, a sum, a negation).
  Access linear_mean(const Node* n) {
    const Op op = n->op();
    Step s;
    s.shape = n->shape();
    s.op = op;
    s.kind = StepKind::Elementwise;
    if (op == Op::Outer) {  // one operand batched
      Access u = mean_value(n->operand(0)), v = mean_value(n->operand(1));
      u.strides = {u.strides[0], 0};
      v.strides = {0, v.strides[0]};
      s.root = apply_op(s, Op::Mul, {load(s, u), load(s, v)});
    } else {
      std::vector<int> args;
      for (const Node* o : n->operands()) {
        if (is_constant(o)) {
          args.push_back(expr_at(s, o, n->shape()));
        } else {
          args.push_back(load(s, broadcast_access(mean_value(o), o->shape(), n->shape())));
        }
      }
      s.root = apply_op(s, op, std::move(args));
    }
    s.out = temp(false, n->shape());
    return push(std::move(s));
  }

  // The mean of `other +/- outer(u, v)` (o the outer product): C = (+/-)
  // other, then a GEMM C += (+/-) mean outer(u, v) accumulating onto it.
  void fused_outer_mean(const Node* n, const Node* o) {
    const Op op = n->op();
    Step s;
    s.shape = n->shape();
    s.op = op;
    s.kind = StepKind::Elementwise;
    const Node* other = n->operand(0) == o ? n->operand(1) : n->operand(0);
    const bool negate_other = op == Op::Sub && n->operand(0) == o;
    const double gemm_sign = op == Op::Sub && n->operand(1) == o ? -1 : 1;
    int v = is_constant(other)           ? expr_at(s, other, n->shape())
            : a_.inline_term(other, n)   ? apply(s, other)
                                         : load(s, broadcast_access(mean_value(other), other->shape(), n->shape()));
    if (negate_other) v = apply_op(s, Op::Neg, {v});
    s.root = v;
    s.out = temp(false, n->shape());
    means_[n] = push(std::move(s));
    p_.steps.push_back(outer_gemm(o, means_[n].buf, gemm_sign, true));
    plan_gemm(p_.steps.back());
    fused_steps_[n] = {p_.steps.size() - 2, p_.steps.size() - 1};
  }

  // --- results --------------------------------------------------------------

  Access param_access(size_t i) { return stored_.at(spec_.params[i]); }

  // The expression p - rate * g in `step` (g: the expression at index `g`).
  int subtract_rate_times(Step& step, int pbuf, int g, const Shape& shape) {
    const int rate = load(step, broadcast_access(contiguous(rate_), Shape{}, shape));
    const int scaled = apply_op(step, Op::Mul, {rate, g});
    return apply_op(step, Op::Sub, {load(step, contiguous(pbuf)), scaled});
  }

  // Whether no step but step `only` reads `buf`.
  bool read_only_by(int buf, size_t only) const {
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      if (i == only) continue;
      bool reads = false;
      for_each_read(p_.steps[i], [&](int b) { reads = reads || b == buf; });
      if (reads) return false;
    }
    return true;
  }

  // SgdStep: p -= rate * (mean gradient), fused into the gradient's GEMM where
  // it has one, else a step after everything else. A gradient that is a view
  // of a param (loss a * b: the gradient of a is b) is copied before the
  // first update, or the update of b would read the updated a.
  void bind_updates() {
    std::vector<Step> late;
    for (size_t r = 1; r < roots_.size(); ++r) {
      const Node* n = roots_[r];
      const Access p = param_access(r - 1);
      const int pbuf = p.buf;
      const bool shared = std::count(roots_.begin(), roots_.end(), n) > 1;
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
      if (auto it = outer_steps_.find(n); in_place_ && it != outer_steps_.end() && !shared &&
                                           read_only_by(p_.steps[it->second].out, it->second)) {
        // A gradient that is a bare mean outer product (no other term): its
        // GEMM accumulates onto p, p += (-rate/n) U^T V, one pass over p
        // instead of writing the gradient and then reading it back.
        Step& gemm = p_.steps[it->second];
        gemm.out = pbuf;
        gemm.c.buf = pbuf;
        gemm.accumulate = true;
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

  void bind_outputs() {
    for (size_t r = 0; r < roots_.size(); ++r) {
      if (sgd_ && r > 0) {
        bind_updates();
        break;
      }
      const Node* n = roots_[r];
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

  const KernelSpec& spec_;
  bool gradient_, sgd_, in_place_;
  std::vector<const Node*> roots_;
  BatchAnalysis a_;
  int rate_ = -1;                                        // SgdStep: the rate argument
  std::unordered_map<const Node*, std::pair<size_t, size_t>> fused_steps_;  // mean -> (init, gemm) steps
  std::unordered_map<const Node*, size_t> outer_steps_;  // a bare mean outer product -> its GEMM step
  Program p_;
  std::unordered_map<const Node*, Access> stored_, means_;
};

}  // namespace

Program batch_program(const KernelSpec& spec, KernelKind kind, ir::DType dtype, bool in_place) {
  return Builder(spec, kind, dtype, in_place).run();
}

}  // namespace nabla::codegen
