#include "codegen/emit.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/Utils/ModuleUtils.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <unordered_map>
#include <numbers>

#include "ir/assert.h"

namespace nabla::codegen {
namespace {

using ir::Op;
using llvm::Value;

class FunctionEmitter {
public:
  FunctionEmitter(llvm::Module& module, const Program& program, const EmitTarget& target)
      : m_(module), c_(module.getContext()), b_(c_), p_(program), target_(target) {
    t_ = program.dtype == ir::DType::F32 ? llvm::Type::getFloatTy(c_) : llvm::Type::getDoubleTy(c_);
    i64_ = llvm::Type::getInt64Ty(c_);
    ptr_ = llvm::PointerType::get(c_, 0);
  }

  // The kernel: (inputs, params, outputs, n, ws) or
  // (inputs, labels, params, loss, grads, n, ws).
  // sgd: (inputs, labels, params, loss, rate, n, ws), params updated in place.
  // NAME_par takes one more argument, the parallel runner (abi.h; null:
  // one thread); NAME calls it with null.
  void emit_kernel(const std::string& name, bool gradient, bool sgd = false) {
    std::vector<llvm::Type*> args = gradient
        ? std::vector<llvm::Type*>{ptr_, ptr_, ptr_, ptr_, ptr_, i64_, ptr_}
        : std::vector<llvm::Type*>{ptr_, ptr_, ptr_, i64_, ptr_};
    {
      auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(c_), args, false);
      llvm::Function* plain = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, name, m_);
      set_attributes(plain);
      for (auto& a : plain->args())
        if (a.getType()->isPointerTy()) a.addAttr(llvm::Attribute::NoAlias);
      std::vector<llvm::Type*> par_args = args;
      par_args.push_back(ptr_);
      f_ = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(c_), par_args, false),
                                  llvm::Function::ExternalLinkage, name + "_par", m_);
      llvm::IRBuilder<> w(llvm::BasicBlock::Create(c_, "entry", plain));
      std::vector<Value*> pass;
      for (auto& a : plain->args()) pass.push_back(&a);
      pass.push_back(llvm::ConstantPointerNull::get(ptr_));
      w.CreateCall(f_, pass);
      w.CreateRetVoid();
    }
    set_attributes(f_);
    f_->addFnAttr(llvm::Attribute::NoInline);  // one copy of the body, not two
    for (auto& a : f_->args())
      if (a.getType()->isPointerTy()) a.addAttr(llvm::Attribute::NoAlias);
    par_ = f_->getArg(f_->arg_size() - 1);
    gradient_kernel_ = gradient;
    auto* entry = llvm::BasicBlock::Create(c_, "entry", f_);
    auto* body = llvm::BasicBlock::Create(c_, "body", f_);
    auto* done = llvm::BasicBlock::Create(c_, "done", f_);
    b_.SetInsertPoint(entry);
    entry_ = entry;
    llvm::Argument* a = f_->getArg(0);
    llvm::Value *inputs = a, *labels = nullptr, *params, *outputs = nullptr, *loss = nullptr,
                *grads = nullptr, *ws, *rate = nullptr;
    if (gradient) {
      labels = f_->getArg(1);
      params = f_->getArg(2);
      loss = f_->getArg(3);
      (sgd ? rate : grads) = f_->getArg(4);
      n_ = f_->getArg(5);
      ws = f_->getArg(6);
    } else {
      params = f_->getArg(1);
      outputs = f_->getArg(2);
      n_ = f_->getArg(3);
      ws = f_->getArg(4);
    }
    b_.CreateCondBr(b_.CreateICmpSLT(n_, i64(1)), done, body);
    b_.SetInsertPoint(body);
    make_alias_scopes();
    const int64_t esize = elem_bytes();
    for (const Buffer& buf : p_.buffers) {
      auto arg = [&](Value* array) {
        return b_.CreateLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, array, static_cast<uint64_t>(buf.index)));
      };
      Value* base = nullptr;
      switch (buf.kind) {
        case BufKind::Input: base = arg(inputs); break;
        case BufKind::Label: base = arg(labels); break;
        case BufKind::Param: base = arg(params); break;
        case BufKind::Output: base = arg(outputs); break;
        case BufKind::Grad: base = arg(grads); break;
        case BufKind::Loss: base = loss; break;
        case BufKind::Rate: base = rate; break;
        case BufKind::Temp: {
          Value* off = buf.batched
              ? b_.CreateAdd(i64(p_.workspace_fixed * esize), b_.CreateMul(n_, i64(buf.offset * esize)))
              : i64(buf.offset * esize);
          base = b_.CreateInBoundsGEP(b_.getInt8Ty(), ws, off);
          break;
        }
      }
      base_.push_back(base);
    }
    last_read_.assign(p_.buffers.size(), -1);
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& st = p_.steps[i];
      auto read = [&](int buf) {
        if (buf >= 0) last_read_[static_cast<size_t>(buf)] = static_cast<int>(i);
      };
      for (const Expr& e : st.exprs)
        if (e.kind == Expr::Kind::Load) read(e.access.buf);
      read(st.in.buf);
      read(st.a.buf);
      read(st.b.buf);
      read(st.bias);
      read(st.mask);
      if (st.accumulate) read(st.c.buf);
    }
    for (size_t i = 0; i < p_.steps.size();) {
      if (initializes_gemm(i)) {
        gemm(p_.steps[i + 1], &p_.steps[i]);
        i += 2;
        continue;
      }
      if (p_.steps[i].kind != StepKind::Elementwise) {
        emit_step(p_.steps[i++]);
        continue;
      }
      const size_t end = fusible_run(i);
      std::vector<const Step*> group;
      for (size_t j = i; j < end; ++j) group.push_back(&p_.steps[j]);
      elementwise(group, static_cast<int>(end));
      i = end;
    }
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
    b_.CreateRetVoid();
  }

  void emit_workspace_function(const std::string& name) {
    auto* fty = llvm::FunctionType::get(i64_, {i64_}, false);
    auto* f = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, name, m_);
    set_attributes(f);
    b_.SetInsertPoint(llvm::BasicBlock::Create(c_, "entry", f));
    const int64_t esize = elem_bytes();
    b_.CreateRet(b_.CreateAdd(i64((p_.workspace_fixed + 16) * esize),
                              b_.CreateMul(f->getArg(0), i64(p_.workspace_batched * esize))));
  }

