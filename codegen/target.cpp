// The choices a kernel is compiled with, from the properties of its CPU.
#include "codegen/target.h"

#include <algorithm>
#include <unistd.h>

#include "codegen/program.h"

namespace nabla::codegen {

std::string TargetProfile::str() const {
  return "cpu " + cpu + ", " + std::to_string(vector_bits) + "-bit vectors x " + std::to_string(vector_registers) +
         (fma ? ", fma" : ", no fma") + (prefers_256 ? ", tuned for 256-bit loops" : "") + ", L1d " +
         std::to_string(l1d_bytes / 1024) + " KiB, L2 " + std::to_string(l2_bytes / 1024) + " KiB" +
         (caches_measured ? " (measured)" : " (family)");
}

void family_caches(const std::string& cpu, int64_t* l1d, int64_t* l2) {
  struct Family {
    const char* prefix;
    int64_t l1d_kib, l2_kib;
  };
  // Per core, from the vendors' data sheets; the first matching prefix wins.
  static const Family kFamilies[] = {
      {"znver5", 48, 1024},         {"znver4", 32, 1024},        {"znver3", 32, 512},
      {"znver2", 32, 512},          {"znver1", 32, 512},         {"graniterapids", 48, 2048},
      {"emeraldrapids", 48, 2048},  {"sapphirerapids", 48, 2048}, {"icelake-server", 48, 1280},
      {"cooperlake", 32, 1024},     {"cascadelake", 32, 1024},   {"skylake-avx512", 32, 1024},
      {"rocketlake", 48, 512},      {"icelake-client", 48, 512}, {"tigerlake", 48, 1280},
      {"alderlake", 48, 1280},      {"raptorlake", 48, 2048},    {"meteorlake", 48, 2048},
  };
  *l1d = 32 * 1024;
  *l2 = 256 * 1024;
  for (const Family& f : kFamilies)
    if (cpu.rfind(f.prefix, 0) == 0) {
      *l1d = f.l1d_kib * 1024;
      *l2 = f.l2_kib * 1024;
      return;
    }
}

bool host_caches(int64_t* l1d, int64_t* l2) {
  // glibc reads them from the CPU itself (cpuid), where sysfs may not list them (VMs).
  const long found_l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE), found_l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (found_l1d < 4096 || found_l2 < 16384) return false;
  *l1d = found_l1d;
  *l2 = found_l2;
  return true;
}

GemmChoices gemm_choices(const TargetProfile& t, ir::DType dtype) {
  GemmChoices c;
  const int64_t bytes = dtype == ir::DType::F32 ? 4 : 8;
  c.vl = std::max<int64_t>(1, t.vector_bits / 8 / bytes);
  c.nr = 2 * c.vl;
  // The register tile: mr x 2 accumulators, the 2 vectors of B's row and
  // the broadcast of A's value all in registers (AVX-512's 32: 12 x 32
  // floats; AVX2's 16: 6 x 16, the tile of BLIS's Haswell kernel).
  c.mr = std::clamp<int64_t>((t.vector_registers - 3) / 2, 1, kGemmMaxMR);
  // B's panel (kc x nr) in two thirds of L1, A's block (mc x kc) in half of
  // L2; both within the packing space the program plans (kGemmKC, kGemmMC).
  c.kc = std::clamp<int64_t>(t.l1d_bytes * 2 / 3 / (c.nr * bytes) / 8 * 8, 64, kGemmKC);
  c.mc = std::clamp<int64_t>(t.l2_bytes / 2 / (c.kc * bytes), c.mr, kGemmMC);
  c.mc -= c.mc % c.mr;
  // FMA latency (4 cycles on x86 cores since Skylake and Zen 2) times the
  // FMA units (2): 8 dot products in flight keep them busy.
  c.dot_chains = t.fma ? 8 : 4;
  // Dot-product tiles pay from 8 vectors of k (128 floats with AVX-512).
  c.dot_min_k = 8 * c.vl;
  c.vector_bits_loops = t.prefers_256 ? std::min(256, t.vector_bits) : t.vector_bits;
  // Multiply-adds a cycle: vl lanes on 2 FMA units (2 units, multiply and
  // add apart, without FMA). The split thresholds were measured on Zen 5
  // in f32 (32 a cycle): 2^16 for a forward kernel (batch 1 inference on 2
  // threads: 9 -> 5.5 us), 2^20 for a gradient kernel (~5 us of work; smaller
  // splits cost more than they saved): 2,048 and 32,768 cycles of work.
  const int64_t per_cycle = c.vl * (t.fma ? 2 : 1);
  c.split_min_work_forward = 2048 * per_cycle;
  c.split_min_work_gradient = 32768 * per_cycle;
  // A weight and its gradient larger together than one core's L2: at a
  // small batch the work on them is memory-bound, and split by rows each
  // core keeps its rows of both in its own L2 (Zen 5, 1 MiB: W1 of the
  // MNIST MLP, 256 x 784 f32; its gradient at batch 1 on 2 threads 22.7-28.0
  // -> 13.4-16.0 us, the B1 MLP's 34.8-40.9 -> 25.3-29.4 us; Sapphire
  // Rapids, 2 MiB, keeps that W1 whole on one core).
  c.split_weight_elems = std::max<int64_t>(1, t.l2_bytes / 2 / bytes);
  return c;
}

GemmPath gemm_path(const GemmChoices& c, bool planned, bool dot, int64_t m, int64_t k) {
  if (!planned) return GemmPath::Loops;
  if (m >= (dot ? c.dot_blocked_min_rows : c.blocked_min_rows) && k >= c.blocked_min_k) return GemmPath::Blocked;
  return dot ? GemmPath::Dot : GemmPath::Loops;
}

bool dot_tiles(const GemmChoices& c, bool along_k, int64_t k) { return along_k && k >= c.dot_min_k; }

const char* gemm_path_name(GemmPath p) {
  switch (p) {
    case GemmPath::Loops: return "loops";
    case GemmPath::Dot: return "dot";
    case GemmPath::Blocked: return "blocked";
  }
  return "?";
}

}  // namespace nabla::codegen
