// The math library of the emitted code: elementwise ops as LLVM IR (with the
// interpreter's semantics: NaN and infinities propagate), exp in f32
// computed inline, calls to libm that name their libmvec vector variants (so
// the loop vectorizer calls those), and the fast-math flags of reductions and
// products.
#pragma once

#include <vector>

#include "codegen/llvm_helpers.h"
#include "ir/node.h"

namespace nabla::codegen {

class MathEmitter : public LlvmEmitter {
public:
  using LlvmEmitter::LlvmEmitter;

protected:
  // A call to libm's `name` (no side effects), naming its libmvec variants so
  // the loop vectorizer can call those instead.
  llvm::Value* call(const char* name, std::vector<llvm::Value*> args);
  llvm::Value* exp(llvm::Value* x);
  // sigmoid without overflow: e = exp(-|x|); x >= 0 ? 1/(1+e) : e/(1+e).
  llvm::Value* sigmoid(llvm::Value* x);
  // The elementwise op `op` of one, two or three operands.
  llvm::Value* scalar(ir::Op op, llvm::Value* a, llvm::Value* b, llvm::Value* c);

  llvm::Value* maximum(llvm::Value* a, llvm::Value* b) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, a, b);
  }
  llvm::Value* minimum(llvm::Value* a, llvm::Value* b) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::minimum, a, b);
  }
  llvm::Value* select(llvm::Value* c, llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(c, a, b); }
  llvm::Value* bool_value(llvm::Value* c) { return select(c, fp(1), fp(0)); }
  // c * (m > 0), as the elementwise Mul(Gt(m, 0), c) computes it (scalars or vectors).
  llvm::Value* mask_value(llvm::Value* c, llvm::Value* m);
  // A GEMM epilogue on one value (or vector) of C: relu?(c + bias), `relu` an
  // i1, bias zero without one; relu as the elementwise Relu computes it.
  llvm::Value* epilogue_value(llvm::Value* c, llvm::Value* bias, llvm::Value* relu);

  // acc = op(acc, v) for a reduction; reassociable so loops vectorize.
  llvm::Value* combine(ir::Op op, llvm::Value* acc, llvm::Value* v);
  // `v` may be contracted (a product into an FMA).
  llvm::Instruction* contract(llvm::Value* v);
  // v + a * b, the product contracted into the sum: how a plain-loop GEMM
  // (a kernel's own rows, or the support object's nabla_gemm_rows) adds
  // each product, so that all of them give the same bits.
  llvm::Value* plus_product(llvm::Value* v, llvm::Value* a, llvm::Value* b);
  // Row i of a plain-loop GEMM after its first store (its initial value
  // plus the k = 0 product): the products of k = 1..K-1 added to it in
  // turn, C(j) = plus_product(C(j), coef(k), b(k, j)) over N columns, C(j)
  // at offset c_at(j) of buffer c_buf. coef(k) is alpha A(i, k).
  void add_later_products(llvm::Value* K, llvm::Value* N, const std::function<llvm::Value*(llvm::Value*)>& coef,
                          const std::function<llvm::Value*(llvm::Value*, llvm::Value*)>& b, int c_buf,
                          const std::function<llvm::Value*(llvm::Value*)>& c_at);
  // The sum of a vector's lanes, in any order.
  llvm::Value* reduce_add(llvm::Value* v);

private:
  std::string libm(const char* name) const {
    return dtype_ == ir::DType::F32 ? std::string(name) + "f" : std::string(name);
  }
  llvm::Value* fmuladd(llvm::Value* a, llvm::Value* b, llvm::Value* c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {t_}, {a, b, c});
  }
};

}  // namespace nabla::codegen
