// LLVM IR emission: kernel programs (program.h) to the functions of the
// kernel ABI (abi.h). Loops are emitted plainly, with the facts LLVM needs to
// vectorize them: distinct buffers carry distinct alias scopes, reductions
// may be reassociated, transcendental calls name their vector variants in
// glibc's libmvec (vectorized exp, log, tanh, erf, ... for the host ISA).
// The parts: emit_kernel.h (a kernel's functions and its steps' loops),
// gemm.h (the GEMM support functions), math_lib.h (elementwise ops, exp,
// libm calls), llvm_helpers.h (loops, alias scopes, tagged loads and stores).
#pragma once

#include <cstdint>

#include <memory>
#include <string>

#include "codegen/program.h"
#include "codegen/target.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace nabla::codegen {

struct EmitTarget {
  std::string triple, cpu, features;
  TargetProfile profile;  // what the kernels' choices follow from (target.h)
  // 512-bit vectors: the GEMM's explicit vectors, libmvec's AVX-512 variants.
  bool avx512() const { return profile.vector_bits >= 512; }
  // The GEMM functions are declared, not defined: they come from the support
  // module (emit_support_module), compiled once per element type and host.
  bool external_gemm = false;
};

// One of `count` modules a kernel is emitted in, to be compiled at once on
// several cores (kernels.cpp): the kernel's steps split into `count` runs
// of whole units, piece k taking the units whose first step lies in
// [begin, end). Piece 0 defines the kernel's functions, runs the first run
// of steps, then calls PREFIX_KERNEL_par.piece<k> for k = 1, 2, ...,
// which piece k's module defines (external linkage) with the next run.
// Values never cross units in registers, so the pieces share only memory.
struct KernelPiece {
  int index = 0, count = 1;
  size_t begin = 0, end = SIZE_MAX;
};

// A module defining PREFIX_forward, PREFIX_grad and PREFIX_sgd_step (each
// when `programs` has its program), each with its PREFIX_*_workspace; or,
// of one kernel, the piece `piece` (the workspace function in piece 0).
std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& context, const std::string& prefix,
                                          const ProgramSet& programs, const EmitTarget& target,
                                          KernelPiece piece = {});

// The GEMM functions every model's kernels call (nabla_gemm_<dtype>,
// nabla_gemm_dot_<dtype>), defined with external linkage.
std::unique_ptr<llvm::Module> emit_support_module(llvm::LLVMContext& context, ir::DType dtype,
                                                  const EmitTarget& target);

}  // namespace nabla::codegen
