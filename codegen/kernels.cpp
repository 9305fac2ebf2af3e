#include "codegen/kernels.h"

#include <chrono>

#include "codegen/cache.h"
#include "codegen/llvm_info.h"
#include "codegen_fingerprint.h"

#ifndef NABLA_VERSION
#define NABLA_VERSION "dev"
#endif

namespace nabla::codegen {
namespace {

constexpr const char* kJitPrefix = "nabla_model";

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

ProgramSet build_programs(const KernelSpec& spec, ir::DType dtype, bool forward, bool grad, bool sgd,
                          ProgramTraces* traces) {
  ProgramSet p;
  if (forward && !spec.outputs.empty())
    p.forward = build_program(spec, KernelKind::Forward, dtype, traces ? &traces->forward : nullptr);
  if (grad && spec.loss) p.grad = build_program(spec, KernelKind::Gradient, dtype, traces ? &traces->grad : nullptr);
  if (sgd && spec.loss) p.sgd = build_program(spec, KernelKind::SgdStep, dtype, traces ? &traces->sgd : nullptr);
  return p;
}

std::string key_material(const ProgramSet& programs, const std::string& prefix) {
  const EmitTarget t = host_target();
  std::string s = std::string("nabla ") + NABLA_VERSION + " codegen " + NABLA_CODEGEN_FINGERPRINT + " llvm " +
                  llvm_version() + "\n" + t.triple +
                  "\n" + t.cpu + "\n" + t.features + "\nprefix " + prefix + "\n";
  if (programs.forward) s += "forward\n" + programs.forward->str();
  if (programs.grad) s += "grad\n" + programs.grad->str();
  if (programs.sgd) s += "sgd\n" + programs.sgd->str();
  return s;
}

std::optional<CompiledKernels> compile_kernels(const KernelSpec& spec, ir::DType dtype,
                                               const KernelOptions& options, std::string* error) {
  CompiledKernels k;
  auto t0 = std::chrono::steady_clock::now();
  const ProgramSet programs = build_programs(spec, dtype, options.forward, options.grad, options.sgd);
  k.program_seconds = since(t0);
  t0 = std::chrono::steady_clock::now();
  k.key = cache_key(key_material(programs, kJitPrefix));
  k.hash_seconds = since(t0);
  const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  std::optional<std::string> object;
  if (options.use_cache) {
    t0 = std::chrono::steady_clock::now();
    object = cache_read(dir, k.key);
    k.cache_seconds = since(t0);
  }
  k.cache_hit = object.has_value();
  if (!object) {
    object = compile(Artifact::Object, kJitPrefix, programs, &k.times, true);
    if (options.use_cache) cache_write(dir, k.key, *object);
  }
  // The GEMM functions: one support object per element type and host,
  // compiled once and cached like the kernels.
  const std::string support_key = cache_key(key_material(ProgramSet{}, std::string("support ") + ir::dtype_name(dtype)));
  std::optional<std::string> support = options.use_cache ? cache_read(dir, support_key) : std::nullopt;
  k.support_cached = support.has_value();
  if (!support) {
    support = compile_support(dtype, &k.support_times);
    if (options.use_cache) cache_write(dir, support_key, *support);
  }
  t0 = std::chrono::steady_clock::now();
  k.jit = Jit::create(error);
  if (!k.jit || !k.jit->add_object(*support, error) || !k.jit->add_object(*object, error)) return std::nullopt;
  const std::string p = kJitPrefix;
  if (programs.forward) {
    k.forward = reinterpret_cast<ForwardFn>(k.jit->lookup(p + "_forward", error));
    k.forward_workspace = reinterpret_cast<WorkspaceFn>(k.jit->lookup(p + "_forward_workspace", error));
    k.forward_par = reinterpret_cast<ForwardParFn>(k.jit->lookup(p + "_forward_par", error));
    if (!k.forward || !k.forward_workspace || !k.forward_par) return std::nullopt;
  }
  if (programs.grad) {
    k.grad = reinterpret_cast<GradFn>(k.jit->lookup(p + "_grad", error));
    k.grad_workspace = reinterpret_cast<WorkspaceFn>(k.jit->lookup(p + "_grad_workspace", error));
    k.grad_par = reinterpret_cast<GradParFn>(k.jit->lookup(p + "_grad_par", error));
    if (!k.grad || !k.grad_workspace || !k.grad_par) return std::nullopt;
  }
  if (programs.sgd) {
    k.sgd = reinterpret_cast<SgdFn>(k.jit->lookup(p + "_sgd_step", error));
    k.sgd_workspace = reinterpret_cast<WorkspaceFn>(k.jit->lookup(p + "_sgd_step_workspace", error));
    k.sgd_par = reinterpret_cast<SgdParFn>(k.jit->lookup(p + "_sgd_step_par", error));
    if (!k.sgd || !k.sgd_workspace || !k.sgd_par) return std::nullopt;
  }
  k.times.link = since(t0);
  return k;
}

}  // namespace nabla::codegen
