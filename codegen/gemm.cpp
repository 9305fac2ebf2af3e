// The GEMM support module: the task split, the blocked GEMM (packing, the
// micro-kernel, storing tiles with the epilogue) and the dot-product GEMM.
#include "codegen/gemm.h"

#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>

#include <algorithm>

#include "codegen/math_lib.h"

namespace nabla::codegen {
namespace {

using llvm::Value;

class GemmEmitter : public MathEmitter {
public:
  // `support`: defining the support module (external linkage).
  GemmEmitter(llvm::Module& module, ir::DType dtype, const EmitTarget& target, bool support = false)
      : MathEmitter(module, dtype, target), support_(support) {}

  // --- GEMMs across threads ---------------------------------------------------
  //
  // A kernel called with a parallel runner (abi.h) splits each large GEMM by
  // columns of C into runner->tasks tasks (at most kGemmMaxTasks), each a
  // call of the same GEMM function on its columns with its own packing
  // scratch; nabla_gemm_task_<dt> is the task, GemmArgs its argument.

  // The GEMM as a model's kernel calls it (blocked or dot, by `kind`): with
  // a runner and enough work, split into tasks; else one call. A support
  // function, so a kernel's call sites stay one call each (the dispatch
  // written out at every call site cost 15 % of the MLP's compile time).
  llvm::Function* gemm_run_function() {
    llvm::StructType* at = gemm_args_type();
    std::vector<llvm::Type*> args(at->element_begin(), at->element_end() - 1);
    args.push_back(ptr_);  // the runner
    args.push_back(i64_);  // the least work (multiply-adds) worth splitting
    return support_function("nabla_gemm_run_", args, {}, {}, [](GemmEmitter& e, llvm::Function* f) {
      std::vector<Value*> a;
      for (unsigned i = 0; i + 2 < f->arg_size(); ++i) a.push_back(f->getArg(i));
      e.gemm_run(a, f->getArg(f->arg_size() - 2), f->getArg(f->arg_size() - 1));
    });
  }

  // The task: columns [t * chunk, (t + 1) * chunk) of C (chunk a multiple of
  // the tile's 32 columns), its packing scratch the t-th of `tasks` slots.
  llvm::Function* gemm_task_function() {
    return support_function("nabla_gemm_task_", {ptr_, i64_}, {}, {}, [](GemmEmitter& e, llvm::Function* f) {
      e.gemm_task(f->getArg(0), f->getArg(1));
    });
  }

  // C (+)= alpha A B where A(i, k) = A[i*a_rs + k] and B(k, j) = B[j*b_cs + k]
  // (both contiguous along k), without packing: 4 x 4 tiles of dot products,
  // each a vector accumulator over k, summed across lanes at the end. The
  // module's one such function (strides are arguments).
  llvm::Function* gemm_dot_function() {
    const std::vector<llvm::Type*> args = {ptr_, i64_, ptr_, i64_, ptr_, i64_, i64_, i64_, i64_, i64_, t_,
                                           b_.getInt1Ty()};
    // Buffers: A, B (read), C (written); A and B may be one array.
    return support_function("nabla_gemm_dot_", args, {0, 2, 4}, {0, 0, 1}, [](GemmEmitter& e, llvm::Function* f) {
      e.gemm_dot(f->getArg(1), f->getArg(3), f->getArg(5), f->getArg(6), f->getArg(7), f->getArg(8), f->getArg(9),
                 f->getArg(10), f->getArg(11));
    });
  }

  // C = alpha A B as plain loops over C's rows, B's and C's rows
  // contiguous: a product over few k (the backward pass's delta W at a
  // batch of a few samples). Row i of C is stored once with its k = 0
  // product, then the products of k = 1.. are added to it, through the
  // helpers a kernel's own loops use (plus_product, add_later_products):
  // the same bits. The module's
  // one such function, compiled with the support object rather than in
  // every kernel (the MLP 784-256-256-10's cold compile: 103 -> 90 ms).
  llvm::Function* gemm_rows_function() {
    const std::vector<llvm::Type*> args = {ptr_, i64_, i64_, ptr_, i64_, ptr_, i64_, i64_, i64_, i64_, t_};
    // Buffers: A, B (read; may be one array), C (written).
    return support_function("nabla_gemm_rows_", args, {0, 3, 5}, {0, 0, 1}, [](GemmEmitter& e, llvm::Function* f) {
      e.gemm_rows(f->getArg(1), f->getArg(2), f->getArg(4), f->getArg(6), f->getArg(7), f->getArg(8), f->getArg(9),
                  f->getArg(10));
    });
  }

  // The module's one blocked-GEMM function (strides are arguments): every
  // large GEMM of both kernels calls it, so its code is compiled once.
  llvm::Function* gemm_function() {
    const std::vector<llvm::Type*> args = {ptr_, i64_, i64_, ptr_, i64_, i64_, ptr_, i64_, i64_,
                                           i64_, i64_, i64_, t_, b_.getInt1Ty(), ptr_, ptr_, b_.getInt1Ty(), ptr_};
    // Buffers: A, B, C, the packing scratch, the epilogue's bias and mask
    // (null: none; the mask laid out as C); all distinct. Argument 16: relu
    // in the epilogue.
    return support_function("nabla_gemm_", args, {0, 3, 6, 14, 15, 17}, {0, 1, 2, 3, 4, 5},
                            [](GemmEmitter& e, llvm::Function* f) {
      e.gemm_blocked({0, f->getArg(1), f->getArg(2)}, {1, f->getArg(4), f->getArg(5)},
                     {2, f->getArg(7), f->getArg(8)}, 3, f->getArg(9), f->getArg(10), f->getArg(11), f->getArg(12),
                     f->getArg(13), 4, f->getArg(16), 5);
    });
  }

private:
  // gemm_rows_function's body: buffers 0 (A), 1 (B), 2 (C).
  void gemm_rows(Value* a_rs, Value* a_cs, Value* b_rs, Value* c_rs, Value* M, Value* N, Value* K, Value* alpha) {
    loop0(M, [&](Value* i) {
      Value* a_row = b_.CreateMul(i, a_rs);
      auto coef = [&](Value* k) { return b_.CreateFMul(alpha, load(0, b_.CreateAdd(a_row, b_.CreateMul(k, a_cs)))); };
      auto b = [&](Value* k, Value* j) { return load(1, b_.CreateAdd(b_.CreateMul(k, b_rs), j)); };
      auto c_at = [&](Value* j) { return b_.CreateAdd(b_.CreateMul(i, c_rs), j); };
      Value* a0 = coef(i64(0));
      loop(N, [&](Value* j) { store(plus_product(fp(0), a0, b(i64(0), j)), 2, c_at(j)); });
      add_later_products(K, N, coef, b, 2, c_at);
    });
  }

