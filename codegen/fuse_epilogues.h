// GEMM epilogues: three passes over a batched program that turn the layer
// `relu(W @ x + b)` from three passes over its activations (the GEMM writes
// W x, a loop adds b, relu is stored while z is kept for the backward pass)
// into one, the bias and activation applied as the GEMM stores its tiles.
// And one prologue: a weight's norm computed in the loop that initializes
// its gradient's GEMM.
#pragma once

#include "codegen/program.h"

namespace nabla::codegen {

// relu'(z) (a `Gt(z, 0)` of the temp z) is read as relu(z) > 0 where a step
// stores relu(z): equal for every z, NaN included, so z need not be kept for
// the backward pass.
void relu_grad_from_output(Program& p);

// A temp written by an elementwise step and read by just one same-shaped
// elementwise step, at the same index, is computed inside that step (z = G + b
// into relu(z)), while that step's expression stays within kMaxFusedExprs
// nodes: past it the temp stays a step of its own, so no loop body grows with
// the model (2,000 sines summed: one fused step compiled in 9.6 s and 546 MB,
// bounded steps in 7.3 s and 427 MB). Time linear in the program.
constexpr size_t kMaxFusedExprs = 1024;
// And while that step reads at most kMaxLoopBuffers distinct buffers: LLVM's
// loop vectorizer checks the memory a loop touches pairwise, and past 250
// pointers its alias sets collapse into one, every pair then a runtime
// check it builds and throws away (a sum of 1,000 sines: 3.8 s, 2,000: 17 s
// to compile, most of it there). The emitter's runs of fused steps keep to
// the same bound.
constexpr size_t kMaxLoopBuffers = 64;
void inline_temps(Program& p);

// A step `relu?(G + b)` over the batch, G a GEMM's product read by it alone
// and b a vector along G's columns: the GEMM writes the step's buffer and
// applies the bias and relu itself (Step::bias, relu); likewise a step
// `(X > 0) * G` (relu' in the backward pass) becomes a mask (Step::mask).
void fuse_gemm_epilogues(Program& p);

// A sum over a whole matrix (a weight's squared Frobenius norm, ||W||^2 in
// the loss) moves to just before the step initializing a GEMM's C over the
// same matrix (`lambda W` before `+ Delta^T X / n`, the SGD step's decay),
// and the steps using the sum (the loss) to just after that GEMM, where
// nothing moved past conflicts: the init's loop then computes the sum as it
// reads W (sum_fuses_into_init), and W is read once instead of twice. At
// batch 1 the MLP's gradient and step are passes over the weights.
void sums_into_inits(Program& p);

}  // namespace nabla::codegen
