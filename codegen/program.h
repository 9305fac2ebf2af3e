// The kernel program: what a model's forward or gradient kernel does, as
// loops over buffers, before any LLVM.
//
// build_program() runs a list of passes (program.cpp). Batching
// (batching.h, architecture decision 5) builds the program: the IR is per
// sample; a kernel runs on a batch of n samples (n a runtime argument). A
// node that depends on an input or label is *batched*: its buffer has a
// leading axis of n. Parameter-only nodes are computed once per call. A
// per-sample `W @ x` becomes one matrix product over the batch (the batch
// folds into the rows of the GEMM), and the mean over the batch that a
// gradient needs is pushed down through the linear operations around it until
// it meets an outer product, where it becomes a GEMM whose reduction runs over
// the batch: mean_i outer(delta_i, x_i) = Delta^T X / n. Only what no pattern
// covers is computed per sample and averaged by a BatchMean loop.
//
// Elementwise chains are fused: a single-use elementwise node is not stored
// but evaluated inside its user's loop (an expression tree per step), and
// transposes and broadcasts of stored values are strided views (Access), not
// copies. The GEMM epilogue passes (fuse_epilogues.h) then move bias, relu
// and relu' masks into the GEMMs. Temporaries live in one workspace, placed
// by liveness (plan_buffers.h): a value's memory is reused once its last
// reader has run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ir/node.h"

