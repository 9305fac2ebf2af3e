// A model's kernels, compiled and loaded in process: the programs
// (program.h), the cache (cache.h), the object (jit.h), the JIT, and the
// ABI's function pointers (abi.h).
#pragma once

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
  std::vector<std::string> keys;  // the cache entries of the kernels, one each (forward, gradient, SGD step)
};

// Each kernel's program after each pass (build_program's `trace`).
struct ProgramTraces {
  PassTrace forward, grad, sgd;
};

// The key material and programs of a spec (also what `compile` prints).
ProgramSet build_programs(const KernelSpec& spec, ir::DType dtype, bool forward, bool grad, bool sgd = false,
                          ProgramTraces* traces = nullptr);

// The text the cache key hashes for these programs and function prefix.
std::string key_material(const ProgramSet& programs, const std::string& prefix);

// The cache key of the shared GEMM support object of `dtype` for this host.
std::string support_key(ir::DType dtype);

// nullopt and `error` when LLVM cannot load the result (never on user input).
std::optional<CompiledKernels> compile_kernels(const KernelSpec& spec, ir::DType dtype,
                                               const KernelOptions& options, std::string* error);

}  // namespace nabla::codegen
