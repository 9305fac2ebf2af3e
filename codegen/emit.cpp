// LLVM IR emission's entry points: a model's module (its kernels,
// emit_kernel.h) and the support module (the GEMM functions, gemm.h).
#include "codegen/emit.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include "codegen/emit_kernel.h"
#include "codegen/gemm.h"
#include "ir/assert.h"

namespace nabla::codegen {

std::unique_ptr<llvm::Module> emit_support_module(llvm::LLVMContext& context, ir::DType dtype,
                                                  const EmitTarget& target) {
  auto module = std::make_unique<llvm::Module>("nabla-support", context);
  if (!target.triple.empty()) module->setTargetTriple(target.triple);
  EmitTarget t = target;
  t.external_gemm = false;
  define_gemm_functions(*module, dtype, t);
  std::string problems;
  llvm::raw_string_ostream os(problems);
  NABLA_ASSERT(!llvm::verifyModule(*module, &os), "invalid LLVM IR: " + problems);
  return module;
}

std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& context, const std::string& prefix,
                                          const ProgramSet& programs, const EmitTarget& target,
                                          KernelPiece piece) {
  NABLA_ASSERT(piece.count == 1 || (programs.forward.has_value() + programs.grad.has_value() +
                                    programs.sgd.has_value()) == 1,
               "a kernel in pieces is one kernel's module");
  auto module = std::make_unique<llvm::Module>(prefix, context);
  if (!target.triple.empty()) module->setTargetTriple(target.triple);
  auto emit = [&](const std::optional<Program>& program, const std::string& name, bool gradient, bool sgd) {
    if (!program) return;
    emit_kernel(*module, *program, target, prefix + name, gradient, sgd, piece);
    if (piece.index == 0) emit_workspace_function(*module, *program, target, prefix + name + "_workspace");
  };
  emit(programs.forward, "_forward", false, false);
  emit(programs.grad, "_grad", true, false);
  emit(programs.sgd, "_sgd_step", true, true);
  std::string problems;
  llvm::raw_string_ostream os(problems);
  NABLA_ASSERT(!llvm::verifyModule(*module, &os), "invalid LLVM IR: " + problems);
  return module;
}

}  // namespace nabla::codegen
