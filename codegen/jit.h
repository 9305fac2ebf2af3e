// From kernel programs to machine code: LLVM's optimization pipeline and code
// generator for the host CPU, and an ORC JIT that loads the object in process.
//
// Every path goes through one object file: the JIT loads the same object that
// `nabla compile --emit obj` writes and that the cache (cache.h) stores, so a
// cache hit skips emission, optimization and code generation and only links.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "codegen/emit.h"
#include "codegen/program.h"

namespace nabla::codegen {

// Wall time of each compilation pass, in seconds.
struct CompileTimes {
  double emit = 0, optimize = 0, codegen = 0, link = 0;
};

// The host: triple, CPU name, its features ("+avx2,+avx512f,...", sorted)
// and its profile (target.h; the caches read from the host).
EmitTarget host_target();

// A CPU by LLVM's name ("znver5", "sapphirerapids", "x86-64-v3"; "" or
// "host": host_target()), for this host's triple; nullopt and `error` for a
// name LLVM does not know.
std::optional<EmitTarget> target_for_cpu(const std::string& cpu, std::string* error);

// The instruction-set features `target` has and this host lacks, space
// separated ("" when its code runs here).
std::string missing_on_host(const EmitTarget& target);

// `target` with every instruction set this host lacks turned off
// ("-amx-tile,-avx512fp16,..." added to its features): the same CPU name,
// so LLVM's tuning for it, and the choices its profile gives, in code that
// runs here (missing_on_host is then ""). Another CPU's kernel paths can so
// be run and checked on this host. Turning a feature off may change the
// profile (no AVX-512 on the host: 256-bit vectors): compare the profiles
// before taking the result for the other CPU's paths.
EmitTarget with_host_instructions(const EmitTarget& target);

enum class Artifact { LLVM, Asm, Object };

// The optimized module as LLVM IR text, assembly, or an ELF object. `prefix`
// names the functions (prefix_forward, prefix_grad, ...).
// `external_gemm`: the GEMM functions are left to the support object (the JIT
// loads it beside); objects for users (AOT) define them. `piece`: of one
// kernel's program, that piece's module (emit.h).
std::string compile(Artifact what, const std::string& prefix, const ProgramSet& programs, const EmitTarget& target,
                    CompileTimes* times = nullptr, bool external_gemm = false, KernelPiece piece = {});

// The support object: the GEMM functions for one element type on `target`.
std::string compile_support(ir::DType dtype, const EmitTarget& target, CompileTimes* times = nullptr);

// An ORC LLJIT holding loaded objects. Each instance is independent (no
// global state beyond LLVM's own one-time target registration).
class Jit {
public:
  // nullptr and `error` set when the host target is unavailable.
  static std::unique_ptr<Jit> create(std::string* error);
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  bool add_object(const std::string& bytes, std::string* error);
  // The address of a defined function, or nullptr and `error`.
  void* lookup(const std::string& name, std::string* error);

private:
  struct Impl;
  explicit Jit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nabla::codegen