namespace nabla::codegen {

enum class BufKind : uint8_t { Input, Label, Param, Output, Loss, Grad, Temp, Rate };

struct Buffer {
  BufKind kind = BufKind::Temp;
  int index = 0;         // position among the kernel's arguments of its kind
  bool batched = false;  // a leading axis of n
  Shape shape;           // per sample
  std::string name;      // the model's name for arguments; t<k> for temps
  // Temps: where in the workspace (elements, see Program::workspace_elements).
  int64_t offset = 0;
};

// A strided view of a buffer over an index space: the element at batch b and
// index (i0, i1, ...) is at batch_stride * b + sum(strides[d] * i_d).
struct Access {
  int buf = -1;
  int64_t batch_stride = 0;
  std::vector<int64_t> strides;
};

// A node of an elementwise expression tree, evaluated at one index of its
// step's index space. Trees live in their step (Step::exprs; args index it).
struct Expr {
  enum class Kind : uint8_t { Load, Const, Apply } kind = Kind::Const;
  ir::Op op = ir::Op::Constant;  // Apply: an elementwise op (ops.def)
  double value = 0;              // Const
  Access access;                 // Load
  std::vector<int> args;         // Apply
};

// A size that may scale with the batch: value * (times_n ? n : 1).
struct Dim {
  int64_t value = 1;
  bool times_n = false;
};

// One operand of a GEMM as a (batched) matrix view.
struct Matrix {
  int buf = -1;
  int64_t batch_stride = 0, row_stride = 0, col_stride = 0;
};

enum class StepKind : uint8_t {
  Elementwise,  // out[b, idx] = expr(b, idx) over `shape`
  Reduce,       // out = reduction of expr over the axes in `reduced` of `shape`
  Softmax,      // Softmax / LogSoftmax of `in` along `axis`
  Gemm,         // C = alpha * A B (per batch when `gemm_batched`)
  BatchMean,    // out[idx] = mean over b of expr(b, idx)
  Special,      // ArgmaxMask, ArgminMask, MaxoutMask, Maxout, Repeat, GroupSum of `in`
};

struct Step {
  StepKind kind = StepKind::Elementwise;
  ir::Op op = ir::Op::Constant;  // Reduce: Sum/Mean/MaxReduce/MinReduce/LogSumExp; Softmax,
                                 // Special: the op
  int out = -1;
  bool batched = false;  // loops over the batch
  Shape shape;           // the per-sample index space (the input's, for reductions)
  std::vector<Expr> exprs;
  int root = -1;               // the expression's root in `exprs`
  std::vector<bool> reduced;   // Reduce: per axis of `shape`
  int axis = -1;               // Softmax; Special mask ops (-1: all axes)
  int64_t k = 1;               // Special: group size
  Access in;                   // Softmax, Special: a contiguous input
  // Gemm
  Matrix a, b, c;
  Dim m, n, kdim;
  bool gemm_batched = false;  // one product per sample (batch strides apply)
  double alpha = 1;
  bool alpha_over_n = false;  // alpha / n (a mean over the batch)
  bool accumulate = false;    // C += alpha A B (C holds an earlier step's value)
  bool alpha_times_rate = false;  // alpha * the learning rate (SGD step kernels)
  int scratch = -1;           // packing space of the cache-blocked GEMM (-1: small, plain loops)
  // The epilogue (fuse_gemm_epilogues): C = relu?(C + bias[j]) as each tile is
  // stored; `bias` a buffer of n values (-1: none). Or C = C * (mask > 0),
  // `mask` laid out as C (relu' applied to a backward product; -1: none).
  int bias = -1;
  bool relu = false;
  int mask = -1;
};

// Calls f(buf) for each read of a buffer by step `s`, once per read: every
// Load of its expressions, its input, a GEMM's operands, its epilogue's bias
// and mask, and C when the GEMM accumulates onto it.
template <typename F>
void for_each_read(const Step& s, F&& f) {
  for (const Expr& e : s.exprs)
    if (e.kind == Expr::Kind::Load) f(e.access.buf);
  for (int buf : {s.in.buf, s.a.buf, s.b.buf, s.bias, s.mask, s.accumulate ? s.c.buf : -1})
    if (buf >= 0) f(buf);
}

// Cache blocking of GEMMs (gemm.cpp): K in blocks of kGemmKC, M in blocks of
// kGemmMC; the micro-kernel's tile is at most kGemmMaxMR x kGemmMaxNR.
constexpr int64_t kGemmKC = 256, kGemmMC = 120, kGemmMaxMR = 12, kGemmMaxNR = 32;
// A sum over a matrix's rows split across threads keeps one partial per
// block of kGemmMaxNR rows, a cache line each, on the kernel's stack: at
// most this many blocks (64 KiB), so a matrix of more rows (a broadcast to
// [1e9, 2] in a model) takes the plain reduction instead of a stack
// overflow.
constexpr int64_t kMaxRowSumBlocks = 1024;
constexpr bool row_sum_fits(int64_t rows) { return rows <= kMaxRowSumBlocks * kGemmMaxNR; }
// Scratch elements a blocked GEMM with N columns needs: packed A, packed B, a tile.
inline int64_t gemm_scratch(int64_t n) {
  return kGemmMC * kGemmKC + kGemmKC * ((n + kGemmMaxNR - 1) / kGemmMaxNR * kGemmMaxNR) + kGemmMaxMR * kGemmMaxNR;
}

// A kernel called with a parallel runner splits a GEMM by columns into up to
// kGemmMaxTasks tasks (gemm.cpp), each packing into its own slot of the
// scratch: slot t of T holds gemm_scratch(chunk), chunk = ceil(n / T)
// rounded up to kGemmMaxNR columns.
constexpr int64_t kGemmMaxTasks = 4;
inline int64_t gemm_scratch_tasks(int64_t n) {
  int64_t most = 0;
  for (int64_t t = 1; t <= kGemmMaxTasks; ++t) {
    const int64_t chunk = ((n + t - 1) / t + kGemmMaxNR - 1) / kGemmMaxNR * kGemmMaxNR;
    most = std::max(most, t * gemm_scratch(chunk));
  }
  return most;
}

// A GEMM whose tasks split C's rows: a product reducing over the batch into
// a matrix shaped like a weight (its gradient, or its update in the SGD
// step), split as the forward product x W^T splits its columns, so each
// thread keeps the same rows of W in its cache. Each task packs all of N:
// the scratch holds kGemmMaxTasks slots of gemm_scratch(n).
inline bool gemm_splits_rows(const Step& s) { return !s.m.times_n && s.kdim.times_n && !s.gemm_batched; }
// The elements of a GEMM's one operand that does not scale with the batch
// (W in x W^T and in delta W, W's gradient in delta^T x); 0 if none does.
inline int64_t gemm_weight_elems(const Step& s) {
  if (s.gemm_batched) return 0;
  if (!s.m.times_n && !s.n.times_n) return s.m.value * s.n.value;
  if (!s.kdim.times_n && !s.n.times_n) return s.kdim.value * s.n.value;
  if (!s.m.times_n && !s.kdim.times_n) return s.m.value * s.kdim.value;
  return 0;
}
inline int64_t gemm_scratch_for(const Step& s) {
  return gemm_splits_rows(s) ? std::max(kGemmMaxTasks * gemm_scratch(s.n.value), gemm_scratch_tasks(s.n.value))
                             : gemm_scratch_tasks(s.n.value);
}

struct Program {
  ir::DType dtype = ir::DType::F64;
  std::vector<Buffer> buffers;
  std::vector<Step> steps;
  // The workspace holds fixed + batched * n elements.
  int64_t workspace_fixed = 0, workspace_batched = 0;

