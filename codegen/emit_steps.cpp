// Step loops: expression trees, reductions, batch means, softmax and the
// special ops.
#include "codegen/emit_steps.h"

#include <algorithm>
#include <cmath>

#include "ir/assert.h"

namespace nabla::codegen {

using ir::Op;
using llvm::Value;

void StepEmitter::batch_loop_or_none(bool batched, const Body& body) {
  if (batched) loop(n_, body);
  else body(nullptr);
}

Value* StepEmitter::offset(const Access& a, Value* batch, const std::vector<Value*>& idx) {
  Value* off = i64(0);
  if (batch && a.batch_stride) off = b_.CreateMul(batch, i64(a.batch_stride));
  for (size_t d = 0; d < idx.size(); ++d)
    if (a.strides[d]) off = b_.CreateAdd(off, b_.CreateMul(idx[d], i64(a.strides[d])));
  return off;
}

Value* StepEmitter::eval(const Step& s, int e, Value* batch, const std::vector<Value*>& idx) {
  const Expr& x = s.exprs[static_cast<size_t>(e)];
  switch (x.kind) {
    case Expr::Kind::Const: return fp(x.value);
    case Expr::Kind::Load: {
      // A value computed earlier in the same fused loop, at this element.
      if (auto it = local_.find(x.access.buf); it != local_.end()) return it->second;
      return load(x.access.buf, offset(x.access, batch, idx));
    }
    case Expr::Kind::Apply: {
      Value* v[3] = {nullptr, nullptr, nullptr};
      for (size_t i = 0; i < x.args.size(); ++i) v[i] = eval(s, x.args[i], batch, idx);
      return scalar(x.op, v[0], v[1], v[2]);
    }
  }
  return nullptr;
}

// A copy of `s` over one flat axis when every load walks the per-sample
// index space in row-major order or not at all (a broadcast scalar).
bool StepEmitter::flatten(Step& s) {
  if (s.shape.rank() <= 1) return s.shape.rank() == 1;
  const auto rm = row_major(s.shape);
  for (Expr& e : s.exprs) {
    if (e.kind != Expr::Kind::Load) continue;
    bool zero = true, dense = true;
    for (int d = 0; d < s.shape.rank(); ++d) {
      const int64_t st = e.access.strides[static_cast<size_t>(d)];
      zero = zero && st == 0;
      dense = dense && (s.shape[d] == 1 || st == rm[static_cast<size_t>(d)]);
    }
    if (!zero && !dense) return false;
  }
  for (Expr& e : s.exprs)
    if (e.kind == Expr::Kind::Load) {
      bool zero = true;
      for (int64_t st : e.access.strides) zero = zero && st == 0;
      e.access.strides = {zero ? 0 : 1};
    }
  s.shape = Shape{s.shape.numel()};
  return true;
}

// --- reductions ----------------------------------------------------------------

void StepEmitter::reduce(const Step& original) {
  Step s = original;
  const bool all = std::all_of(s.reduced.begin(), s.reduced.end(), [](bool r) { return r; });
  if (all && flatten(s)) s.reduced = {true};
  const int rank = s.shape.rank();
  std::vector<int64_t> kept, red;
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    if (s.reduced[static_cast<size_t>(d)]) {
      red.push_back(s.shape[d]);
      count *= s.shape[d];
    } else {
      kept.push_back(s.shape[d]);
    }
  }
  int64_t out_numel = 1;
  for (int64_t k : kept) out_numel *= k;
  const Buffer& out = p_.buffers[static_cast<size_t>(s.out)];
  const Access out_access{s.out, out.batched ? out_numel : 0, row_major(Shape(kept))};
  llvm::AllocaInst* acc = slot(t_);
  auto full_index = [&](const std::vector<Value*>& k, const std::vector<Value*>& r) {
    std::vector<Value*> idx;
    size_t ki = 0, ri = 0;
    for (int d = 0; d < rank; ++d) idx.push_back(s.reduced[static_cast<size_t>(d)] ? r[ri++] : k[ki++]);
    return idx;
  };
  batch_loop_or_none(s.batched, [&](Value* batch) {
    loops(kept, [&](const std::vector<Value*>& k) {
      auto pass = [&](Op op, Value* init, const std::function<Value*(Value*)>& f) {
        b_.CreateStore(init, acc);
        loops(red, [&](const std::vector<Value*>& r) {
          Value* v = f(eval(s, s.root, batch, full_index(k, r)));
          b_.CreateStore(combine(op, b_.CreateLoad(t_, acc), v), acc);
        });
        return b_.CreateLoad(t_, acc);
      };
      Value* result = nullptr;
      const auto id = [](Value* v) { return v; };
      switch (s.op) {
        case Op::Sum: result = pass(Op::Sum, fp(0), id); break;
        case Op::Mean: result = b_.CreateFDiv(pass(Op::Sum, fp(0), id), fp(static_cast<double>(count))); break;
        case Op::MaxReduce: result = pass(Op::MaxReduce, fp(-INFINITY), id); break;
        case Op::MinReduce: result = pass(Op::MinReduce, fp(INFINITY), id); break;
        case Op::LogSumExp: {
          Value* mx = pass(Op::MaxReduce, fp(-INFINITY), id);
          Value* sum = pass(Op::Sum, fp(0), [&](Value* v) { return exp(b_.CreateFSub(v, mx)); });
          Value* inf = b_.CreateFCmpOEQ(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, mx), fp(INFINITY));
          result = select(inf, mx, b_.CreateFAdd(mx, call("log", {sum})));
          break;
        }
        // Not reductions.
        case Op::Constant: case Op::Var:
        case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
        case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
        case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
        case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
        case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
        case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
        case Op::Where: case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Softmax:
        case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast: case Op::SumTo: case Op::ArgmaxMask:
        case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
          NABLA_ASSERT(false, "not a reduction");
      }
      store(result, s.out, offset(out_access, batch, k));
    });
  });
}

