// Kernel emission: the LLVM functions of one kernel program, its steps as
// plain loops (consecutive elementwise steps over one index space share a
// loop), GEMM steps as calls of the support module's functions (gemm.h) or
// plain loops when the product is small.
#pragma once

#include <string>

#include "codegen/emit.h"

namespace nabla::codegen {

// NAME and NAME_par (abi.h): (inputs, params, outputs, n, ws), or
// (inputs, labels, params, loss, grads, n, ws) when `gradient`, or
// (inputs, labels, params, loss, rate, n, ws) when `sgd` (params updated in
// place); NAME_par takes the parallel runner too, and NAME calls it with null.
// Of a kernel in pieces (KernelPiece), the functions of piece `piece`.
void emit_kernel(llvm::Module& module, const Program& program, const EmitTarget& target, const std::string& name,
                 bool gradient, bool sgd, KernelPiece piece = {});

// NAME(n): the bytes of workspace the program needs for a batch of n.
void emit_workspace_function(llvm::Module& module, const Program& program, const EmitTarget& target,
                             const std::string& name);

}  // namespace nabla::codegen