  // GemmArgs: kind (0 blocked, 1 dot), then the blocked GEMM's arguments,
  // whether the tasks split the rows of C (else its columns), the tasks.
  llvm::StructType* gemm_args_type() {
    auto* i1 = b_.getInt1Ty();
    return llvm::StructType::get(c_, {i64_, ptr_, i64_, i64_, ptr_, i64_, i64_, ptr_, i64_, i64_, i64_, i64_, i64_, t_,
                                      i1, ptr_, ptr_, i1, ptr_, i1, i64_});
  }

  // A GEMM function of the support module, or its declaration in a model's
  // module (external_gemm). `buffers` are the pointer arguments the body's
  // buffer numbers stand for; `regions` gives each its alias scope (equal:
  // may overlap). `body` emits the code with a fresh emitter.
  llvm::Function* support_function(const std::string& stem, const std::vector<llvm::Type*>& args,
                                   const std::vector<unsigned>& buffers, const std::vector<size_t>& regions,
                                   const std::function<void(GemmEmitter&, llvm::Function*)>& body) {
    const std::string name = stem + ir::dtype_name(dtype_);
    if (llvm::Function* f = m_.getFunction(name)) return f;
    auto* f = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(c_), args, false),
                                     target_.external_gemm || support_ ? llvm::Function::ExternalLinkage
                                                                       : llvm::Function::InternalLinkage,
                                     name, m_);
    f->addFnAttr(llvm::Attribute::NoInline);
    if (target_.external_gemm) return f;  // defined by the support module
    GemmEmitter e(m_, dtype_, target_);
    e.set_attributes(f);
    e.f_ = f;
    e.entry_ = llvm::BasicBlock::Create(c_, "entry", f);
    e.b_.SetInsertPoint(e.entry_);
    e.make_scopes(stem, regions);
    for (size_t i = 0; i < buffers.size(); ++i) {
      const bool shared = std::count(regions.begin(), regions.end(), regions[i]) > 1;
      if (!shared) f->getArg(buffers[i])->addAttr(llvm::Attribute::NoAlias);
      e.base_.push_back(f->getArg(buffers[i]));
    }
    body(e, f);
    e.b_.CreateRetVoid();
    return f;
  }

