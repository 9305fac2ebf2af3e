// Buffer planning, the last of build_program's passes: where in the
// workspace each temp lives.
#pragma once

#include "codegen/program.h"

namespace nabla::codegen {

// Liveness-based placement of temps: first fit within two arenas (values
// with a batch axis, sized per sample and scaled by n; the others), so a
// temp's memory is reused once its last reader has run (the last step of
// its reader's unit, where steps run as one: a sum or an init fused into a
// GEMM's loop). In order of first use, each temp at the lowest offset free
// of the temps live with it; time n log n plus the free gaps looked at.
// Sets each temp's offset and the program's workspace sizes; 64-byte
// alignment.
void plan_buffers(Program& p);

}  // namespace nabla::codegen