  // Canonical text of the whole program: the cache key hashes it, and
  // `nabla compile --emit program` prints it.
  std::string str() const;
};

// What one kernel computes. Forward: `outputs` (each per sample, written with
// the batch first). Gradient: the mean of `loss` over the batch, and the mean
// of each of `gradients` (per sample, one per param, in the params' order).
struct KernelSpec {
  std::vector<const ir::Node*> inputs, labels, params;  // Var nodes
  std::vector<std::pair<std::string, const ir::Node*>> outputs;
  const ir::Node* loss = nullptr;
  std::vector<const ir::Node*> gradients;
};

enum class KernelKind : uint8_t {
  Forward,   // outputs
  Gradient,  // mean loss and mean gradient
  SgdStep,   // mean loss, and every param updated in place: p -= rate * gradient
};

// SgdStep: where the gradient of a param ends as `outer(delta, x) + other`
// (a GEMM accumulating onto another term), the update is fused into it as the
// hand-written programs do: p = p - rate * other, then p += -rate/n Delta^T X
// (checked: nothing reads p after it is written); other params get
// p -= rate * g after everything else.
//
// `trace`: the program after each pass, as (pass name, Program::str()); for
// an SGD step whose updates had to move to the end, the passes of the
// program returned.
using PassTrace = std::vector<std::pair<std::string, std::string>>;
Program build_program(const KernelSpec& spec, KernelKind kind, ir::DType dtype, PassTrace* trace = nullptr);

// One step's line of Program::str() (without the newline).
std::string step_str(const Step& s);

// Row-major (C order) strides of a shape, in elements.
std::vector<int64_t> row_major(const Shape& s);

// Step i writes the matrix that GEMM step i + 1 accumulates onto (the
// weight gradient's `lambda W + Delta^T X / n`, the SGD step's decay
// before its update), over the same [M, N] row-major, reading that matrix
// only at the element it writes: the emitter computes it with the GEMM,
// row by row where the GEMM runs plain loops.
bool initializes_gemm(const Program& p, size_t i);

// Step i is a sum over all of an unbatched [M, N] (a weight's squared
// Frobenius norm in the loss) that reads every buffer at the element of
// its index or as a scalar, and step i + 1 initializes the GEMM i + 2 over
// the same [M, N] (initializes_gemm) without reading the sum: the
// initializing loop computes the sum as it goes (sums_into_inits), one
// pass over the weight instead of two. Reading the matrix the init writes
// is allowed at the same element: the sum reads it before the store.
bool sum_fuses_into_init(const Program& p, size_t i);

// The programs of one module (each optional).
struct ProgramSet {
  std::optional<Program> forward, grad, sgd;
};

}  // namespace nabla::codegen
