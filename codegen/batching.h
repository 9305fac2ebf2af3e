// Batching, the first of build_program's passes: the kernel program of a
// KernelSpec. The IR is per sample; each node reachable from the roots
// becomes a step over the batch, a step run once per call (parameter-only
// values), a strided view of another value (transposes, broadcasts), or part
// of its user's expression tree (batch_analysis.h decides which). Per-sample
// matrix products become GEMMs over the batch, and batch means are pushed
// down to GEMMs that reduce over it. Temps are not placed yet (plan_buffers.h).
#pragma once

#include "codegen/program.h"

namespace nabla::codegen {

// `in_place` (SgdStep): updates fused into the gradient's GEMMs; otherwise
// every update is a step after everything else.
Program batch_program(const KernelSpec& spec, KernelKind kind, ir::DType dtype, bool in_place);

}  // namespace nabla::codegen
