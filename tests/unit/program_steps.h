// Helpers for tests that build loop programs (codegen/program.h) by hand:
// expression nodes and the weight-gradient GEMM of a [4, 3] weight.
#pragma once

#include <utility>
#include <vector>

#include "codegen/program.h"

namespace nabla::test {

inline codegen::Expr load(int buf, std::vector<int64_t> strides, int64_t batch_stride = 0) {
  codegen::Expr e;
  e.kind = codegen::Expr::Kind::Load;
  e.access = codegen::Access{buf, batch_stride, std::move(strides)};
  return e;
}

inline codegen::Expr apply(ir::Op op, std::vector<int> args) {
  codegen::Expr e;
  e.kind = codegen::Expr::Kind::Apply;
  e.op = op;
  e.args = std::move(args);
  return e;
}

inline codegen::Expr constant(double v) {
  codegen::Expr e;
  e.value = v;
  return e;
}

// C [4, 3] += A^T B over the batch: A [n][4], B [n][3] (a weight's gradient
// accumulated onto the C an earlier step initialized).
inline codegen::Step gradient_gemm_4x3(int a, int b, int c) {
  codegen::Step gemm;
  gemm.kind = codegen::StepKind::Gemm;
  gemm.out = c;
  gemm.a = {a, 4, 1, 4};  // A^T: [4, n]
  gemm.b = {b, 3, 3, 1};
  gemm.c = {c, 0, 3, 1};
  gemm.m = {4, false};
  gemm.n = {3, false};
  gemm.kdim = {1, true};
  gemm.accumulate = true;
  return gemm;
}

}  // namespace nabla::test