void StepEmitter::batch_mean(const Step& original) {
  Step s = original;
  flatten(s);
  const Access out_access{s.out, 0, row_major(s.shape)};
  loops(s.shape.dims(), [&](const std::vector<Value*>& idx) { store(fp(0), s.out, offset(out_access, nullptr, idx)); });
  loop(n_, [&](Value* batch) {
    loops(s.shape.dims(), [&](const std::vector<Value*>& idx) {
      Value* at = offset(out_access, nullptr, idx);
      store(b_.CreateFAdd(load(s.out, at), eval(s, s.root, batch, idx)), s.out, at);
    });
  });
  Value* inv = b_.CreateFDiv(fp(1), b_.CreateSIToFP(n_, t_));
  loops(s.shape.dims(), [&](const std::vector<Value*>& idx) {
    Value* at = offset(out_access, nullptr, idx);
    store(b_.CreateFMul(load(s.out, at), inv), s.out, at);
  });
}

// --- softmax and the special ops ------------------------------------------------

StepEmitter::Groups StepEmitter::groups(const Shape& shape, int axis) {
  Groups g;
  if (axis < 0) {
    g.len = shape.numel();
    return g;
  }
  for (int d = 0; d < shape.rank(); ++d) {
    if (d < axis) g.outer *= shape[d];
    else if (d > axis) g.inner *= shape[d];
    else g.len = shape[d];
  }
  return g;
}

// Runs body(at(j)) for the groups of the input (batch, outer, inner).
void StepEmitter::for_groups(const Step& s, const Groups& g, const std::function<void(const At&)>& body) {
  const int64_t numel = s.shape.numel();
  batch_loop_or_none(s.batched, [&](Value* batch) {
    Value* base = batch ? b_.CreateMul(batch, i64(numel)) : i64(0);
    loop(g.outer, [&](Value* o) {
      loop(g.inner, [&](Value* c) {
        Value* start = b_.CreateAdd(base, b_.CreateAdd(b_.CreateMul(o, i64(g.len * g.inner)), c));
        body([&, start](Value* j) { return b_.CreateAdd(start, b_.CreateMul(j, i64(g.inner))); });
      });
    });
  });
}

void StepEmitter::softmax(const Step& s) {
  const Groups g = groups(s.shape, s.axis);
  llvm::AllocaInst* acc = slot(t_);
  const int in = s.in.buf;
  for_groups(s, g, [&](const At& at) {
    b_.CreateStore(fp(-INFINITY), acc);
    loop(g.len, [&](Value* j) { b_.CreateStore(maximum(b_.CreateLoad(t_, acc), load(in, at(j))), acc); });
    Value* mx = b_.CreateLoad(t_, acc);
    b_.CreateStore(fp(0), acc);
    loop(g.len, [&](Value* j) {
      b_.CreateStore(combine(Op::Sum, b_.CreateLoad(t_, acc), exp(b_.CreateFSub(load(in, at(j)), mx))), acc);
    });
    Value* sum = b_.CreateLoad(t_, acc);
    if (s.op == Op::Softmax) {
      Value* inv = b_.CreateFDiv(fp(1), sum);
      loop(g.len, [&](Value* j) {
        store(b_.CreateFMul(exp(b_.CreateFSub(load(in, at(j)), mx)), inv), s.out, at(j));
      });
    } else {
      // (z - max) - log(sum), as the interpreter: z - (max + log(sum))
      // would round max + log(sum) at the magnitude of max (a tie at 1e4
      // lost 4e-4 of log 2 in f32).
      Value* log_sum = call("log", {sum});
      loop(g.len, [&](Value* j) {
        store(b_.CreateFSub(b_.CreateFSub(load(in, at(j)), mx), log_sum), s.out, at(j));
      });
    }
  });
}

