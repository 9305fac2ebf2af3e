// Buffer planning, the last of build_program's passes: where in the
// workspace each temp lives.
#pragma once

#include "codegen/program.h"

namespace nabla::codegen {

// Liveness-based placement of temps: first fit within two arenas (values
// with a batch axis, sized per sample and scaled by n; the others), so a
// temp's memory is reused once its last reader has run. Sets each temp's
// offset and the program's workspace sizes; 64-byte alignment.
void plan_buffers(Program& p);

}  // namespace nabla::codegen