private:
  int64_t elem_bytes() const { return p_.dtype == ir::DType::F32 ? 4 : 8; }
  Value* i64(int64_t v) { return llvm::ConstantInt::get(i64_, static_cast<uint64_t>(v), true); }
  Value* fp(double v) { return llvm::ConstantFP::get(t_, v); }

  void set_attributes(llvm::Function* f) {
    f->addFnAttr(llvm::Attribute::NoUnwind);
    if (!target_.cpu.empty()) f->addFnAttr("target-cpu", target_.cpu);
    if (!target_.features.empty()) f->addFnAttr("target-features", target_.features);
    if (target_.avx512) f->addFnAttr("prefer-vector-width", "512");
  }

  // --- alias scopes: one per region of memory --------------------------------

  void make_alias_scopes() {
    // Temps that share workspace memory (at different times) share a scope;
    // every other buffer is distinct memory by the ABI's contract.
    const size_t nb = p_.buffers.size();
    std::vector<size_t> cls(nb);
    for (size_t i = 0; i < nb; ++i) cls[i] = i;
    std::function<size_t(size_t)> find = [&](size_t x) { return cls[x] == x ? x : cls[x] = find(cls[x]); };
    for (size_t i = 0; i < nb; ++i)
      for (size_t j = i + 1; j < nb; ++j) {
        const Buffer &a = p_.buffers[i], &b = p_.buffers[j];
        if (a.kind != BufKind::Temp || b.kind != BufKind::Temp || a.batched != b.batched) continue;
        const int64_t sa = std::max<int64_t>(a.shape.numel(), 1), sb = std::max<int64_t>(b.shape.numel(), 1);
        if (a.offset < b.offset + sb && b.offset < a.offset + sa) cls[find(i)] = find(j);
      }
    llvm::MDBuilder mdb(c_);
    llvm::MDNode* domain = mdb.createAnonymousAliasScopeDomain("nabla");
    std::map<size_t, llvm::MDNode*> scope;
    for (size_t i = 0; i < nb; ++i)
      if (!scope.count(find(i))) scope[find(i)] = mdb.createAnonymousAliasScope(domain);
    for (size_t i = 0; i < nb; ++i) region_.push_back(find(i));
    for (size_t i = 0; i < nb; ++i) {
      std::vector<llvm::Metadata*> others;
      for (const auto& [k, s] : scope)
        if (k != find(i)) others.push_back(s);
      scope_of_.push_back(llvm::MDNode::get(c_, {scope[find(i)]}));
      noalias_of_.push_back(llvm::MDNode::get(c_, others));
    }
  }

  Value* address(int buf, Value* offset) {
    return b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(buf)], offset);
  }
  template <typename I>
  I* tag(I* inst, int buf) {
    inst->setMetadata(llvm::LLVMContext::MD_alias_scope, scope_of_[static_cast<size_t>(buf)]);
    inst->setMetadata(llvm::LLVMContext::MD_noalias, noalias_of_[static_cast<size_t>(buf)]);
    return inst;
  }
  Value* load(int buf, Value* offset) { return tag(b_.CreateLoad(t_, address(buf, offset)), buf); }
  void store(Value* v, int buf, Value* offset) { tag(b_.CreateStore(v, address(buf, offset)), buf); }

  // --- loops -------------------------------------------------------------------

  // for (i = 0; i < count; ++i) body(i); count >= 1 (sizes are positive and n >= 1).
  void loop(Value* count, const std::function<void(Value*)>& body, bool scalar = false) {
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* head = llvm::BasicBlock::Create(c_, "loop", f_);
    auto* exit = llvm::BasicBlock::Create(c_, "loop.end", f_);
    b_.CreateBr(head);
    b_.SetInsertPoint(head);
    llvm::PHINode* i = b_.CreatePHI(i64_, 2);
    i->addIncoming(i64(0), pre);
    body(i);
    Value* next = b_.CreateAdd(i, i64(1), "", true, true);
    i->addIncoming(next, b_.GetInsertBlock());
    llvm::BranchInst* latch = b_.CreateCondBr(b_.CreateICmpSLT(next, count), head, exit);
    if (scalar) {
      // Not vectorized: a strided copy would become scatters or gathers,
      // slower than scalar moves.
      llvm::Metadata* off[] = {llvm::MDString::get(c_, "llvm.loop.vectorize.enable"),
                               llvm::ConstantAsMetadata::get(b_.getFalse())};
      llvm::MDNode* flag = llvm::MDNode::get(c_, off);
      llvm::MDNode* self = llvm::MDNode::getDistinct(c_, {nullptr, flag});
      self->replaceOperandWith(0, self);
      latch->setMetadata(llvm::LLVMContext::MD_loop, self);
    }
    b_.SetInsertPoint(exit);
  }
  void loop(int64_t count, const std::function<void(Value*)>& body, bool scalar = false) {
    loop(i64(count), body, scalar);
  }

  // Nested loops over `dims` (outermost first); body gets one index per dim.
  void loops(const std::vector<int64_t>& dims, const std::function<void(const std::vector<Value*>&)>& body,
             std::vector<Value*> idx = {}) {
    if (idx.size() == dims.size()) {
      body(idx);
      return;
    }
    loop(dims[idx.size()], [&](Value* i) {
      std::vector<Value*> next = idx;
      next.push_back(i);
      loops(dims, body, next);
    });
  }

  // body(batch index) over the batch, or body(nullptr) once.
  void batch_loop_or_none(bool batched, const std::function<void(Value*)>& body) {
    if (batched) loop(n_, body);
    else body(nullptr);
  }

  llvm::AllocaInst* slot(llvm::Type* type) {
    llvm::IRBuilder<> at(entry_, entry_->begin());
    return at.CreateAlloca(type);
  }

  Value* offset(const Access& a, Value* batch, const std::vector<Value*>& idx) {
    Value* off = i64(0);
    if (batch && a.batch_stride) off = b_.CreateMul(batch, i64(a.batch_stride));
    for (size_t d = 0; d < idx.size(); ++d)
      if (a.strides[d]) off = b_.CreateAdd(off, b_.CreateMul(idx[d], i64(a.strides[d])));
    return off;
  }

  // --- scalar math ---------------------------------------------------------------

  std::string libm(const char* name) const {
    return p_.dtype == ir::DType::F32 ? std::string(name) + "f" : std::string(name);
  }

  // A call to libm's `name` (no side effects), naming its libmvec variants so
  // the loop vectorizer can call those instead.
  Value* call(const char* name, std::vector<Value*> args) {
    const std::string fname = libm(name);
    std::vector<llvm::Type*> types(args.size(), t_);
    auto* fty = llvm::FunctionType::get(t_, types, false);
    llvm::Function* fn = m_.getFunction(fname);
    if (!fn) {
      fn = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, fname, m_);
      fn->setDoesNotThrow();
      fn->setDoesNotAccessMemory();
      fn->addFnAttr(llvm::Attribute::WillReturn);
    }
    llvm::CallInst* ci = b_.CreateCall(fn, args);
    // Not rewritten to LLVM intrinsics (whose vector forms the backend would
    // scalarize): the vectorizer maps the call to its libmvec variants.
    ci->addFnAttr(llvm::Attribute::NoBuiltin);
    const std::string params(args.size(), 'v');
    std::string variants;
    const bool f32 = p_.dtype == ir::DType::F32;
    struct Isa { char letter; int f32_lanes, f64_lanes; };
    std::vector<Isa> isas = {{'b', 4, 2}, {'d', 8, 4}};
    if (target_.avx512) isas.push_back({'e', 16, 8});
    for (const Isa& isa : isas) {
      const int lanes = f32 ? isa.f32_lanes : isa.f64_lanes;
      const std::string vname = std::string("_ZGV") + isa.letter + "N" + std::to_string(lanes) + params + "_" + fname;
      if (!m_.getFunction(vname)) {
        auto* vt = llvm::FixedVectorType::get(t_, static_cast<unsigned>(lanes));
        std::vector<llvm::Type*> vtypes(args.size(), vt);
        auto* vf = llvm::Function::Create(llvm::FunctionType::get(vt, vtypes, false),
                                          llvm::Function::ExternalLinkage, vname, m_);
        vf->setDoesNotThrow();
        vf->setDoesNotAccessMemory();
        // Kept alive until the vectorizer has looked (as InjectTLIMappings does).
        llvm::appendToCompilerUsed(m_, {vf});
      }
      if (!variants.empty()) variants += ",";
      variants += "_ZGV_LLVM_N" + std::to_string(lanes) + params + "_" + fname + "(" + vname + ")";
    }
    ci->addFnAttr(llvm::Attribute::get(c_, "vector-function-abi-variant", variants));
    return ci;
  }

  Value* fmuladd(Value* a, Value* b, Value* c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {t_}, {a, b, c});
  }

  // exp. f64 calls libm (its libmvec variants once vectorized): 1e-14
  // relative wants its care. f32 is computed inline, so the vectorized loop
  // keeps everything in registers (a libmvec call clobbers every vector
  // register: B5 spent its time spilling around it). Cody-Waite reduction
  // x = n ln2 + r with |r| <= ln2/2 (ln2 split so n ln2 is exact), Cephes'
  // degree-6 minimax polynomial for e^r, and 2^n applied as two powers of two
  // so results in the subnormal range round once and large x overflow to inf.
  // NaN passes through (the clamps compare false); within 2 ulp on the normal
  // range (tested).
  Value* exp(Value* x) {
    if (p_.dtype != ir::DType::F32) return call("exp", {x});
    auto& B = b_;
    x = select(B.CreateFCmpOGT(x, fp(89.0)), fp(89.0), x);
    x = select(B.CreateFCmpOLT(x, fp(-104.0)), fp(-104.0), x);
    Value* n = B.CreateUnaryIntrinsic(llvm::Intrinsic::rint, B.CreateFMul(x, fp(std::numbers::log2e)));
    Value* r = fmuladd(n, fp(-0.693359375), x);
    r = fmuladd(n, fp(2.12194440e-4), r);
    Value* p = fp(1.9875691500e-4);
    for (double c : {1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1})
      p = fmuladd(p, r, fp(c));
    Value* e = fmuladd(B.CreateFMul(r, r), p, B.CreateFAdd(r, fp(1)));
    auto* i32 = llvm::Type::getInt32Ty(c_);
    Value* k = B.CreateFreeze(B.CreateFPToSI(n, i32));  // NaN x: defined (any k; the result is NaN)
    Value* k1 = B.CreateAShr(k, 1);
    Value* k2 = B.CreateSub(k, k1);
    auto pow2 = [&](Value* ki) {
      return B.CreateBitCast(B.CreateShl(B.CreateAdd(ki, llvm::ConstantInt::get(i32, 127)), 23), t_);
    };
    return B.CreateFMul(B.CreateFMul(e, pow2(k1)), pow2(k2));
  }

  Value* maximum(Value* a, Value* b) { return b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, a, b); }
  Value* minimum(Value* a, Value* b) { return b_.CreateBinaryIntrinsic(llvm::Intrinsic::minimum, a, b); }
  Value* select(Value* c, Value* a, Value* b) { return b_.CreateSelect(c, a, b); }
  Value* bool_value(Value* c) { return select(c, fp(1), fp(0)); }

  // sigmoid without overflow: e = exp(-|x|); x >= 0 ? 1/(1+e) : e/(1+e).
  Value* sigmoid(Value* x) {
    Value* e = exp(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
    Value* r = b_.CreateFDiv(fp(1), b_.CreateFAdd(fp(1), e));
    return select(b_.CreateFCmpOGE(x, fp(0)), r, b_.CreateFMul(e, r));
  }

  Value* scalar(Op op, Value* a, Value* b, Value* c) {
    auto& B = b_;
    switch (op) {
      case Op::Neg: return B.CreateFNeg(a);
      case Op::Exp: return exp(a);
      case Op::Log: return call("log", {a});
      case Op::Sqrt: return B.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, a);
      case Op::Abs: return B.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, a);
      case Op::Sign:
        return select(B.CreateFCmpOGT(a, fp(0)), fp(1), select(B.CreateFCmpOLT(a, fp(0)), fp(-1), a));
      case Op::Sin: return call("sin", {a});
      case Op::Cos: return call("cos", {a});
      case Op::Erf: return call("erf", {a});
      case Op::Tanh: return call("tanh", {a});
      case Op::Sigmoid: return sigmoid(a);
      case Op::Softplus:
        return B.CreateFAdd(maximum(a, fp(0)),
                            call("log1p", {exp(B.CreateFNeg(B.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, a)))}));
      case Op::Relu: return maximum(a, fp(0));
      case Op::HardSigmoid: return maximum(minimum(B.CreateFAdd(B.CreateFMul(fp(0.25), a), fp(0.5)), fp(1)), fp(0));
      case Op::HardTanh: return maximum(minimum(a, fp(1)), fp(-1));
      case Op::Gelu:
        return B.CreateFMul(B.CreateFMul(fp(0.5), a),
                            B.CreateFAdd(fp(1), call("erf", {B.CreateFMul(a, fp(1 / std::numbers::sqrt2))})));
      case Op::GeluTanh: {
        const double k = std::sqrt(2.0 / std::numbers::pi);
        Value* cube = B.CreateFMul(B.CreateFMul(B.CreateFMul(fp(0.044715), a), a), a);
        Value* t = call("tanh", {B.CreateFMul(fp(k), B.CreateFAdd(a, cube))});
        return B.CreateFMul(B.CreateFMul(fp(0.5), a), B.CreateFAdd(fp(1), t));
      }
      case Op::GeluSigmoid: return B.CreateFMul(a, sigmoid(B.CreateFMul(fp(1.702), a)));
      case Op::Add: return B.CreateFAdd(a, b);
      case Op::Sub: return B.CreateFSub(a, b);
      case Op::Mul: return B.CreateFMul(a, b);
      case Op::Div: return B.CreateFDiv(a, b);
      case Op::Pow:
        if (auto* k = llvm::dyn_cast<llvm::ConstantFP>(b)) {
          const double e = k->getValueAPF().convertToDouble();
          if (e == 1) return a;
          if (e == 2) return B.CreateFMul(a, a);
        }
        return call("pow", {a, b});
      case Op::Max: return maximum(a, b);
      case Op::Min: return minimum(a, b);
      case Op::LeakyRelu: return select(B.CreateFCmpOGT(a, fp(0)), a, B.CreateFMul(b, a));
      case Op::Elu: return select(B.CreateFCmpOGT(a, fp(0)), a, B.CreateFMul(b, call("expm1", {a})));
      case Op::Swish: return B.CreateFMul(a, sigmoid(B.CreateFMul(b, a)));
      case Op::Lt: return bool_value(B.CreateFCmpOLT(a, b));
      case Op::Le: return bool_value(B.CreateFCmpOLE(a, b));
      case Op::Gt: return bool_value(B.CreateFCmpOGT(a, b));
      case Op::Ge: return bool_value(B.CreateFCmpOGE(a, b));
      case Op::Eq: return bool_value(B.CreateFCmpOEQ(a, b));
      case Op::Ne: return bool_value(B.CreateFCmpUNE(a, b));
      case Op::Where: return select(B.CreateFCmpUNE(a, fp(0)), b, c);
      // Not elementwise.
      case Op::Constant: case Op::Var:
      case Op::MatMul: case Op::Outer: case Op::Transpose: case Op::Sum: case Op::Mean:
      case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp: case Op::Softmax:
      case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast: case Op::SumTo: case Op::ArgmaxMask:
      case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
        break;
    }
    NABLA_ASSERT(false, std::string("not elementwise: ") + ir::op_name(op));
    return nullptr;
  }

  Value* eval(const Step& s, int e, Value* batch, const std::vector<Value*>& idx) {
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

  // --- steps ----------------------------------------------------------------------

  // A copy of `s` over one flat axis when every load walks the per-sample
  // index space in row-major order or not at all (a broadcast scalar).
  static bool flatten(Step& s) {
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

  void emit_step(const Step& step) {
    switch (step.kind) {
      case StepKind::Elementwise: return elementwise({&step});
      case StepKind::Reduce: return reduce(step);
      case StepKind::BatchMean: return batch_mean(step);
      case StepKind::Softmax: return softmax(step);
      case StepKind::Special: return special(step);
      case StepKind::Gemm: return gemm(step);
    }
  }

  // The end of the run of elementwise steps from `first` that can share one
  // loop (horizontal fusion): the same index space after flattening, every
  // value a later step reads from an earlier one read at the same element,
  // and no step writing memory that another step of the run reads.
  size_t fusible_run(size_t first) {
    Step head = p_.steps[first];
    flatten(head);
    std::vector<int> written{head.out};
    std::vector<size_t> read;
    auto note_reads = [&](const Step& s) {
      for (const Expr& e : s.exprs)
        if (e.kind == Expr::Kind::Load) read.push_back(region_[static_cast<size_t>(e.access.buf)]);
    };
    note_reads(head);
    size_t j = first + 1;
    for (; j < p_.steps.size(); ++j) {
      const Step& next = p_.steps[j];
      if (next.kind != StepKind::Elementwise || next.batched != head.batched || initializes_gemm(j)) break;
      Step f = next;
      flatten(f);
      if (f.shape != head.shape) break;
      bool ok = std::find(read.begin(), read.end(), region_[static_cast<size_t>(f.out)]) == read.end();
      for (const Expr& e : f.exprs) {
        if (!ok || e.kind != Expr::Kind::Load) continue;
        if (std::find(written.begin(), written.end(), e.access.buf) == written.end()) continue;
        const Buffer& b = p_.buffers[static_cast<size_t>(e.access.buf)];
        const auto rm = row_major(f.shape);
        ok = e.access.strides == rm && e.access.batch_stride == (b.batched ? f.shape.numel() : 0);
      }
      for (int w : written) ok = ok && region_[static_cast<size_t>(w)] != region_[static_cast<size_t>(f.out)];
      if (!ok) break;
      written.push_back(f.out);
      note_reads(f);
    }
    return j;
  }

  // One loop nest computing every step of `group` (elementwise steps over the
  // same index space), each stored to its own buffer.
  // `after`: the index of the first step after the group; a temp no later
  // step reads stays in registers.
  void elementwise(const std::vector<const Step*>& group, int after = -1) {
    std::vector<Step> steps;
    for (const Step* g : group) {
      steps.push_back(*g);
      flatten(steps.back());
    }
    const Shape shape = steps[0].shape;
    const bool batched = steps[0].batched;
    const int64_t numel = shape.numel();
    // Fully flat over the batch too: one loop over n * numel.
    bool whole = batched && shape.rank() == 1;
    for (const Step& s : steps)
      for (const Expr& e : s.exprs)
        if (e.kind == Expr::Kind::Load && whole)
          whole = (e.access.strides[0] == 1 && e.access.batch_stride == numel) ||
                  (e.access.strides[0] == 0 && e.access.batch_stride == 0);
    if (whole) {
      for (Step& s : steps)
        for (Expr& e : s.exprs)
          if (e.kind == Expr::Kind::Load) e.access.batch_stride = 0;
      loop(b_.CreateMul(n_, i64(numel)), [&](Value* i) {
        for (const Step& s : steps) keep(s.out, eval(s, s.root, nullptr, {i}), after, i);
        local_.clear();
      });
      return;
    }
    batch_loop_or_none(batched, [&](Value* batch) {
      loops(shape.dims(), [&](const std::vector<Value*>& idx) {
        for (const Step& s : steps) {
          const Buffer& out = p_.buffers[static_cast<size_t>(s.out)];
          const Access out_access{s.out, out.batched ? numel : 0, row_major(shape)};
          keep(s.out, eval(s, s.root, batch, idx), after, offset(out_access, batch, idx));
        }
        local_.clear();
      });
    });
  }

  // A fused loop's result: available to the rest of the iteration, and stored
  // unless it is a temp no step after the group reads.
  void keep(int buf, Value* v, int after, Value* offset) {
    local_[buf] = v;
    const Buffer& b = p_.buffers[static_cast<size_t>(buf)];
    if (after < 0 || b.kind != BufKind::Temp || last_read_[static_cast<size_t>(buf)] >= after) store(v, buf, offset);
  }

  // acc = op(acc, v) for a reduction; reassociable so loops vectorize.
  Value* combine(Op op, Value* acc, Value* v) {
    if (op == Op::MaxReduce) return maximum(acc, v);
    if (op == Op::MinReduce) return minimum(acc, v);
    auto* add = llvm::cast<llvm::Instruction>(b_.CreateFAdd(acc, v));
    llvm::FastMathFlags fmf;
    fmf.setAllowReassoc();
    add->setFastMathFlags(fmf);
    return add;
  }

  void reduce(const Step& original) {
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

  void batch_mean(const Step& original) {
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

  // The groups of a softmax-like op: outer x len x inner, the op along len.
  struct Groups {
    int64_t outer = 1, len = 1, inner = 1;
  };
  static Groups groups(const Shape& shape, int axis) {
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
  void for_groups(const Step& s, const Groups& g,
                  const std::function<void(const std::function<Value*(Value*)>&)>& body) {
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

  void softmax(const Step& s) {
    const Groups g = groups(s.shape, s.axis);
    llvm::AllocaInst* acc = slot(t_);
    const int in = s.in.buf;
    for_groups(s, g, [&](const std::function<Value*(Value*)>& at) {
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

  void special(const Step& s) {
    const int in = s.in.buf;
    const int64_t numel = s.shape.numel();
    switch (s.op) {
      case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: case Op::Maxout: {
        const Groups g = s.op == Op::MaxoutMask || s.op == Op::Maxout ? Groups{numel / s.k, s.k, 1}
                                                                      : groups(s.shape, s.axis);
        const bool max = s.op != Op::ArgminMask;
        llvm::AllocaInst* best = slot(i64_);
        const int64_t out_numel = s.op == Op::Maxout ? numel / s.k : numel;
        for_groups(s, g, [&](const std::function<Value*(Value*)>& at) {
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
        return;
      }
      case Op::Repeat: {
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
        return;
      }
      case Op::GroupSum: {
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
        return;
      }
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

  Value* dim(const Dim& d) { return d.times_n ? b_.CreateMul(n_, i64(d.value)) : i64(d.value); }

  llvm::Instruction* contract(Value* v) {
    auto* inst = llvm::cast<llvm::Instruction>(v);
    llvm::FastMathFlags fmf;
    fmf.setAllowContract();
    inst->setFastMathFlags(fmf);
    return inst;
  }

  Value* min(Value* a, Value* b) { return b_.CreateSelect(b_.CreateICmpSLT(a, b), a, b); }
  Value* ceil_div(Value* a, int64_t b) { return b_.CreateSDiv(b_.CreateAdd(a, i64(b - 1)), i64(b)); }
  Value* at(const Matrix& x, Value* batch, Value* r, Value* c) {
    Value* off = b_.CreateAdd(b_.CreateMul(r, i64(x.row_stride)), b_.CreateMul(c, i64(x.col_stride)));
    if (batch && x.batch_stride) off = b_.CreateAdd(off, b_.CreateMul(batch, i64(x.batch_stride)));
    return off;
  }
  llvm::FixedVectorType* vec(int64_t lanes) { return llvm::FixedVectorType::get(t_, static_cast<unsigned>(lanes)); }
  Value* vload(int buf, Value* offset, int64_t lanes) {
    return tag(b_.CreateAlignedLoad(vec(lanes), address(buf, offset), llvm::Align(elem_bytes())), buf);
  }
  void vstore(Value* v, int buf, Value* offset) {
    tag(b_.CreateAlignedStore(v, address(buf, offset), llvm::Align(elem_bytes())), buf);
  }

  // Step i writes the matrix that GEMM step i + 1 accumulates onto (the
  // weight gradient's `lambda W + Delta^T X / n`, the SGD step's decay
  // before its update), over the same [M, N] row-major, reading that matrix
  // only at the element it writes: the GEMM computes it (init_loops).
  bool initializes_gemm(size_t i) const {
    if (i + 1 >= p_.steps.size()) return false;
    const Step &init = p_.steps[i], &g = p_.steps[i + 1];
    if (init.kind != StepKind::Elementwise || init.batched || g.kind != StepKind::Gemm || !g.accumulate ||
        g.gemm_batched || g.c.buf != init.out || g.m.times_n || g.n.times_n || g.c.col_stride != 1 ||
        g.c.row_stride != g.n.value || init.shape != Shape{g.m.value, g.n.value} || g.a.buf == init.out ||
        g.b.buf == init.out)
      return false;
    const std::vector<int64_t> rm = row_major(init.shape);
    for (const Expr& e : init.exprs)
      if (e.kind == Expr::Kind::Load && e.access.buf == init.out && e.access.strides != rm) return false;
    return true;
  }

  // The init step's loop (before a GEMM path that does not take it in).
  void init_loops(const Step* init) {
    if (init) elementwise({init});
  }

  // `init`: the step writing C's initial value (initializes_gemm): the plain
  // loops compute it row by row, just before the row's updates (C's row
  // then stays in cache); the function paths run its loop first.
  void gemm(const Step& s, const Step* init = nullptr) {
    Value* M = dim(s.m);
    Value* K = dim(s.kdim);
    Value* alpha = fp(s.alpha);
    if (s.alpha_over_n) alpha = b_.CreateFDiv(alpha, b_.CreateSIToFP(n_, t_));
    if (s.alpha_times_rate) {
      for (size_t i = 0; i < p_.buffers.size(); ++i)
        if (p_.buffers[i].kind == BufKind::Rate) alpha = b_.CreateFMul(alpha, load(static_cast<int>(i), i64(0)));
    }
    batch_loop_or_none(s.gemm_batched, [&](Value* batch) {
      if (s.scratch < 0) {
        gemm_loops(s, batch, M, K, alpha, init);
        epilogue_loops(s, M);
        return;
      }
      auto base = [&](const Matrix& x) {
        Value* off = batch && x.batch_stride ? b_.CreateMul(batch, i64(x.batch_stride)) : i64(0);
        return b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(x.buf)], off);
      };
      // Both operands run along k (x W^T): below 128 rows, dot-product tiles on
      // the operands as they are beat packing W on every call.
      // (K >= 128: a tile's closing sums across lanes must amortize.)
      const bool along_k = s.a.col_stride == 1 && s.b.row_stride == 1 && !s.kdim.times_n && s.kdim.value >= 128;
      auto* blocked = llvm::BasicBlock::Create(c_, "gemm.blocked", f_);
      auto* plain = llvm::BasicBlock::Create(c_, "gemm.plain", f_);
      auto* join = llvm::BasicBlock::Create(c_, "gemm.end", f_);
      // A product over k < 8 (a weight gradient at a batch of a few samples)
      // is a memory-bound rank-k update: plain loops, no packing.
      b_.CreateCondBr(b_.CreateAnd(b_.CreateICmpSGE(M, i64(along_k ? 128 : 8)), b_.CreateICmpSGE(K, i64(8))),
                      blocked, plain);
      Value* null = llvm::ConstantPointerNull::get(ptr_);
      // The call's arguments (GemmArgs), for one call or for the tasks.
      auto args = [&](int64_t kind) {
        return std::vector<Value*>{i64(kind), base(s.a), i64(s.a.row_stride), i64(s.a.col_stride), base(s.b),
                                   i64(s.b.row_stride), i64(s.b.col_stride), base(s.c), i64(s.c.row_stride),
                                   i64(s.c.col_stride), M, i64(s.n.value), K, alpha, b_.getInt1(s.accumulate),
                                   s.scratch >= 0 ? base_[static_cast<size_t>(s.scratch)] : null,
                                   s.bias >= 0 ? base_[static_cast<size_t>(s.bias)] : null, b_.getInt1(s.relu),
                                   s.mask >= 0 ? base_[static_cast<size_t>(s.mask)] : null};
      };
      auto run = [&](int64_t kind) {
        std::vector<Value*> a = args(kind);
        a.push_back(par_);
        // The least work worth a dispatch. A forward kernel: 2^16
        // multiply-adds (batch 1 inference on 2 threads: 9 -> 5.5 us). A
        // gradient kernel: 2^20 (~5 us): there, what another core computed
        // in the forward pass (activations, the weights it read) is read and
        // written again by this one, and small splits cost more than they save.
        a.push_back(i64(gradient_kernel_ ? 1 << 20 : 1 << 16));
        b_.CreateCall(gemm_run_function(), a);
      };
      if (along_k) {
        b_.SetInsertPoint(plain);
        init_loops(init);
        run(1);
        epilogue_loops(s, M);
        b_.CreateBr(join);
        plain = nullptr;
      }
      b_.SetInsertPoint(blocked);
      init_loops(init);
      run(0);
      b_.CreateBr(join);
      if (plain) {
        b_.SetInsertPoint(plain);
        gemm_loops(s, batch, M, K, alpha, init);
        epilogue_loops(s, M);
        b_.CreateBr(join);
      }
      b_.SetInsertPoint(join);
    });
  }

  // --- GEMMs across threads ---------------------------------------------------
  //
  // A kernel called with a parallel runner (abi.h) splits each large GEMM by
  // columns of C into runner->tasks tasks (at most kGemmMaxTasks), each a
  // call of the same GEMM function on its columns with its own packing
  // scratch; nabla_gemm_task_<dt> is the task, GemmArgs its argument.

  // GemmArgs: kind (0 blocked, 1 dot), then the blocked GEMM's arguments.
  llvm::StructType* gemm_args_type() {
    auto* i1 = b_.getInt1Ty();
    return llvm::StructType::get(c_, {i64_, ptr_, i64_, i64_, ptr_, i64_, i64_, ptr_, i64_, i64_, i64_, i64_, i64_, t_,
                                      i1, ptr_, ptr_, i1, ptr_, i64_});
  }

  // The GEMM as a model's kernel calls it (blocked or dot, by `kind`): with
  // a runner and enough work, split into tasks; else one call. A support
  // function, so a kernel's call sites stay one call each (the dispatch
  // written out at every call site cost 15 % of the MLP's compile time).
  llvm::Function* gemm_run_function() {
    llvm::StructType* at = gemm_args_type();
    std::vector<llvm::Type*> args(at->element_begin(), at->element_end() - 1);
    args.push_back(ptr_);  // the runner
    args.push_back(i64_);  // the least work (multiply-adds) worth splitting
    return support_function("nabla_gemm_run_", args, {}, {}, [](FunctionEmitter& e, llvm::Function* f) {
      std::vector<Value*> a;
      for (unsigned i = 0; i + 2 < f->arg_size(); ++i) a.push_back(f->getArg(i));
      e.gemm_run(a, f->getArg(f->arg_size() - 2), f->getArg(f->arg_size() - 1));
    });
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
      // runner: {run(ctx, tasks, task, arg), ctx, tasks}
      auto* runner_t = llvm::StructType::get(c_, {ptr_, ptr_, i64_});
      Value* run = b_.CreateLoad(ptr_, b_.CreateStructGEP(runner_t, par, 0));
      Value* ctx = b_.CreateLoad(ptr_, b_.CreateStructGEP(runner_t, par, 1));
      Value* tasks = b_.CreateLoad(i64_, b_.CreateStructGEP(runner_t, par, 2));
      tasks = min(b_.CreateSelect(b_.CreateICmpSLT(tasks, i64(1)), i64(1), tasks), i64(kGemmMaxTasks));
      llvm::StructType* at = gemm_args_type();
      llvm::AllocaInst* slot_args = slot(at);
      for (unsigned i = 0; i < args.size(); ++i) b_.CreateStore(args[i], b_.CreateStructGEP(at, slot_args, i));
      b_.CreateStore(tasks, b_.CreateStructGEP(at, slot_args, static_cast<unsigned>(args.size())));
      auto* run_t = llvm::FunctionType::get(llvm::Type::getVoidTy(c_), {ptr_, i64_, ptr_, ptr_}, false);
      b_.CreateCall(run_t, run, {ctx, tasks, gemm_task_function(), slot_args});
      b_.CreateBr(end);
    }
    b_.SetInsertPoint(one);
    b_.CreateCondBr(b_.CreateICmpEQ(args[0], i64(0)), blocked, dot);
    b_.SetInsertPoint(blocked);
    b_.CreateCall(gemm_function(), std::vector<Value*>(args.begin() + 1, args.end()));
    b_.CreateBr(end);
    b_.SetInsertPoint(dot);
    const auto& a = args;
    b_.CreateCall(gemm_dot_function(), {a[1], a[2], a[4], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]});
    b_.CreateBr(end);
    b_.SetInsertPoint(end);
  }

  // The task: columns [t * chunk, (t + 1) * chunk) of C (chunk a multiple of
  // the tile's 32 columns), its packing scratch the t-th of `tasks` slots.
  llvm::Function* gemm_task_function() {
    return support_function("nabla_gemm_task_", {ptr_, i64_}, {}, {}, [](FunctionEmitter& e, llvm::Function* f) {
      e.gemm_task(f->getArg(0), f->getArg(1));
    });
  }

  void gemm_task(Value* args, Value* t) {
    llvm::StructType* at = gemm_args_type();
    std::vector<Value*> a;
    for (unsigned i = 0; i < at->getNumElements(); ++i)
      a.push_back(b_.CreateLoad(at->getElementType(i), b_.CreateStructGEP(at, args, i)));
    Value *N = a[11], *tasks = a[19];
    Value* chunk = b_.CreateMul(ceil_div(b_.CreateSDiv(b_.CreateAdd(N, b_.CreateSub(tasks, i64(1))), tasks), kGemmMaxNR),
                         i64(kGemmMaxNR));
    Value* j0 = min(b_.CreateMul(t, chunk), N);
    Value* cols = b_.CreateSub(min(b_.CreateAdd(j0, chunk), N), j0);
    auto* run = llvm::BasicBlock::Create(c_, "task.run", f_);
    auto* done = llvm::BasicBlock::Create(c_, "task.done", f_);
    b_.CreateCondBr(b_.CreateICmpSGT(cols, i64(0)), run, done);
    b_.SetInsertPoint(run);
    auto shift = [&](Value* p, Value* elems) { return b_.CreateInBoundsGEP(t_, p, elems); };
    Value* B = shift(a[4], b_.CreateMul(j0, a[6]));
    Value* C = shift(a[7], b_.CreateMul(j0, a[9]));
    Value* bias = b_.CreateSelect(b_.CreateIsNull(a[16]), a[16], shift(a[16], j0));
    Value* mask = b_.CreateSelect(b_.CreateIsNull(a[18]), a[18], shift(a[18], b_.CreateMul(j0, a[9])));
    // One task's packing slot: gemm_scratch(chunk) elements.
    Value* slot_size = i64(kGemmMC * kGemmKC + kGemmMaxMR * kGemmMaxNR);
    slot_size = b_.CreateAdd(slot_size, b_.CreateMul(i64(kGemmKC), chunk));
    Value* scratch = b_.CreateSelect(b_.CreateIsNull(a[15]), a[15], shift(a[15], b_.CreateMul(t, slot_size)));
    auto* blocked = llvm::BasicBlock::Create(c_, "task.blocked", f_);
    auto* dot = llvm::BasicBlock::Create(c_, "task.dot", f_);
    b_.CreateCondBr(b_.CreateICmpEQ(a[0], i64(0)), blocked, dot);
    b_.SetInsertPoint(blocked);
    b_.CreateCall(gemm_function(), {a[1], a[2], a[3], B, a[5], a[6], C, a[8], a[9], a[10], cols, a[12], a[13], a[14],
                                    scratch, bias, a[17], mask});
    b_.CreateBr(done);
    b_.SetInsertPoint(dot);
    b_.CreateCall(gemm_dot_function(), {a[1], a[2], B, a[6], C, a[8], a[9], a[10], cols, a[12], a[13], a[14]});
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  // The epilogue of a GEMM taking a path without one (fuse_epilogues only
  // gives one to unbatched products with C row-major): C = relu?(C + bias).
  void epilogue_loops(const Step& s, Value* M) {
    if (s.bias < 0 && !s.relu && s.mask < 0) return;
    loop0(M, [&](Value* i) {
      loop(s.n.value, [&](Value* j) {
        Value* c_at = b_.CreateAdd(b_.CreateMul(i, i64(s.c.row_stride)), j);
        Value* v = load(s.c.buf, c_at);
        if (s.bias >= 0) v = b_.CreateFAdd(v, load(s.bias, j));
        if (s.relu) v = maximum(v, fp(0));
        if (s.mask >= 0) v = mask_value(v, load(s.mask, c_at));
        store(v, s.c.buf, c_at);
      });
    });
  }

  // for (i = 0; i < count; ++i) body(i), for a count that may be 0.
  void loop0(Value* count, const std::function<void(Value*)>& body, bool scalar = false) {
    auto* run = llvm::BasicBlock::Create(c_, "loop0", f_);
    auto* skip = llvm::BasicBlock::Create(c_, "loop0.skip", f_);
    b_.CreateCondBr(b_.CreateICmpSGT(count, i64(0)), run, skip);
    b_.SetInsertPoint(run);
    loop(count, body, scalar);
    b_.CreateBr(skip);
    b_.SetInsertPoint(skip);
  }

  Value* reduce_add(Value* v) {
    auto* r = b_.CreateFAddReduce(fp(0), v);
    llvm::cast<llvm::Instruction>(r)->setHasAllowReassoc(true);
    return r;
  }

  // C (+)= alpha A B where A(i, k) = A[i*a_rs + k] and B(k, j) = B[j*b_cs + k]
  // (both contiguous along k), without packing: 4 x 4 tiles of dot products,
  // each a vector accumulator over k, summed across lanes at the end. The
  // module's one such function (strides are arguments).
  llvm::Function* gemm_dot_function() {
    const std::vector<llvm::Type*> args = {ptr_, i64_, ptr_, i64_, ptr_, i64_, i64_, i64_, i64_, i64_, t_,
                                           b_.getInt1Ty()};
    // Buffers: A, B (read), C (written); A and B may be one array.
    return support_function("nabla_gemm_dot_", args, {0, 2, 4}, {0, 0, 1}, [](FunctionEmitter& e, llvm::Function* f) {
      e.gemm_dot(f->getArg(1), f->getArg(3), f->getArg(5), f->getArg(6), f->getArg(7), f->getArg(8), f->getArg(9),
                 f->getArg(10), f->getArg(11));
    });
  }

  // A GEMM function of the support module, or its declaration in a model's
  // module (external_gemm). `buffers` are the pointer arguments the body's
  // buffer numbers stand for; `regions` gives each its alias scope (equal:
  // may overlap). `body` emits the code with a fresh emitter.
  llvm::Function* support_function(const std::string& stem, const std::vector<llvm::Type*>& args,
                                   const std::vector<unsigned>& buffers, const std::vector<int>& regions,
                                   const std::function<void(FunctionEmitter&, llvm::Function*)>& body) {
    const std::string name = stem + ir::dtype_name(p_.dtype);
    if (llvm::Function* f = m_.getFunction(name)) return f;
    auto* f = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(c_), args, false),
                                     target_.external_gemm || support_ ? llvm::Function::ExternalLinkage
                                                                       : llvm::Function::InternalLinkage,
                                     name, m_);
    f->addFnAttr(llvm::Attribute::NoInline);
    if (target_.external_gemm) return f;  // defined by the support module
    FunctionEmitter e(m_, p_, target_);
    e.set_attributes(f);
    e.f_ = f;
    e.entry_ = llvm::BasicBlock::Create(c_, "entry", f);
    e.b_.SetInsertPoint(e.entry_);
    llvm::MDBuilder mdb(c_);
    llvm::MDNode* domain = mdb.createAnonymousAliasScopeDomain(stem);
    const int count = regions.empty() ? 0 : *std::max_element(regions.begin(), regions.end()) + 1;
    std::vector<llvm::MDNode*> scopes;
    for (int i = 0; i < count; ++i) scopes.push_back(mdb.createAnonymousAliasScope(domain));
    for (size_t i = 0; i < buffers.size(); ++i) {
      const bool shared = std::count(regions.begin(), regions.end(), regions[i]) > 1;
      if (!shared) f->getArg(buffers[i])->addAttr(llvm::Attribute::NoAlias);
      e.base_.push_back(f->getArg(buffers[i]));
      std::vector<llvm::Metadata*> others;
      for (int j = 0; j < count; ++j)
        if (j != regions[i]) others.push_back(scopes[static_cast<size_t>(j)]);
      e.scope_of_.push_back(llvm::MDNode::get(c_, {scopes[static_cast<size_t>(regions[i])]}));
      e.noalias_of_.push_back(llvm::MDNode::get(c_, others));
    }
    body(e, f);
    e.b_.CreateRetVoid();
    return f;
  }

  void gemm_dot(Value* a_rs, Value* b_cs, Value* c_rs, Value* c_cs, Value* M, Value* N, Value* K, Value* alpha,
                Value* accumulate) {
    const int64_t VL = (target_.avx512 ? 64 : 32) / elem_bytes();
    constexpr int64_t T = 4;
    Value* kv = b_.CreateMul(b_.CreateSDiv(K, i64(VL)), i64(VL));  // vectorized part of k
    // Dot products of rows rows[r] of A with columns cols[c] of B, into C.
    auto tile = [&](const std::vector<Value*>& rows, const std::vector<Value*>& cols) {
      const size_t R = rows.size(), Cn = cols.size();
      llvm::BasicBlock* pre = b_.GetInsertBlock();
      std::vector<Value*> acc(R * Cn, llvm::Constant::getNullValue(vec(VL)));
      auto* body = llvm::BasicBlock::Create(c_, "dot", f_);
      auto* done = llvm::BasicBlock::Create(c_, "dot.end", f_);
      b_.CreateCondBr(b_.CreateICmpSGT(kv, i64(0)), body, done);
      b_.SetInsertPoint(body);
      llvm::PHINode* k = b_.CreatePHI(i64_, 2);
      k->addIncoming(i64(0), pre);
      std::vector<llvm::PHINode*> phis;
      for (size_t i = 0; i < R * Cn; ++i) {
        phis.push_back(b_.CreatePHI(vec(VL), 2));
        phis.back()->addIncoming(acc[i], pre);
      }
      std::vector<Value*> av, bv;
      for (Value* r : rows) av.push_back(vload(0, b_.CreateAdd(b_.CreateMul(r, a_rs), k), VL));
      for (Value* c : cols) bv.push_back(vload(1, b_.CreateAdd(b_.CreateMul(c, b_cs), k), VL));
      std::vector<Value*> next;
      for (size_t r = 0; r < R; ++r)
        for (size_t c = 0; c < Cn; ++c)
          next.push_back(b_.CreateIntrinsic(llvm::Intrinsic::fma, {vec(VL)}, {av[r], bv[c], phis[r * Cn + c]}));
      Value* k1 = b_.CreateAdd(k, i64(VL), "", true, true);
      llvm::BasicBlock* latch = b_.GetInsertBlock();
      k->addIncoming(k1, latch);
      for (size_t i = 0; i < phis.size(); ++i) phis[i]->addIncoming(next[i], latch);
      b_.CreateCondBr(b_.CreateICmpSLT(k1, kv), body, done);
      b_.SetInsertPoint(done);
      std::vector<llvm::PHINode*> ends;
      for (size_t i = 0; i < R * Cn; ++i) {
        ends.push_back(b_.CreatePHI(vec(VL), 2));
        ends.back()->addIncoming(acc[i], pre);
        ends.back()->addIncoming(next[i], latch);
      }
      std::vector<Value*> sums;
      for (llvm::PHINode* phi : ends) sums.push_back(reduce_add(phi));
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
    loop0(m4, [&](Value* ti) {
      std::vector<Value*> rows;
      for (int64_t r = 0; r < T; ++r) rows.push_back(b_.CreateAdd(b_.CreateMul(ti, i64(T)), i64(r)));
      loop0(n4, [&](Value* tj) {
        std::vector<Value*> cols;
        for (int64_t c = 0; c < T; ++c) cols.push_back(b_.CreateAdd(b_.CreateMul(tj, i64(T)), i64(c)));
        tile(rows, cols);
      });
      loop0(b_.CreateSub(N, b_.CreateMul(n4, i64(T))), [&](Value* j) {
        tile(rows, {b_.CreateAdd(b_.CreateMul(n4, i64(T)), j)});
      });
    });
    loop0(b_.CreateSub(M, b_.CreateMul(m4, i64(T))), [&](Value* i) {
      Value* row = b_.CreateAdd(b_.CreateMul(m4, i64(T)), i);
      loop0(N, [&](Value* j) { tile({row}, {j}); });
    });
  }

  // C (+)= alpha A B as plain loops: dot products when both operands run
  // along k, else rows of C updated by a * (row of B).
  void gemm_loops(const Step& s, Value* batch, Value* M, Value* K, Value* alpha, const Step* init = nullptr) {
    const Matrix &A = s.a, &B = s.b, &C = s.c;
    Value* N = dim(s.n);
    const bool dot = A.col_stride == 1 && B.row_stride == 1 && B.col_stride != 1;
    llvm::AllocaInst* acc = slot(t_);
    loop(M, [&](Value* i) {
      if (init) {  // row i of C's initial value (unbatched: batch is null)
        loop(N, [&](Value* j) {
          store(eval(*init, init->root, nullptr, {i, j}), C.buf, at(C, batch, i, j));
          local_.clear();
        });
      }
      if (dot) {
        loop(N, [&](Value* j) {
          b_.CreateStore(fp(0), acc);
          loop(K, [&](Value* k) {
            Value* prod = contract(b_.CreateFMul(load(A.buf, at(A, batch, i, k)), load(B.buf, at(B, batch, k, j))));
            Value* sum = combine(Op::Sum, b_.CreateLoad(t_, acc), prod);
            contract(sum)->setHasAllowReassoc(true);
            b_.CreateStore(sum, acc);
          });
          Value* c_at = at(C, batch, i, j);
          Value* r = b_.CreateFMul(alpha, b_.CreateLoad(t_, acc));
          store(s.accumulate ? b_.CreateFAdd(load(C.buf, c_at), r) : r, C.buf, c_at);
        });
        return;
      }
      if (!s.accumulate) loop(N, [&](Value* j) { store(fp(0), C.buf, at(C, batch, i, j)); });
      loop(K, [&](Value* k) {
        Value* a = b_.CreateFMul(alpha, load(A.buf, at(A, batch, i, k)));
        loop(N, [&](Value* j) {
          Value* c_at = at(C, batch, i, j);
          Value* prod = contract(b_.CreateFMul(a, load(B.buf, at(B, batch, k, j))));
          store(contract(b_.CreateFAdd(load(C.buf, c_at), prod)), C.buf, c_at);
        });
      });
    });
  }

  // The cache-blocked GEMM (the GotoBLAS loop nest): K in blocks of KC; per
  // block, B packed into panels of NR columns and, per MC rows, A packed into
  // panels of MR rows; an MR x NR register tile per panel pair, kept in
  // vector registers over the block's k (explicit vector IR: one broadcast of
  // A and NR/VL loads of B feed MR * NR/VL fused multiply-adds per k).
  // Packing reads any strides, so NN, NT (x W^T) and TN (the batch-reducing
  // weight gradient) all run the same micro-kernel.
  struct MatV {
    int buf;
    Value *rs, *cs;
  };
  Value* at(const MatV& x, Value* r, Value* c) { return b_.CreateAdd(b_.CreateMul(r, x.rs), b_.CreateMul(c, x.cs)); }

  // Emits `then` or `otherwise` by a runtime condition.
  void branch(Value* cond, const std::function<void()>& then, const std::function<void()>& otherwise) {
    auto* t = llvm::BasicBlock::Create(c_, "if", f_);
    auto* e = llvm::BasicBlock::Create(c_, "else", f_);
    auto* j = llvm::BasicBlock::Create(c_, "endif", f_);
    b_.CreateCondBr(cond, t, e);
    b_.SetInsertPoint(t);
    then();
    b_.CreateBr(j);
    b_.SetInsertPoint(e);
    otherwise();
    b_.CreateBr(j);
    b_.SetInsertPoint(j);
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
                            [](FunctionEmitter& e, llvm::Function* f) {
      e.gemm_blocked({0, f->getArg(1), f->getArg(2)}, {1, f->getArg(4), f->getArg(5)},
                     {2, f->getArg(7), f->getArg(8)}, 3, f->getArg(9), f->getArg(10), f->getArg(11), f->getArg(12),
                     f->getArg(13), 4, f->getArg(16), 5);
    });
  }

  void gemm_blocked(const MatV& A, const MatV& B, const MatV& C, int sc, Value* M, Value* N, Value* K,
                    Value* alpha, Value* accumulate, int bias, Value* relu, int mask) {
    Value* has_bias = b_.CreateIsNotNull(base_[static_cast<size_t>(bias)]);
    Value* has_mask = b_.CreateIsNotNull(base_[static_cast<size_t>(mask)]);
    const int64_t VL = (target_.avx512 ? 64 : 32) / elem_bytes();
    const int64_t NR = 2 * VL, MR = target_.avx512 ? 12 : 4, NV = NR / VL;
    const int64_t KC = kGemmKC, MC = kGemmMC;
    Value* panels = ceil_div(N, NR);
    Value* npad = b_.CreateMul(ceil_div(N, kGemmMaxNR), i64(kGemmMaxNR));
    Value* ap = i64(0);
    Value* bp = i64(MC * KC);
    Value* tile = b_.CreateAdd(i64(MC * KC), b_.CreateMul(i64(KC), npad));
    Value* b_along_k = b_.CreateAnd(b_.CreateICmpEQ(B.rs, i64(1)), b_.CreateICmpNE(B.cs, i64(1)));
    Value* a_along_k = b_.CreateAnd(b_.CreateICmpEQ(A.cs, i64(1)), b_.CreateICmpNE(A.rs, i64(1)));
    // K in equal blocks of at most KC (784 = 4 x 196, not 3 x 256 + 16).
    Value* kblocks = ceil_div(K, KC);
    Value* kc_size = b_.CreateSDiv(b_.CreateAdd(K, b_.CreateSub(kblocks, i64(1))), kblocks);
    loop(kblocks, [&](Value* kb) {
      Value* pc = b_.CreateMul(kb, kc_size);
      Value* kc = min(kc_size, b_.CreateSub(K, pc));
      Value* first = b_.CreateAnd(b_.CreateNot(accumulate), b_.CreateICmpEQ(kb, i64(0)));
      // The epilogue (bias, relu) once, as the last block's tiles are stored.
      Value* epilogue = b_.CreateAnd(b_.CreateICmpEQ(kb, b_.CreateSub(kblocks, i64(1))), b_.CreateOr(b_.CreateOr(has_bias, relu), has_mask));
      // Pack B: panel p holds columns p*NR.. as kc rows of NR (the last
      // panel zero-padded).
      {
        Value* last = b_.CreateMul(b_.CreateSub(panels, i64(1)), b_.CreateMul(kc, i64(NR)));
        loop(b_.CreateMul(kc, i64(NR)), [&](Value* e) { store(fp(0), sc, b_.CreateAdd(bp, b_.CreateAdd(last, e))); });
      }
      loop(panels, [&](Value* p) {
        Value* j0 = b_.CreateMul(p, i64(NR));
        Value* cols = min(i64(NR), b_.CreateSub(N, j0));
        Value* panel = b_.CreateAdd(bp, b_.CreateMul(p, b_.CreateMul(kc, i64(NR))));
        auto copy = [&](Value* kk, Value* r) {
          Value* v = load(B.buf, at(B, b_.CreateAdd(pc, kk), b_.CreateAdd(j0, r)));
          store(v, sc, b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(kk, i64(NR)), r)));
        };
        // B rows contiguous along n (NN, TN) and a whole panel: NR/VL vector
        // copies per k.
        Value* b_rows = b_.CreateAnd(b_.CreateICmpEQ(B.cs, i64(1)), b_.CreateICmpEQ(cols, i64(NR)));
        branch(b_along_k, [&] { pack_transposed(B, sc, pc, kc, j0, cols, panel, NR, VL, copy); },
               [&] {
                 branch(b_rows, [&] {
                   loop(kc, [&](Value* kk) {
                     for (int64_t v = 0; v < NV; ++v)
                       vstore(vload(B.buf, at(B, b_.CreateAdd(pc, kk), b_.CreateAdd(j0, i64(v * VL))), VL), sc,
                              b_.CreateAdd(panel, b_.CreateAdd(b_.CreateMul(kk, i64(NR)), i64(v * VL))));
                   }, true);
                 }, [&] { loop(kc, [&](Value* kk) { loop(cols, [&](Value* r) { copy(kk, r); }); }); });
               });
      });
      loop(ceil_div(M, MC), [&](Value* ib) {
        Value* ic = b_.CreateMul(ib, i64(MC));
        Value* mc = min(i64(MC), b_.CreateSub(M, ic));
        Value* rows_panels = ceil_div(mc, MR);
        // Pack A: panel q holds rows ic + q*MR.. as kc columns of MR. A
        // operand running along k is not packed: the micro-kernel broadcasts
        // from its rows directly (each cache line serves 16 k).
        branch(a_along_k, [] {}, [&] {
          Value* last = b_.CreateMul(b_.CreateSub(rows_panels, i64(1)), b_.CreateMul(kc, i64(MR)));
          loop(b_.CreateMul(kc, i64(MR)), [&](Value* e) { store(fp(0), sc, b_.CreateAdd(ap, b_.CreateAdd(last, e))); });
          loop(rows_panels, [&](Value* q) {
            Value* i0 = b_.CreateAdd(ic, b_.CreateMul(q, i64(MR)));
            Value* rows = min(i64(MR), b_.CreateSub(b_.CreateAdd(ic, mc), i0));
            Value* panel = b_.CreateAdd(ap, b_.CreateMul(q, b_.CreateMul(kc, i64(MR))));
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
          });
        });
        loop(panels, [&](Value* p) {
          loop(rows_panels, [&](Value* q) {
            Value* a0 = b_.CreateAdd(ap, b_.CreateMul(q, b_.CreateMul(kc, i64(MR))));
            Value* b0 = b_.CreateAdd(bp, b_.CreateMul(p, b_.CreateMul(kc, i64(NR))));
            Value* i0 = b_.CreateAdd(ic, b_.CreateMul(q, i64(MR)));
            // Row r of the panel: packed at a0 + r (k stride MR), or row
            // min(i0 + r, M - 1) of A itself from column pc (k stride A.cs;
            // rows past M repeat the last one, their results are not stored).
            // Two copies of the micro-kernel, so the packed one addresses A
            // from one pointer (a select of the two would keep MR pointers
            // live, more than there are registers).
            auto* direct_bb = llvm::BasicBlock::Create(c_, "micro.direct", f_);
            auto* packed_bb = llvm::BasicBlock::Create(c_, "micro.packed", f_);
            auto* joined = llvm::BasicBlock::Create(c_, "micro.joined", f_);
            b_.CreateCondBr(a_along_k, direct_bb, packed_bb);
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
            Value* j0 = b_.CreateMul(p, i64(NR));
            Value* valpha = b_.CreateVectorSplat(static_cast<unsigned>(VL), alpha);
            Value* full = b_.CreateAnd(b_.CreateICmpSLE(b_.CreateAdd(i0, i64(MR)), M),
                                       b_.CreateICmpSLE(b_.CreateAdd(j0, i64(NR)), N));
            full = b_.CreateAnd(full, b_.CreateICmpEQ(C.cs, i64(1)));
            auto* fast = llvm::BasicBlock::Create(c_, "tile.full", f_);
            auto* slow = llvm::BasicBlock::Create(c_, "tile.edge", f_);
            auto* done = llvm::BasicBlock::Create(c_, "tile.end", f_);
            b_.CreateCondBr(full, fast, slow);
            b_.SetInsertPoint(fast);
            auto store_tile = [&](bool with_epilogue) {
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
                  Value* sum = b_.CreateIntrinsic(llvm::Intrinsic::fma, {vec(VL)},
                                                  {valpha, acc[static_cast<size_t>(r * NV + v)], old});
                  if (with_epilogue) {
                    sum = epilogue_value(sum, bv[static_cast<size_t>(v)], relu);
                    Value* ptr = b_.CreateSelect(has_mask, base_[static_cast<size_t>(mask)], base_[static_cast<size_t>(sc)]);
                    Value* m_at = b_.CreateSelect(has_mask, c_at, i64(0));
                    Value* m = b_.CreateAlignedLoad(vec(VL), b_.CreateInBoundsGEP(t_, ptr, m_at), llvm::Align(elem_bytes()));
                    sum = b_.CreateSelect(has_mask, mask_value(sum, m), sum);
                  }
                  vstore(sum, C.buf, c_at);
                }
            };
            branch(epilogue, [&] { store_tile(true); }, [&] { store_tile(false); });
            b_.CreateBr(done);
            b_.SetInsertPoint(slow);
            for (int64_t r = 0; r < MR; ++r)
              for (int64_t v = 0; v < NV; ++v)
                vstore(acc[static_cast<size_t>(r * NV + v)], sc, b_.CreateAdd(tile, i64(r * NR + v * VL)));
            loop(min(i64(MR), b_.CreateSub(M, i0)), [&](Value* r) {
              loop(min(i64(NR), b_.CreateSub(N, j0)), [&](Value* c) {
                Value* c_at = at(C, b_.CreateAdd(i0, r), b_.CreateAdd(j0, c));
                Value* old = b_.CreateSelect(first, fp(0), load(C.buf, c_at));
                Value* t = load(sc, b_.CreateAdd(tile, b_.CreateAdd(b_.CreateMul(r, i64(NR)), c)));
                Value* sum = b_.CreateFAdd(old, b_.CreateFMul(alpha, t));
                branch(epilogue, [&] {
                  Value* bj = b_.CreateSelect(has_bias, b_.CreateAdd(j0, c), i64(0));
                  Value* ptr = b_.CreateSelect(has_bias, base_[static_cast<size_t>(bias)], base_[static_cast<size_t>(sc)]);
                  Value* loaded = b_.CreateLoad(t_, b_.CreateInBoundsGEP(t_, ptr, bj));
                  Value* v = epilogue_value(sum, b_.CreateSelect(has_bias, loaded, fp(0)), relu);
                  Value* mptr = b_.CreateSelect(has_mask, base_[static_cast<size_t>(mask)], base_[static_cast<size_t>(sc)]);
                  Value* m = b_.CreateLoad(t_, b_.CreateInBoundsGEP(t_, mptr, b_.CreateSelect(has_mask, c_at, i64(0))));
                  store(b_.CreateSelect(has_mask, mask_value(v, m), v), C.buf, c_at);
                }, [&] { store(sum, C.buf, c_at); });
              });
            });
            b_.CreateBr(done);
            b_.SetInsertPoint(done);
          });
        });
      });
    });
  }

  // c * (m > 0), as the elementwise Mul(Gt(m, 0), c) computes it.
  Value* mask_value(Value* c, Value* m) {
    Value* zero = llvm::Constant::getNullValue(c->getType());
    Value* one = llvm::ConstantFP::get(c->getType(), 1.0);
    return b_.CreateFMul(b_.CreateSelect(b_.CreateFCmpOGT(m, zero), one, zero), c);
  }

  // The epilogue of one value (or vector) of C: relu?(c + bias), bias zero
  // without one; relu as the elementwise Relu computes it (llvm.maximum).
  Value* epilogue_value(Value* c, Value* bias, Value* relu) {
    Value* z = b_.CreateFAdd(c, bias);
    return b_.CreateSelect(relu, b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, z, llvm::Constant::getNullValue(z->getType())), z);
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
          next.push_back(b_.CreateIntrinsic(llvm::Intrinsic::fma, {vec(VL)},
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


  llvm::Module& m_;
  llvm::LLVMContext& c_;
  llvm::IRBuilder<> b_;
  const Program& p_;
  const EmitTarget& target_;
  llvm::Type* t_;
  llvm::IntegerType* i64_;
  llvm::PointerType* ptr_;
  llvm::Function* f_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  Value* n_ = nullptr;

public:
  bool support_ = false;  // emitting the support module: GEMM functions with external linkage
  void emit_support() {
    support_ = true;
    gemm_function();
    gemm_dot_function();
    gemm_task_function();
    gemm_run_function();
  }

private:
  Value* par_ = nullptr;  // the kernel's parallel runner (null: one thread)
  bool gradient_kernel_ = false;
  std::vector<Value*> base_;
  std::vector<llvm::MDNode*> scope_of_, noalias_of_;
  std::vector<size_t> region_;  // per buffer: its memory region (temps sharing memory share one)
  std::vector<int> last_read_;  // per buffer: the last step reading it (-1: none)
  std::unordered_map<int, Value*> local_;  // within a fused loop iteration: buffer -> value
};

}  // namespace

std::unique_ptr<llvm::Module> emit_support_module(llvm::LLVMContext& context, ir::DType dtype,
                                                  const EmitTarget& target) {
  auto module = std::make_unique<llvm::Module>("nabla-support", context);
  if (!target.triple.empty()) module->setTargetTriple(target.triple);
  Program p;
  p.dtype = dtype;
  EmitTarget t = target;
  t.external_gemm = false;
  FunctionEmitter(*module, p, t).emit_support();
  std::string problems;
  llvm::raw_string_ostream os(problems);
  NABLA_ASSERT(!llvm::verifyModule(*module, &os), "invalid LLVM IR: " + problems);
  return module;
}

std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& context, const std::string& prefix,
                                          const ProgramSet& programs, const EmitTarget& target) {
  const Program* forward = programs.forward ? &*programs.forward : nullptr;
  const Program* grad = programs.grad ? &*programs.grad : nullptr;
  auto module = std::make_unique<llvm::Module>(prefix, context);
  if (!target.triple.empty()) module->setTargetTriple(target.triple);
  if (forward) {
    FunctionEmitter(*module, *forward, target).emit_kernel(prefix + "_forward", false);
    FunctionEmitter(*module, *forward, target).emit_workspace_function(prefix + "_forward_workspace");
  }
  if (grad) {
    FunctionEmitter(*module, *grad, target).emit_kernel(prefix + "_grad", true);
    FunctionEmitter(*module, *grad, target).emit_workspace_function(prefix + "_grad_workspace");
  }
  if (programs.sgd) {
    FunctionEmitter(*module, *programs.sgd, target).emit_kernel(prefix + "_sgd_step", true, true);
    FunctionEmitter(*module, *programs.sgd, target).emit_workspace_function(prefix + "_sgd_step_workspace");
  }
  std::string problems;
  llvm::raw_string_ostream os(problems);
  NABLA_ASSERT(!llvm::verifyModule(*module, &os), "invalid LLVM IR: " + problems);
  return module;
}

}  // namespace nabla::codegen
