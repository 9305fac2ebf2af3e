// The math library: libm and libmvec calls, the inline f32 exp, the
// elementwise ops.
#include "codegen/math_lib.h"

#include <llvm/IR/Module.h>
#include <llvm/Transforms/Utils/ModuleUtils.h>

#include <cmath>
#include <numbers>

#include "ir/assert.h"

namespace nabla::codegen {

using ir::Op;
using llvm::Value;

Value* MathEmitter::call(const char* name, std::vector<Value*> args) {
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
  const bool f32 = dtype_ == ir::DType::F32;
  struct Isa { char letter; int f32_lanes, f64_lanes; };
  // libmvec's SSE, AVX2 and AVX-512 variants, as far as the target has them.
  std::vector<Isa> isas = {{'b', 4, 2}};
  if (target_.profile.vector_bits >= 256) isas.push_back({'d', 8, 4});
  if (target_.avx512()) isas.push_back({'e', 16, 8});
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

// exp. f64 calls libm (its libmvec variants once vectorized): 1e-14
// relative wants its care. f32 is computed inline, so the vectorized loop
// keeps everything in registers (a libmvec call clobbers every vector
// register: B5 spent its time spilling around it). Cody-Waite reduction
// x = n ln2 + r with |r| <= ln2/2 (ln2 split so n ln2 is exact), Cephes'
// degree-6 minimax polynomial for e^r, and 2^n applied as two powers of two
// so results in the subnormal range round once and large x overflow to inf.
// NaN passes through (the clamps compare false); within 2 ulp on the normal
// range (tested).
Value* MathEmitter::exp(Value* x) {
  if (dtype_ != ir::DType::F32) return call("exp", {x});
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

Value* MathEmitter::sigmoid(Value* x) {
  Value* e = exp(b_.CreateFNeg(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  Value* r = b_.CreateFDiv(fp(1), b_.CreateFAdd(fp(1), e));
  return select(b_.CreateFCmpOGE(x, fp(0)), r, b_.CreateFMul(e, r));
}

Value* MathEmitter::scalar(Op op, Value* a, Value* b, Value* c) {
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

Value* MathEmitter::mask_value(Value* c, Value* m) {
  Value* zero = llvm::Constant::getNullValue(c->getType());
  Value* one = llvm::ConstantFP::get(c->getType(), 1.0);
  return b_.CreateFMul(b_.CreateSelect(b_.CreateFCmpOGT(m, zero), one, zero), c);
}

Value* MathEmitter::epilogue_value(Value* c, Value* bias, Value* relu) {
  Value* z = b_.CreateFAdd(c, bias);
  Value* zero = llvm::Constant::getNullValue(z->getType());
  return b_.CreateSelect(relu, b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, z, zero), z);
}

Value* MathEmitter::combine(Op op, Value* acc, Value* v) {
  if (op == Op::MaxReduce) return maximum(acc, v);
  if (op == Op::MinReduce) return minimum(acc, v);
  auto* add = llvm::cast<llvm::Instruction>(b_.CreateFAdd(acc, v));
  llvm::FastMathFlags fmf;
  fmf.setAllowReassoc();
  add->setFastMathFlags(fmf);
  return add;
}

llvm::Instruction* MathEmitter::contract(Value* v) {
  auto* inst = llvm::cast<llvm::Instruction>(v);
  llvm::FastMathFlags fmf;
  fmf.setAllowContract();
  inst->setFastMathFlags(fmf);
  return inst;
}

Value* MathEmitter::plus_product(Value* v, Value* a, Value* b) {
  return contract(b_.CreateFAdd(v, contract(b_.CreateFMul(a, b))));
}

void MathEmitter::add_later_products(Value* K, Value* N, const std::function<Value*(Value*)>& coef,
                                     const std::function<Value*(Value*, Value*)>& b, int c_buf,
                                     const std::function<Value*(Value*)>& c_at) {
  loop0(b_.CreateSub(K, i64(1)), [&](Value* t) {
    Value* k = b_.CreateAdd(t, i64(1));
    Value* a = coef(k);
    loop(N, [&](Value* j) {
      Value* at = c_at(j);
      store(plus_product(load(c_buf, at), a, b(k, j)), c_buf, at);
    });
  });
}

Value* MathEmitter::reduce_add(Value* v) {
  auto* r = b_.CreateFAddReduce(fp(0), v);
  llvm::cast<llvm::Instruction>(r)->setHasAllowReassoc(true);
  return r;
}

}  // namespace nabla::codegen