void StepEmitter::special(const Step& s) {
  switch (s.op) {
    case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: case Op::Maxout:
      return best_of_groups(s);
    case Op::Repeat:
      return repeat(s);
    case Op::GroupSum:
      return group_sum(s);
    // Not special ops.
    case Op::Constant: case Op::Var:
    case Op::Neg: case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
    case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
    case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
    case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
    case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
    case Op::Where: case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Sum:
    case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
    case Op::Softmax: case Op::LogSoftmax: case Op::Broadcast: case Op::SumTo:
      break;
  }
  NABLA_ASSERT(false, "not a special op");
}

// ArgmaxMask, ArgminMask, MaxoutMask (1 at the best element of each group,
// the first of ties) and Maxout (the best value of each group of k).
void StepEmitter::best_of_groups(const Step& s) {
  const int in = s.in.buf;
  const int64_t numel = s.shape.numel();
  const Groups g = s.op == Op::MaxoutMask || s.op == Op::Maxout ? Groups{numel / s.k, s.k, 1}
                                                                : groups(s.shape, s.axis);
  const bool max = s.op != Op::ArgminMask;
  llvm::AllocaInst* best = slot(i64_);
  const int64_t out_numel = s.op == Op::Maxout ? numel / s.k : numel;
  for_groups(s, g, [&](const At& at) {
    b_.CreateStore(i64(0), best);
    if (g.len > 1)
      loop(g.len - 1, [&](Value* j0) {
        Value* j = b_.CreateAdd(j0, i64(1));
        Value* x = load(in, at(j));
        Value* cur = load(in, at(b_.CreateLoad(i64_, best)));
        Value* better = max ? b_.CreateFCmpOGT(x, cur) : b_.CreateFCmpOLT(x, cur);
        b_.CreateStore(b_.CreateSelect(better, j, b_.CreateLoad(i64_, best)), best);
      });
    Value* k = b_.CreateLoad(i64_, best);
    if (s.op == Op::Maxout) {
      // Group g of a batch starts at at(0) = (batch * numel) + g * k.
      Value* start = at(i64(0));
      Value* batch_part = s.batched ? b_.CreateSDiv(start, i64(numel)) : i64(0);
      Value* group = b_.CreateSDiv(b_.CreateSRem(start, i64(numel)), i64(s.k));
      Value* o = b_.CreateAdd(b_.CreateMul(batch_part, i64(out_numel)), group);
      store(load(in, at(k)), s.out, o);
    } else {
      loop(g.len, [&](Value* j) { store(bool_value(b_.CreateICmpEQ(j, k)), s.out, at(j)); });
    }
  });
}

void StepEmitter::repeat(const Step& s) {
  const int in = s.in.buf;
  const int64_t numel = s.shape.numel();
  const int64_t out_numel = numel * s.k;
  batch_loop_or_none(s.batched, [&](Value* batch) {
    loop(out_numel, [&](Value* e) {
      Value* o = e;
      Value* i = b_.CreateSDiv(e, i64(s.k));
      if (batch) {
        o = b_.CreateAdd(o, b_.CreateMul(batch, i64(out_numel)));
        i = b_.CreateAdd(i, b_.CreateMul(batch, i64(numel)));
      }
      store(load(in, i), s.out, o);
    });
  });
}

void StepEmitter::group_sum(const Step& s) {
  const int in = s.in.buf;
  const int64_t numel = s.shape.numel();
  const int64_t out_numel = numel / s.k;
  llvm::AllocaInst* acc = slot(t_);
  batch_loop_or_none(s.batched, [&](Value* batch) {
    loop(out_numel, [&](Value* g) {
      b_.CreateStore(fp(0), acc);
      loop(s.k, [&](Value* r) {
        Value* i = b_.CreateAdd(b_.CreateMul(g, i64(s.k)), r);
        if (batch) i = b_.CreateAdd(i, b_.CreateMul(batch, i64(numel)));
        b_.CreateStore(combine(Op::Sum, b_.CreateLoad(t_, acc), load(in, i)), acc);
      });
      Value* o = batch ? b_.CreateAdd(g, b_.CreateMul(batch, i64(out_numel))) : g;
      store(b_.CreateLoad(t_, acc), s.out, o);
    });
  });
}

}  // namespace nabla::codegen
