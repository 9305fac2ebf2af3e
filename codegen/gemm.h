// The GEMM support module: the functions a kernel calls for a large matrix
// product, compiled once per element type and host (their strides are
// arguments). nabla_gemm_run_<dt> runs the product as tasks on a parallel
// runner (split by columns of C) or as one call; nabla_gemm_<dt> is the
// cache-blocked GEMM (packing, a register-tile micro-kernel, the bias / relu
// / mask epilogue); nabla_gemm_dot_<dt> the packing-free dot-product GEMM
// for operands that both run along k; nabla_gemm_rows_<dt> a product over
// few k in plain row loops.
#pragma once

#include "codegen/emit.h"

namespace llvm {
class Function;
}  // namespace llvm

namespace nabla::codegen {

// The function a kernel calls, defined in `module` with internal linkage (or
// declared, when target.external_gemm: the support object defines it).
// Arguments: kind (0 blocked, 1 dot), A, A's row and column strides, B, its
// strides, C, its strides, M, N, K, alpha, accumulate, the packing scratch,
// the epilogue's bias, relu and mask (null pointers: none; the mask laid out
// as C), whether tasks split C's rows (else its columns; the packing scratch
// then holds kGemmMaxTasks slots of gemm_scratch(N)), the parallel runner
// (abi.h; null: one call) and the least work (multiply-adds) worth splitting.
llvm::Function* gemm_run_function(llvm::Module& module, ir::DType dtype, const EmitTarget& target);

// C = alpha A B in plain loops over C's rows (a product over few k), B's
// and C's rows contiguous. Arguments: A, A's row and column strides, B,
// B's row stride, C, C's row stride, M, N, K, alpha.
llvm::Function* gemm_rows_function(llvm::Module& module, ir::DType dtype, const EmitTarget& target);

// Every GEMM function, defined with external linkage (the support module).
void define_gemm_functions(llvm::Module& module, ir::DType dtype, const EmitTarget& target);

}  // namespace nabla::codegen
