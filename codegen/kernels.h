// A model's kernels, compiled and loaded in process: the programs
// (program.h), the cache (cache.h), the object (jit.h), the JIT, and the
// ABI's function pointers (abi.h).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codegen/abi.h"
#include "codegen/jit.h"
#include "codegen/program.h"

namespace nabla::codegen {

struct KernelOptions {
  bool forward = true, grad = true;
  bool sgd = false;  // also the fused SGD step kernel
  bool use_cache = true;
  std::string cache_dir = "";  // "" = default_cache_dir()
  // The CPU the kernels are compiled for, by LLVM's name ("": this host).
  // Its instruction sets must be this host's: the kernels run here (a
  // choice of path for a CPU like another, e.g. x86-64-v3's AVX2 kernels).
  std::string cpu = "";
  // `cpu`'s tuning and choices with only the instruction sets this host has
  // (with_host_instructions, jit.h): another CPU's paths, run here (tests).
  bool host_instructions = false;
  // Called with kernel_exprs of the programs before LLVM is given any (not
  // when every piece comes from the cache); may
  // throw to refuse kernels too large to compile (the driver checks them
  // against the memory budget).
  std::function<void(int64_t exprs)> check_size;
};

struct CompiledKernels {
  std::unique_ptr<Jit> jit;  // owns the code the pointers point into
  ForwardFn forward = nullptr;
  GradFn grad = nullptr;
  WorkspaceFn forward_workspace = nullptr, grad_workspace = nullptr;
  SgdFn sgd = nullptr;
  WorkspaceFn sgd_workspace = nullptr;
  // The _par twins (abi.h), set with their kernels.
  ForwardParFn forward_par = nullptr;
  GradParFn grad_par = nullptr;
  SgdParFn sgd_par = nullptr;
  double program_seconds = 0;  // batching, fusion, buffer planning
  double hash_seconds = 0, cache_seconds = 0;
  CompileTimes times;          // LLVM, summed over the kernels (compiled in parallel); zero on a cache hit except link
  bool cache_hit = false;
  // The support object (the GEMM functions shared by every model's kernels):
  // from the cache, or compiled in `support_times`.
  bool support_cached = false;
  bool support_shipped = false;  // from the build (shipped_support_dir)
  CompileTimes support_times;
  std::vector<std::string> keys;  // the cache entries of the objects: one per kernel, or per piece of one (emit.h)
};

// Each kernel's program after each pass (build_program's `trace`).
struct ProgramTraces {
  PassTrace forward, grad, sgd;
};

// The key material and programs of a spec (also what `compile` prints).
ProgramSet build_programs(const KernelSpec& spec, ir::DType dtype, bool forward, bool grad, bool sgd = false,
                          ProgramTraces* traces = nullptr);

// The elementwise operations (expression nodes) of the programs: what
// LLVM's time and memory follow (a sum of 5,000 sines, 90,839 nodes over
// the gradient and step kernels: 215 MB at its peak for `nabla compile
// --emit obj`, the process included; the MNIST MLP: 88 nodes; 512 tanh
// layers: 16,920 nodes, 0.6 s).
int64_t kernel_exprs(const ProgramSet& programs);
// The memory LLVM is taken to need per node when the kernels are checked
// against a budget before LLVM starts (KernelOptions::check_size): about
// twice the most measured, 0.7 to 1.7 KB a node beyond the process's own
// 70 MB (nested tanh/sin chains, sums of sines, sums of exp * log terms,
// 12,000 to 180,000 nodes). It was 20 KB while one loop could read
// hundreds of buffers and LLVM's vectorizer took memory and time
// quadratic in them (fuse_epilogues.h, kMaxLoopBuffers): 1.8 GB and 31 s
// for the sines.
constexpr uint64_t kCompileBytesPerExpr = 4'000;

// The text the cache key hashes for these programs and function prefix on `target`.
std::string key_material(const ProgramSet& programs, const std::string& prefix, const EmitTarget& target);

// The cache key of the shared GEMM support object of `dtype` for `target`.
std::string support_key(ir::DType dtype, const EmitTarget& target);

// The target's profile and choices, and the path each GEMM step of the
// programs takes on it at each of `batches` (`nabla compile --emit paths`).
std::string gemm_paths_text(const ProgramSet& programs, const EmitTarget& target, ir::DType dtype,
                            const std::vector<int64_t>& batches);

// nullopt and `error` when LLVM cannot load the result (never on user input).
std::optional<CompiledKernels> compile_kernels(const KernelSpec& spec, ir::DType dtype,
                                               const KernelOptions& options, std::string* error);

}  // namespace nabla::codegen
