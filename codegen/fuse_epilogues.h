// GEMM epilogues: three passes over a batched program that turn the layer
// `relu(W @ x + b)` from three passes over its activations (the GEMM writes
// W x, a loop adds b, relu is stored while z is kept for the backward pass)
// into one, the bias and activation applied as the GEMM stores its tiles.
#pragma once

#include "codegen/program.h"

namespace nabla::codegen {

// relu'(z) (a `Gt(z, 0)` of the temp z) is read as relu(z) > 0 where a step
// stores relu(z): equal for every z, NaN included, so z need not be kept for
// the backward pass.
void relu_grad_from_output(Program& p);

// A temp written by an elementwise step and read by just one same-shaped
// elementwise step, at the same index, is computed inside that step (z = G + b
// into relu(z)).
void inline_temps(Program& p);

// A step `relu?(G + b)` over the batch, G a GEMM's product read by it alone
// and b a vector along G's columns: the GEMM writes the step's buffer and
// applies the bias and relu itself (Step::bias, relu); likewise a step
// `(X > 0) * G` (relu' in the backward pass) becomes a mask (Step::mask).
void fuse_gemm_epilogues(Program& p);

}  // namespace nabla::codegen