  void gemm_run(const std::vector<Value*>& args, Value* par, Value* min_work) {
    Value* work = b_.CreateMul(b_.CreateMul(args[10], args[11]), args[12]);
    auto* parallel = llvm::BasicBlock::Create(c_, "gemm.parallel", f_);
    auto* one = llvm::BasicBlock::Create(c_, "gemm.serial", f_);
    auto* blocked = llvm::BasicBlock::Create(c_, "gemm.blocked", f_);
    auto* dot = llvm::BasicBlock::Create(c_, "gemm.dot", f_);
    auto* end = llvm::BasicBlock::Create(c_, "gemm.called", f_);
    b_.CreateCondBr(b_.CreateAnd(b_.CreateIsNotNull(par), b_.CreateICmpSGE(work, min_work)), parallel, one);
    b_.SetInsertPoint(parallel);
    {
      Value* tasks = runner_tasks(par);
      llvm::StructType* at = gemm_args_type();
      llvm::AllocaInst* slot_args = slot(at);
      for (unsigned i = 0; i < args.size(); ++i) b_.CreateStore(args[i], b_.CreateStructGEP(at, slot_args, i));
      b_.CreateStore(tasks, b_.CreateStructGEP(at, slot_args, static_cast<unsigned>(args.size())));
      run_tasks(par, tasks, gemm_task_function(), slot_args);
      b_.CreateBr(end);
    }
    b_.SetInsertPoint(one);
    b_.CreateCondBr(b_.CreateICmpEQ(args[0], i64(0)), blocked, dot);
    b_.SetInsertPoint(blocked);
    b_.CreateCall(gemm_function(), std::vector<Value*>(args.begin() + 1, args.end() - 1));  // not split_rows
    b_.CreateBr(end);
    b_.SetInsertPoint(dot);
    const auto& a = args;
    b_.CreateCall(gemm_dot_function(), {a[1], a[2], a[4], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]});
    b_.CreateBr(end);
    b_.SetInsertPoint(end);
  }

  // Task t of T: a chunk of C's columns (or rows, with split_rows), the
  // chunk a multiple of 32 (kGemmMaxNR), its packing scratch the t-th of T
  // slots. Rows: a weight gradient or update (C shaped like W, k the batch)
  // split as the forward product x W^T splits its columns, so each thread
  // keeps the same rows of W in its cache from one product to the next.
  void gemm_task(Value* args, Value* t) {
    llvm::StructType* at = gemm_args_type();
    std::vector<Value*> a;
    for (unsigned i = 0; i < at->getNumElements(); ++i)
      a.push_back(b_.CreateLoad(at->getElementType(i), b_.CreateStructGEP(at, args, i)));
    Value *M = a[10], *N = a[11], *by_rows = a[19], *tasks = a[20];
    Value* extent = b_.CreateSelect(by_rows, M, N);
    Value* chunk = task_chunk(extent, tasks);
    Value* first = min(b_.CreateMul(t, chunk), extent);
    Value* count = b_.CreateSub(min(b_.CreateAdd(first, chunk), extent), first);
    auto* run = llvm::BasicBlock::Create(c_, "task.run", f_);
    auto* done = llvm::BasicBlock::Create(c_, "task.done", f_);
    b_.CreateCondBr(b_.CreateICmpSGT(count, i64(0)), run, done);
    b_.SetInsertPoint(run);
    auto shift = [&](Value* p, Value* elems) { return b_.CreateInBoundsGEP(t_, p, elems); };
    Value* i0 = b_.CreateSelect(by_rows, first, i64(0));
    Value* j0 = b_.CreateSelect(by_rows, i64(0), first);
    Value* rows = b_.CreateSelect(by_rows, count, M);
    Value* cols = b_.CreateSelect(by_rows, N, count);
    Value* A = shift(a[1], b_.CreateMul(i0, a[2]));
    Value* B = shift(a[4], b_.CreateMul(j0, a[6]));
    Value* c_at = b_.CreateAdd(b_.CreateMul(i0, a[8]), b_.CreateMul(j0, a[9]));
    Value* C = shift(a[7], c_at);
    Value* bias = b_.CreateSelect(b_.CreateIsNull(a[16]), a[16], shift(a[16], j0));
    Value* mask = b_.CreateSelect(b_.CreateIsNull(a[18]), a[18], shift(a[18], c_at));
    // Every task's packing slot is the same size, gemm_scratch(chunk) (a
    // column split) or gemm_scratch(N) (a row split), so slot t starts where
    // slot t - 1 ends, whatever columns the last task has.
    Value* slot_cols = b_.CreateSelect(by_rows, b_.CreateMul(ceil_div(N, kGemmMaxNR), i64(kGemmMaxNR)), chunk);
    Value* slot_size = i64(kGemmMC * kGemmKC + kGemmMaxMR * kGemmMaxNR);
    slot_size = b_.CreateAdd(slot_size, b_.CreateMul(i64(kGemmKC), slot_cols));
    Value* scratch = b_.CreateSelect(b_.CreateIsNull(a[15]), a[15], shift(a[15], b_.CreateMul(t, slot_size)));
    auto* blocked = llvm::BasicBlock::Create(c_, "task.blocked", f_);
    auto* dot = llvm::BasicBlock::Create(c_, "task.dot", f_);
    b_.CreateCondBr(b_.CreateICmpEQ(a[0], i64(0)), blocked, dot);
    b_.SetInsertPoint(blocked);
    b_.CreateCall(gemm_function(), {A, a[2], a[3], B, a[5], a[6], C, a[8], a[9], rows, cols, a[12], a[13], a[14],
                                    scratch, bias, a[17], mask});
    b_.CreateBr(done);
    b_.SetInsertPoint(dot);
    b_.CreateCall(gemm_dot_function(), {A, a[2], B, a[6], C, a[8], a[9], rows, cols, a[12], a[13], a[14]});
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  // Vector accumulators over k in [from, to) (a multiple of VL * U apart),
  // U vectors of k a trip: acc[(r * C + c) * U + u] += A row r x B column c
  // at k + u * VL. Returns the accumulators after the loop.
  std::vector<Value*> dot_loop(const std::vector<Value*>& rows, const std::vector<Value*>& cols, Value* a_rs,
                               Value* b_cs, Value* from, Value* to, int64_t VL, int64_t U,
                               const std::vector<Value*>& init) {
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* body = llvm::BasicBlock::Create(c_, "dot", f_);
    auto* done = llvm::BasicBlock::Create(c_, "dot.end", f_);
    b_.CreateCondBr(b_.CreateICmpSLT(from, to), body, done);
    b_.SetInsertPoint(body);
    llvm::PHINode* k = b_.CreatePHI(i64_, 2);
    k->addIncoming(from, pre);
    std::vector<llvm::PHINode*> phis;
    for (Value* v : init) {
      phis.push_back(b_.CreatePHI(vec(VL), 2));
      phis.back()->addIncoming(v, pre);
    }
    std::vector<Value*> next(phis.begin(), phis.end());
    for (int64_t u = 0; u < U; ++u) {
      Value* ku = b_.CreateAdd(k, i64(u * VL));
      std::vector<Value*> av, bv;
      for (Value* r : rows) av.push_back(vload(0, b_.CreateAdd(b_.CreateMul(r, a_rs), ku), VL));
      for (Value* c : cols) bv.push_back(vload(1, b_.CreateAdd(b_.CreateMul(c, b_cs), ku), VL));
      for (size_t r = 0; r < rows.size(); ++r)
        for (size_t c = 0; c < cols.size(); ++c) {
          Value*& acc = next[(r * cols.size() + c) * static_cast<size_t>(U) + static_cast<size_t>(u)];
          acc = b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec(VL)}, {av[r], bv[c], acc});
        }
    }
    Value* k1 = b_.CreateAdd(k, i64(VL * U), "", true, true);
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    k->addIncoming(k1, latch);
    for (size_t i = 0; i < phis.size(); ++i) phis[i]->addIncoming(next[i], latch);
    b_.CreateCondBr(b_.CreateICmpSLT(k1, to), body, done);
    b_.SetInsertPoint(done);
    std::vector<Value*> out;
    for (size_t i = 0; i < phis.size(); ++i) {
      llvm::PHINode* phi = b_.CreatePHI(vec(VL), 2);
      phi->addIncoming(init[i], pre);
      phi->addIncoming(next[i], latch);
      out.push_back(phi);
    }
    return out;
  }

  // C (+)= alpha A B for A and B both running along k (x W^T), without
  // packing: tiles of dot products (4 x 4), each a vector accumulator over
  // k (U of them where the tile has fewer than the target's dot_chains, so
  // the FMA latency is covered), summed across lanes at the end; the rest
  // of k element by element. The rows past a multiple of 4 (batch 1
  // inference is all such rows) take one column (a row of W) at a time with
  // dot_chains accumulators: W streams as one run of memory. On Zen 5, with
  // the MLP's W1 (256 x 784, in L2) 64-byte aligned, one sample's x W1^T
  // took 7.0-7.1 us in 1 x 4 tiles of 2 accumulators and takes 5.2-5.8 us.
  void gemm_dot(Value* a_rs, Value* b_cs, Value* c_rs, Value* c_cs, Value* M, Value* N, Value* K, Value* alpha,
                Value* accumulate) {
    const int64_t VL = choice_.vl;
    constexpr int64_t T = 4;
    Value* kv = b_.CreateMul(b_.CreateSDiv(K, i64(VL)), i64(VL));  // vectorized part of k
    // Dot products of rows rows[r] of A with columns cols[c] of B, into C.
    auto tile = [&](const std::vector<Value*>& rows, const std::vector<Value*>& cols) {
      const size_t R = rows.size(), Cn = cols.size();
      const int64_t U = R * Cn == 1 ? choice_.dot_chains
                                    : std::clamp<int64_t>(choice_.dot_chains / static_cast<int64_t>(R * Cn), 1, 4);
      Value* ku = b_.CreateMul(b_.CreateSDiv(K, i64(VL * U)), i64(VL * U));
      std::vector<Value*> acc(R * Cn * static_cast<size_t>(U), llvm::Constant::getNullValue(vec(VL)));
      acc = dot_loop(rows, cols, a_rs, b_cs, i64(0), ku, VL, U, acc);
      std::vector<Value*> one;  // the U copies summed
      for (size_t i = 0; i < R * Cn; ++i) {
        Value* v = acc[i * static_cast<size_t>(U)];
        for (int64_t u = 1; u < U; ++u) v = b_.CreateFAdd(v, acc[i * static_cast<size_t>(U) + static_cast<size_t>(u)]);
        one.push_back(v);
      }
      if (U > 1) one = dot_loop(rows, cols, a_rs, b_cs, ku, kv, VL, 1, one);
      std::vector<Value*> sums;
      for (Value* v : one) sums.push_back(reduce_add(v));
      // The remainder of k, element by element.
      llvm::AllocaInst* tail = slot(t_);
      for (size_t r = 0; r < R; ++r)
        for (size_t c = 0; c < Cn; ++c) {
          b_.CreateStore(sums[r * Cn + c], tail);
          loop0(b_.CreateSub(K, kv), [&](Value* t) {
            Value* kk = b_.CreateAdd(kv, t);
            Value* prod = b_.CreateFMul(load(0, b_.CreateAdd(b_.CreateMul(rows[r], a_rs), kk)),
                                        load(1, b_.CreateAdd(b_.CreateMul(cols[c], b_cs), kk)));
            b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(t_, tail), prod), tail);
          });
          Value* c_at = b_.CreateAdd(b_.CreateMul(rows[r], c_rs), b_.CreateMul(cols[c], c_cs));
          Value* old = b_.CreateSelect(accumulate, load(2, c_at), fp(0));
          store(b_.CreateFAdd(old, b_.CreateFMul(alpha, b_.CreateLoad(t_, tail))), 2, c_at);
        }
    };
    Value* m4 = b_.CreateSDiv(M, i64(T));
    Value* n4 = b_.CreateSDiv(N, i64(T));
    auto group = [&](Value* tj) {
      std::vector<Value*> cols;
      for (int64_t c = 0; c < T; ++c) cols.push_back(b_.CreateAdd(b_.CreateMul(tj, i64(T)), i64(c)));
      return cols;
    };
    loop0(m4, [&](Value* ti) {
      std::vector<Value*> rows;
      for (int64_t r = 0; r < T; ++r) rows.push_back(b_.CreateAdd(b_.CreateMul(ti, i64(T)), i64(r)));
      loop0(n4, [&](Value* tj) { tile(rows, group(tj)); });
      loop0(b_.CreateSub(N, b_.CreateMul(n4, i64(T))), [&](Value* j) {
        tile(rows, {b_.CreateAdd(b_.CreateMul(n4, i64(T)), j)});
      });
    });
    loop0(b_.CreateSub(M, b_.CreateMul(m4, i64(T))), [&](Value* i) {
      Value* row = b_.CreateAdd(b_.CreateMul(m4, i64(T)), i);
      loop0(N, [&](Value* j) { tile({row}, {j}); });
    });
  }

  // --- the blocked GEMM ---------------------------------------------------------
  //
  // The GotoBLAS loop nest: K in blocks of KC; per block, B packed into
  // panels of NR columns and, per MC rows, A packed into panels of MR rows;
  // an MR x NR register tile per panel pair, kept in vector registers over
  // the block's k (explicit vector IR: one broadcast of A and NR/VL loads of
  // B feed MR * NR/VL fused multiply-adds per k). Packing reads any strides,
  // so NN, NT (x W^T) and TN (the batch-reducing weight gradient) all run
  // the same micro-kernel.
  struct MatV {
    int buf;
    Value *rs, *cs;
  };
  Value* at(const MatV& x, Value* r, Value* c) { return b_.CreateAdd(b_.CreateMul(r, x.rs), b_.CreateMul(c, x.cs)); }

  // One call's operands (buffer numbers) and the tiling for the host.
  struct Blocked {
    MatV A, B, C;
    int sc, bias, mask;  // the packing scratch; the epilogue's bias and mask (null: none)
    Value *M, *N, *K, *alpha, *accumulate, *relu;
    Value *has_bias = nullptr, *has_mask = nullptr;
    int64_t VL = 0, NR = 0, MR = 0, NV = 0;  // vector lanes; the tile is MR x NR, NV vectors a row
    Value* panels = nullptr;                 // of B
    Value *ap = nullptr, *bp = nullptr, *tile = nullptr;  // in the scratch: packed A, packed B, an edge tile
    Value *b_along_k = nullptr, *a_along_k = nullptr;
  };
  // One block of k: from pc, kc long.
  struct KBlock {
    Value *pc = nullptr, *kc = nullptr;
    Value* first = nullptr;     // C's old value not read (the first block, not accumulating)
    Value* epilogue = nullptr;  // bias, relu, mask applied (the last block)
  };

  void gemm_blocked(const MatV& A, const MatV& B, const MatV& C, int sc, Value* M, Value* N, Value* K,
                    Value* alpha, Value* accumulate, int bias, Value* relu, int mask) {
    Blocked g{A, B, C, sc, bias, mask, M, N, K, alpha, accumulate, relu};
    g.has_bias = b_.CreateIsNotNull(base_[static_cast<size_t>(bias)]);
    g.has_mask = b_.CreateIsNotNull(base_[static_cast<size_t>(mask)]);
    g.VL = choice_.vl;
    g.NR = choice_.nr;
    g.MR = choice_.mr;
    g.NV = g.NR / g.VL;
    const int64_t KC = choice_.kc, MC = choice_.mc;
    g.panels = ceil_div(N, g.NR);
    Value* npad = b_.CreateMul(ceil_div(N, kGemmMaxNR), i64(kGemmMaxNR));
    g.ap = i64(0);
    g.bp = i64(MC * KC);
    g.tile = b_.CreateAdd(i64(MC * KC), b_.CreateMul(i64(KC), npad));
    g.b_along_k = b_.CreateAnd(b_.CreateICmpEQ(B.rs, i64(1)), b_.CreateICmpNE(B.cs, i64(1)));
    g.a_along_k = b_.CreateAnd(b_.CreateICmpEQ(A.cs, i64(1)), b_.CreateICmpNE(A.rs, i64(1)));
    // K in equal blocks of at most KC (784 = 4 x 196, not 3 x 256 + 16).
    Value* kblocks = ceil_div(K, KC);
    Value* kc_size = b_.CreateSDiv(b_.CreateAdd(K, b_.CreateSub(kblocks, i64(1))), kblocks);
    loop(kblocks, [&](Value* kb) {
      KBlock k;
      k.pc = b_.CreateMul(kb, kc_size);
      k.kc = min(kc_size, b_.CreateSub(K, k.pc));
      k.first = b_.CreateAnd(b_.CreateNot(accumulate), b_.CreateICmpEQ(kb, i64(0)));
      // The epilogue (bias, relu) once, as the last block's tiles are stored.
      k.epilogue = b_.CreateAnd(b_.CreateICmpEQ(kb, b_.CreateSub(kblocks, i64(1))),
                                b_.CreateOr(b_.CreateOr(g.has_bias, relu), g.has_mask));
      pack_b(g, k);
      loop(ceil_div(M, MC), [&](Value* ib) {
        Value* ic = b_.CreateMul(ib, i64(MC));
        Value* mc = min(i64(MC), b_.CreateSub(M, ic));
        Value* rows_panels = ceil_div(mc, g.MR);
        pack_a(g, k, ic, mc, rows_panels);
        loop(g.panels, [&](Value* p) { loop(rows_panels, [&](Value* q) { emit_tile(g, k, ic, p, q); }); });
      });
    });
  }

  // Pack B: panel p holds columns p*NR.. as kc rows of NR (the last panel
  // zero-padded).
  void pack_b(const Blocked& g, const KBlock& k) {
    const int sc = g.sc;
    const int64_t NR = g.NR;
    Value *bp = g.bp, *kc = k.kc;
    {
      Value* last = b_.CreateMul(b_.CreateSub(g.panels, i64(1)), b_.CreateMul(kc, i64(NR)));
      loop(b_.CreateMul(kc, i64(NR)), [&](Value* e) { store(fp(0), sc, b_.CreateAdd(bp, b_.CreateAdd(last, e))); });
    }
    loop(g.panels, [&](Value* p) { pack_b_panel(g, k, p); });
  }

  void pack_b_panel(const Blocked& g, const KBlock& k, Value* p) {
    const MatV& B = g.B;
    const int sc = g.sc;
    const int64_t NR = g.NR, VL = g.VL, NV = g.NV;
    Value *pc = k.pc, *kc = k.kc;
    Value* j0 = b_.CreateMul(p, i64(NR));
    Value* cols = min(i64(NR), b_.CreateSub(g.N, j0));
    Value* panel = b_.CreateAdd(g.bp, b_.CreateMul(p, b_.CreateMul(kc, i64(NR))));
    auto copy = [&](Value* kk, Value* r) {
      Value* v = load(B.buf, at(B, b_.CreateAdd(pc, kk), b_.CreateAdd(j0, r)));
      store(v, sc, b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(kk, i64(NR)), r)));
    };
    // B rows contiguous along n (NN, TN) and a whole panel: NR/VL vector
    // copies per k.
    Value* b_rows = b_.CreateAnd(b_.CreateICmpEQ(B.cs, i64(1)), b_.CreateICmpEQ(cols, i64(NR)));
    branch(g.b_along_k, [&] { pack_transposed(B, sc, pc, kc, j0, cols, panel, NR, VL, copy); },
           [&] {
             branch(b_rows, [&] {
               loop(kc, [&](Value* kk) {
                 for (int64_t v = 0; v < NV; ++v)
                   vstore(vload(B.buf, at(B, b_.CreateAdd(pc, kk), b_.CreateAdd(j0, i64(v * VL))), VL), sc,
                          b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(kk, i64(NR)), i64(v * VL))));
               }, true);
             }, [&] { loop(kc, [&](Value* kk) { loop(cols, [&](Value* r) { copy(kk, r); }); }); });
           });
  }

  // Pack A: panel q holds rows ic + q*MR.. as kc columns of MR. A
  // operand running along k is not packed: the micro-kernel broadcasts
  // from its rows directly (each cache line serves 16 k).
  void pack_a(const Blocked& g, const KBlock& k, Value* ic, Value* mc, Value* rows_panels) {
    const int sc = g.sc;
    const int64_t MR = g.MR;
    Value *ap = g.ap, *kc = k.kc;
    branch(g.a_along_k, [] {}, [&] {
      Value* last = b_.CreateMul(b_.CreateSub(rows_panels, i64(1)), b_.CreateMul(kc, i64(MR)));
      loop(b_.CreateMul(kc, i64(MR)), [&](Value* e) { store(fp(0), sc, b_.CreateAdd(ap, b_.CreateAdd(last, e))); });
      loop(rows_panels, [&](Value* q) { pack_a_panel(g, k, ic, mc, q); });
    });
  }

  void pack_a_panel(const Blocked& g, const KBlock& k, Value* ic, Value* mc, Value* q) {
    const MatV& A = g.A;
    const int sc = g.sc;
    const int64_t MR = g.MR;
    Value *pc = k.pc, *kc = k.kc;
    Value* i0 = b_.CreateAdd(ic, b_.CreateMul(q, i64(MR)));
    Value* rows = min(i64(MR), b_.CreateSub(b_.CreateAdd(ic, mc), i0));
    Value* panel = b_.CreateAdd(g.ap, b_.CreateMul(q, b_.CreateMul(kc, i64(MR))));
    // A columns contiguous along m (TN: the weight gradient's
    // Delta^T) and a whole panel: one MR-wide vector copy per k.
    Value* a_cols = b_.CreateAnd(b_.CreateICmpEQ(A.rs, i64(1)), b_.CreateICmpEQ(rows, i64(MR)));
    branch(a_cols, [&] {
      loop(kc, [&](Value* kk) {
        vstore(vload(A.buf, at(A, i0, b_.CreateAdd(pc, kk)), MR), sc,
               b_.CreateAdd(panel, b_.CreateMul(kk, i64(MR))));
      }, true);
    }, [&] {
      loop(kc, [&](Value* kk) {
        loop(rows, [&](Value* r) {
          Value* v = load(A.buf, at(A, b_.CreateAdd(i0, r), b_.CreateAdd(pc, kk)));
          store(v, sc, b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(kk, i64(MR)), r)));
        });
      });
    });
  }

  // The tile of A panel q and B panel p: its product over the block's k,
  // added to C (or stored, in the first block) with alpha and the epilogue.
  void emit_tile(const Blocked& g, const KBlock& k, Value* ic, Value* p, Value* q) {
    const int64_t MR = g.MR, NR = g.NR, VL = g.VL;
    Value *M = g.M, *N = g.N;
    Value* a0 = b_.CreateAdd(g.ap, b_.CreateMul(q, b_.CreateMul(k.kc, i64(MR))));
    Value* b0 = b_.CreateAdd(g.bp, b_.CreateMul(p, b_.CreateMul(k.kc, i64(NR))));
    Value* i0 = b_.CreateAdd(ic, b_.CreateMul(q, i64(MR)));
    const std::vector<Value*> acc = tile_product(g, k, a0, b0, i0);
    Value* j0 = b_.CreateMul(p, i64(NR));
    Value* valpha = b_.CreateVectorSplat(static_cast<unsigned>(VL), g.alpha);
    Value* full = b_.CreateAnd(b_.CreateICmpSLE(b_.CreateAdd(i0, i64(MR)), M),
                               b_.CreateICmpSLE(b_.CreateAdd(j0, i64(NR)), N));
    full = b_.CreateAnd(full, b_.CreateICmpEQ(g.C.cs, i64(1)));
    auto* fast = llvm::BasicBlock::Create(c_, "tile.full", f_);
    auto* slow = llvm::BasicBlock::Create(c_, "tile.edge", f_);
    auto* done = llvm::BasicBlock::Create(c_, "tile.end", f_);
    b_.CreateCondBr(full, fast, slow);
    b_.SetInsertPoint(fast);
    branch(k.epilogue, [&] { store_tile(g, k, acc, i0, j0, valpha, true); },
           [&] { store_tile(g, k, acc, i0, j0, valpha, false); });
    b_.CreateBr(done);
    b_.SetInsertPoint(slow);
    store_edge_tile(g, k, acc, i0, j0);
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  // The tile's accumulators. Row r of the panel: packed at a0 + r (k stride
  // MR), or row min(i0 + r, M - 1) of A itself from column pc (k stride
  // A.cs; rows past M repeat the last one, their results are not stored).
  // Two copies of the micro-kernel, so the packed one addresses A from one
  // pointer (a select of the two would keep MR pointers live, more than
  // there are registers).
  std::vector<Value*> tile_product(const Blocked& g, const KBlock& k, Value* a0, Value* b0, Value* i0) {
    const MatV& A = g.A;
    const int sc = g.sc;
    const int64_t MR = g.MR, NR = g.NR, VL = g.VL;
    Value *M = g.M, *pc = k.pc, *kc = k.kc;
    auto* direct_bb = llvm::BasicBlock::Create(c_, "micro.direct", f_);
    auto* packed_bb = llvm::BasicBlock::Create(c_, "micro.packed", f_);
    auto* joined = llvm::BasicBlock::Create(c_, "micro.joined", f_);
    b_.CreateCondBr(g.a_along_k, direct_bb, packed_bb);
    b_.SetInsertPoint(direct_bb);
    std::vector<Value*> rows;
    for (int64_t r = 0; r < MR; ++r) {
      Value* row = min(b_.CreateAdd(i0, i64(r)), b_.CreateSub(M, i64(1)));
      rows.push_back(b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(A.buf)], at(A, row, pc)));
    }
    std::vector<Value*> acc_direct = micro_kernel(sc, rows, i64(1), b0, kc, MR, NR, VL);
    llvm::BasicBlock* direct_end = b_.GetInsertBlock();
    b_.CreateBr(joined);
    b_.SetInsertPoint(packed_bb);
    rows.clear();
    for (int64_t r = 0; r < MR; ++r)
      rows.push_back(b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(sc)], b_.CreateAdd(a0, i64(r))));
    std::vector<Value*> acc_packed = micro_kernel(sc, rows, i64(MR), b0, kc, MR, NR, VL);
    llvm::BasicBlock* packed_end = b_.GetInsertBlock();
    b_.CreateBr(joined);
    b_.SetInsertPoint(joined);
    std::vector<Value*> acc;
    for (size_t i = 0; i < acc_direct.size(); ++i) {
      llvm::PHINode* phi = b_.CreatePHI(vec(VL), 2);
      phi->addIncoming(acc_direct[i], direct_end);
      phi->addIncoming(acc_packed[i], packed_end);
      acc.push_back(phi);
    }
    return acc;
  }

  // A whole tile, C row-major: C = alpha acc + C's old value, as vectors.
  void store_tile(const Blocked& g, const KBlock& k, const std::vector<Value*>& acc, Value* i0, Value* j0,
                  Value* valpha, bool with_epilogue) {
    const MatV& C = g.C;
    const int sc = g.sc, bias = g.bias, mask = g.mask;
    const int64_t MR = g.MR, VL = g.VL, NV = g.NV;
    Value *has_bias = g.has_bias, *has_mask = g.has_mask, *first = k.first;
    std::vector<Value*> bv(static_cast<size_t>(NV));
    if (with_epilogue)
      for (int64_t v = 0; v < NV; ++v) {
        // Without a bias (or mask) the load reads the scratch and
        // its value is dropped: so these loads carry no alias
        // scope (one would claim they never touch the scratch).
        Value* j = b_.CreateSelect(has_bias, b_.CreateAdd(j0, i64(v * VL)), i64(0));
        Value* ptr = b_.CreateSelect(has_bias, base_[static_cast<size_t>(bias)], base_[static_cast<size_t>(sc)]);
        Value* at_j = b_.CreateInBoundsGEP(t_, ptr, j);
        Value* loaded = b_.CreateAlignedLoad(vec(VL), at_j, llvm::Align(elem_bytes()));
        bv[static_cast<size_t>(v)] = b_.CreateSelect(has_bias, loaded, llvm::Constant::getNullValue(vec(VL)));
      }
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t v = 0; v < NV; ++v) {
        Value* c_at = at(C, b_.CreateAdd(i0, i64(r)), b_.CreateAdd(j0, i64(v * VL)));
        Value* old = b_.CreateSelect(first, llvm::Constant::getNullValue(vec(VL)), vload(C.buf, c_at, VL));
        Value* sum = b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec(VL)},
                                        {valpha, acc[static_cast<size_t>(r * NV + v)], old});
        if (with_epilogue) {
          sum = epilogue_value(sum, bv[static_cast<size_t>(v)], g.relu);
          Value* ptr = b_.CreateSelect(has_mask, base_[static_cast<size_t>(mask)], base_[static_cast<size_t>(sc)]);
          Value* m_at = b_.CreateSelect(has_mask, c_at, i64(0));
          Value* m = b_.CreateAlignedLoad(vec(VL), b_.CreateInBoundsGEP(t_, ptr, m_at), llvm::Align(elem_bytes()));
          sum = b_.CreateSelect(has_mask, mask_value(sum, m), sum);
        }
        vstore(sum, C.buf, c_at);
      }
  }

  // A tile at the edge of C (or C not row-major): through the scratch, then
  // element by element, the epilogue applied in the last block.
  void store_edge_tile(const Blocked& g, const KBlock& k, const std::vector<Value*>& acc, Value* i0, Value* j0) {
    const MatV& C = g.C;
    const int sc = g.sc, bias = g.bias, mask = g.mask;
    const int64_t MR = g.MR, NR = g.NR, VL = g.VL, NV = g.NV;
    Value *M = g.M, *N = g.N, *tile = g.tile, *alpha = g.alpha, *has_bias = g.has_bias, *has_mask = g.has_mask;
    Value *first = k.first, *epilogue = k.epilogue;
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t v = 0; v < NV; ++v)
        vstore(acc[static_cast<size_t>(r * NV + v)], sc, b_.CreateAdd(tile, i64(r * NR + v * VL)));
    loop(min(i64(MR), b_.CreateSub(M, i0)), [&](Value* r) {
      loop(min(i64(NR), b_.CreateSub(N, j0)), [&](Value* c) {
        Value* c_at = at(C, b_.CreateAdd(i0, r), b_.CreateAdd(j0, c));
        Value* old = b_.CreateSelect(first, fp(0), load(C.buf, c_at));
        Value* t = load(sc, b_.CreateAdd(tile, b_.CreateAdd(b_.CreateMul(r, i64(NR)), c)));
        // As a whole tile computes it (fmuladd), so an element has the same
        // bits whether it lies in an edge tile or a whole one (a task's rows
        // start where the one call's tiles do not).
        Value* sum = b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {t_}, {alpha, t, old});
        branch(epilogue, [&] {
          Value* bj = b_.CreateSelect(has_bias, b_.CreateAdd(j0, c), i64(0));
          Value* ptr = b_.CreateSelect(has_bias, base_[static_cast<size_t>(bias)], base_[static_cast<size_t>(sc)]);
          Value* loaded = b_.CreateLoad(t_, b_.CreateInBoundsGEP(t_, ptr, bj));
          Value* v = epilogue_value(sum, b_.CreateSelect(has_bias, loaded, fp(0)), g.relu);
          Value* mptr = b_.CreateSelect(has_mask, base_[static_cast<size_t>(mask)], base_[static_cast<size_t>(sc)]);
          Value* m = b_.CreateLoad(t_, b_.CreateInBoundsGEP(t_, mptr, b_.CreateSelect(has_mask, c_at, i64(0))));
          store(b_.CreateSelect(has_mask, mask_value(v, m), v), C.buf, c_at);
        }, [&] { store(sum, C.buf, c_at); });
      });
    });
  }

  // Packs a B running along k (x W^T: B(k, j) = W[j][k]) into a panel
  // (row kk at panel + kk * NR): VL x VL blocks are read as VL vectors along
  // k, transposed in registers, and written as VL vectors along j; what is
  // left (k beyond a multiple of VL, columns beyond a multiple of VL) goes
  // element by element through `copy(kk, r)`.
  void pack_transposed(const MatV& B, int sc, Value* pc, Value* kc, Value* j0, Value* cols, Value* panel, int64_t NR,
                       int64_t VL, const std::function<void(Value*, Value*)>& copy) {
    Value* kv = b_.CreateMul(b_.CreateSDiv(kc, i64(VL)), i64(VL));
    Value* cv = b_.CreateMul(b_.CreateSDiv(cols, i64(VL)), i64(VL));
    loop0(b_.CreateSDiv(cols, i64(VL)), [&](Value* g) {
      loop0(b_.CreateSDiv(kc, i64(VL)), [&](Value* kb) {
        Value* k0 = b_.CreateMul(kb, i64(VL));
        Value* c0 = b_.CreateMul(g, i64(VL));
        std::vector<Value*> v;
        for (int64_t t = 0; t < VL; ++t)
          v.push_back(vload(B.buf, at(B, b_.CreateAdd(pc, k0), b_.CreateAdd(j0, b_.CreateAdd(c0, i64(t)))), VL));
        // Stage b swaps bit b of the row and column index: after every bit,
        // element (t, k) sits at (k, t).
        for (int64_t bit = 1; bit < VL; bit *= 2)
          for (int64_t i = 0; i < VL; ++i) {
            if (i & bit) continue;
            std::vector<int> lo, hi;
            for (int64_t j = 0; j < VL; ++j) {
              lo.push_back(static_cast<int>((j & bit) ? VL + (j ^ bit) : j));
              hi.push_back(static_cast<int>((j & bit) ? VL + j : (j ^ bit)));
            }
            Value* x = v[static_cast<size_t>(i)];
            Value* y = v[static_cast<size_t>(i | bit)];
            v[static_cast<size_t>(i)] = b_.CreateShuffleVector(x, y, lo);
            v[static_cast<size_t>(i | bit)] = b_.CreateShuffleVector(x, y, hi);
          }
        for (int64_t t = 0; t < VL; ++t)
          vstore(v[static_cast<size_t>(t)], sc,
                 b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(k0, i64(t)), i64(NR)), c0)));
      });
    });
    loop0(cols, [&](Value* r) {
      Value* from = b_.CreateSelect(b_.CreateICmpSLT(r, cv), kv, i64(0));
      loop0(b_.CreateSub(kc, from), [&](Value* i) { copy(b_.CreateAdd(from, i), r); }, true);
    });
  }

  // The register tile: sum over k < kc of A panel column k (MR values) times
  // B panel row k (NR values), as MR * NR/VL vector accumulators.
  std::vector<Value*> micro_kernel(int sc, const std::vector<Value*>& a_rows, Value* a_kstride, Value* b0, Value* kc,
                                   int64_t MR, int64_t NR, int64_t VL) {
    const int64_t NV = NR / VL;
    constexpr int64_t U = 4;  // k steps per trip of the main loop
    const size_t count = static_cast<size_t>(MR * NV);
    // One k step: acc[r][v] += A[k][r] * B[k][v].
    auto step = [&](Value* k, const std::vector<Value*>& acc) {
      std::vector<Value*> bv;
      Value* brow = b_.CreateAdd(b0, b_.CreateMul(k, i64(NR)));
      for (int64_t v = 0; v < NV; ++v) bv.push_back(vload(sc, b_.CreateAdd(brow, i64(v * VL)), VL));
      Value* koff = b_.CreateMul(k, a_kstride);
      std::vector<Value*> next;
      for (int64_t r = 0; r < MR; ++r) {
        Value* x = b_.CreateLoad(t_, b_.CreateInBoundsGEP(t_, a_rows[static_cast<size_t>(r)], koff));
        Value* a = b_.CreateVectorSplat(static_cast<unsigned>(VL), x);
        for (int64_t v = 0; v < NV; ++v)
          next.push_back(b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec(VL)},
                                            {a, bv[static_cast<size_t>(v)], acc[static_cast<size_t>(r * NV + v)]}));
      }
      return next;
    };
    auto phis_from = [&](llvm::BasicBlock* from, const std::vector<Value*>& init) {
      std::vector<llvm::PHINode*> phis;
      for (size_t i = 0; i < count; ++i) {
        phis.push_back(b_.CreatePHI(vec(VL), 2));
        phis.back()->addIncoming(init[i], from);
      }
      return phis;
    };
    const std::vector<Value*> zeros(count, llvm::Constant::getNullValue(vec(VL)));
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* main = llvm::BasicBlock::Create(c_, "micro", f_);
    auto* mid = llvm::BasicBlock::Create(c_, "micro.rest", f_);
    auto* rem = llvm::BasicBlock::Create(c_, "micro.tail", f_);
    auto* exit = llvm::BasicBlock::Create(c_, "micro.end", f_);
    Value* kmain = b_.CreateAnd(kc, i64(~(U - 1)));
    b_.CreateCondBr(b_.CreateICmpSGT(kmain, i64(0)), main, mid);
    // Main loop: U steps a trip.
    b_.SetInsertPoint(main);
    llvm::PHINode* k = b_.CreatePHI(i64_, 2);
    k->addIncoming(i64(0), pre);
    std::vector<llvm::PHINode*> acc = phis_from(pre, zeros);
    std::vector<Value*> cur(acc.begin(), acc.end());
    for (int64_t u = 0; u < U; ++u) cur = step(b_.CreateAdd(k, i64(u)), cur);
    Value* k1 = b_.CreateAdd(k, i64(U), "", true, true);
    llvm::BasicBlock* main_end = b_.GetInsertBlock();
    k->addIncoming(k1, main_end);
    for (size_t i = 0; i < count; ++i) acc[i]->addIncoming(cur[i], main_end);
    b_.CreateCondBr(b_.CreateICmpSLT(k1, kmain), main, mid);
    // The rest: kc % U single steps.
    b_.SetInsertPoint(mid);
    std::vector<llvm::PHINode*> after_main = phis_from(pre, zeros);
    for (size_t i = 0; i < count; ++i) after_main[i]->addIncoming(cur[i], main_end);
    b_.CreateCondBr(b_.CreateICmpSLT(kmain, kc), rem, exit);
    b_.SetInsertPoint(rem);
    llvm::PHINode* kr = b_.CreatePHI(i64_, 2);
    kr->addIncoming(kmain, mid);
    std::vector<llvm::PHINode*> racc = phis_from(mid, std::vector<Value*>(after_main.begin(), after_main.end()));
    std::vector<Value*> rcur = step(kr, std::vector<Value*>(racc.begin(), racc.end()));
    Value* kr1 = b_.CreateAdd(kr, i64(1), "", true, true);
    llvm::BasicBlock* rem_end = b_.GetInsertBlock();
    kr->addIncoming(kr1, rem_end);
    for (size_t i = 0; i < count; ++i) racc[i]->addIncoming(rcur[i], rem_end);
    b_.CreateCondBr(b_.CreateICmpSLT(kr1, kc), rem, exit);
    b_.SetInsertPoint(exit);
    std::vector<Value*> result;
    for (size_t i = 0; i < count; ++i) {
      llvm::PHINode* phi = b_.CreatePHI(vec(VL), 2);
      phi->addIncoming(after_main[i], mid);
      phi->addIncoming(rcur[i], rem_end);
      result.push_back(phi);
    }
    return result;
  }

  bool support_;
};

}  // namespace

llvm::Function* gemm_run_function(llvm::Module& module, ir::DType dtype, const EmitTarget& target) {
  return GemmEmitter(module, dtype, target).gemm_run_function();
}

llvm::Function* gemm_rows_function(llvm::Module& module, ir::DType dtype, const EmitTarget& target) {
  return GemmEmitter(module, dtype, target).gemm_rows_function();
}

void define_gemm_functions(llvm::Module& module, ir::DType dtype, const EmitTarget& target) {
  GemmEmitter e(module, dtype, target, true);
  e.gemm_function();
  e.gemm_dot_function();
  e.gemm_task_function();
  e.gemm_run_function();
  e.gemm_rows_function();
}

}  // namespace nabla::codegen
