// What a kernel's code is chosen from: the properties of the CPU it is
// compiled for (this host, or a CPU named with `nabla compile --cpu`), and
// the choices derived from them. Nothing here names the machine the kernels
// were tuned on: a tile size, a path threshold or a vector width follows
// from vector width, register count, cache sizes and LLVM's tuning of the
// CPU, so another CPU gets its own (docs/codegen.md, "Per-machine choices").
//
// Plain data and arithmetic: jit.cpp reads a CPU's properties from LLVM
// (target_for_cpu), the emitters read the choices.
#pragma once

#include <cstdint>
#include <string>

#include "ir/node.h"

namespace nabla::codegen {

struct TargetProfile {
  std::string cpu;            // LLVM's name ("znver5", "sapphirerapids", "x86-64-v3")
  int vector_bits = 128;      // the widest vector registers (512: AVX-512F; 256: AVX; 128: SSE)
  int vector_registers = 16;  // 32 with AVX-512
  bool fma = false;           // fused multiply-add instructions
  // LLVM tunes this CPU away from 512-bit vectors in loops it vectorizes
  // itself (Intel's cores: 512-bit code lowers the clock of the whole core).
  bool prefers_256 = false;
  int64_t l1d_bytes = 32 * 1024, l2_bytes = 256 * 1024;  // data caches per core
  bool caches_measured = false;  // read from this host, not from the table of CPU families

  // One line of every property (the cache key includes it; --emit paths prints it).
  std::string str() const;
};

// The cache sizes of a CPU family by LLVM's name (per core: L1 data, L2);
// the x86 default (32 KiB, 256 KiB) for names it does not know.
void family_caches(const std::string& cpu, int64_t* l1d, int64_t* l2);

// This host's L1 data and L2 cache sizes per core (glibc's sysconf, from the
// CPU); false (and nothing written) where it does not say.
bool host_caches(int64_t* l1d, int64_t* l2);

// The GEMM choices for one element type.
struct GemmChoices {
  int64_t vl = 4;        // elements a vector (the GEMM's explicit vectors are vector_bits wide)
  int64_t mr = 4, nr = 8;  // the micro-kernel's register tile: mr rows x nr columns (nr = 2 vectors)
  int64_t kc = 256, mc = 120;  // k block (B's panel, kc x nr, stays in L1), row block (A's, mc x kc, in L2)
  // Dot-product tiles (both operands along k): independent accumulator
  // chains wanted in flight, to cover the FMA latency on every FMA unit.
  int64_t dot_chains = 8;
  int64_t dot_min_k = 128;  // both operands along k: dot-product tiles from this k (their closing sums amortize)
  int64_t dot_blocked_min_rows = 128;  // ... and the blocked GEMM from this many rows (it packs W once per call)
  int64_t blocked_min_rows = 8, blocked_min_k = 8;  // other layouts: blocked from these, else plain loops
  int vector_bits_loops = 512;  // "prefer-vector-width" of the loops LLVM vectorizes in a kernel
  // The least work (multiply-adds) a product needs to be split across
  // threads: in a forward kernel, and in a gradient or SGD-step kernel
  // (where the weights and activations another core touched are read and
  // written again). Fixed times (cycles) of the target's multiply-adds a
  // cycle, so a target that does fewer a cycle splits smaller products.
  int64_t split_min_work_forward = 1 << 16, split_min_work_gradient = 1 << 20;
  // In a gradient or SGD-step kernel, a product on a weight of more than
  // this many elements (half the L2 in bytes) splits from
  // split_min_work_forward (emit_kernel.cpp).
  int64_t split_weight_elems = 1 << 17;
};

GemmChoices gemm_choices(const TargetProfile& target, ir::DType dtype);

// A GEMM whose operands both run along k (x W^T), over a depth k known
// when compiling: dot-product tiles instead of plain loops below
// dot_blocked_min_rows rows.
bool dot_tiles(const GemmChoices& c, bool along_k, int64_t k);

// The path a GEMM step takes at run time for m rows and depth k (the
// emitter branches on exactly this). `planned`: the step has packing space
// (batching.cpp's plan_gemm); `dot`: dot_tiles of the step.
enum class GemmPath { Loops, Dot, Blocked };
GemmPath gemm_path(const GemmChoices& c, bool planned, bool dot, int64_t m, int64_t k);

// The least work (multiply-adds) worth splitting a product across threads:
// split_min_work_forward, or in a gradient or SGD-step kernel
// split_min_work_gradient unless the product is on a weight of more than
// split_weight_elems elements (emit_kernel.cpp's min_split_work).
inline int64_t split_min_work(const GemmChoices& c, bool gradient_kernel, int64_t weight_elems) {
  return gradient_kernel && weight_elems <= c.split_weight_elems ? c.split_min_work_gradient
                                                                  : c.split_min_work_forward;
}
const char* gemm_path_name(GemmPath p);

}  // namespace nabla::codegen
