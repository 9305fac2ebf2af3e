#include "driver/artifacts.h"

#include <cctype>

#include "codegen/abi.h"
#include "codegen/jit.h"
#include "driver/error.h"
#include "driver/kernels.h"

namespace nabla::driver {
namespace {

std::vector<codegen::ArgDoc> docs(const std::vector<const ir::Node*>& vars) {
  std::vector<codegen::ArgDoc> r;
  for (const ir::Node* v : vars) r.push_back({v->name(), v->shape().dims()});
  return r;
}

// `header`: the C declarations of the kernels.
std::string header_text(const ArtifactRequest& r, const codegen::KernelSpec& spec, bool forward, bool grad) {
  codegen::HeaderInfo info;
  info.prefix = r.prefix;
  info.model_name = r.model_name;
  info.dtype = r.dtype == ir::DType::F32 ? "float" : "double";
  info.inputs = docs(spec.inputs);
  info.labels = docs(spec.labels);
  info.params = docs(spec.params);
  for (const auto& [name, node] : spec.outputs) info.outputs.push_back({name, node->shape().dims()});
  info.forward = forward;
  info.grad = grad;
  return codegen::c_header(info);
}

// `program` after each pass: a header line per pass, then the program after it.
std::string passes_text(const std::string& kernel, const codegen::PassTrace& trace) {
  std::string text;
  for (const auto& [pass, program] : trace) text += kernel + " after " + pass + "\n" + program;
  return text;
}

// `program`, `paths`, `llvm`, `asm` or `obj`: the kernel programs, the GEMMs' paths on
// the target, or what LLVM makes of them.
std::string kernels_text(const ArtifactRequest& r, const codegen::KernelSpec& spec, bool forward, bool grad,
                         PassTimes& times) {
  codegen::ProgramTraces traces;
  const codegen::ProgramSet programs = times.time("lower to loops (batching, fusion, buffers)", [&] {
    return codegen::build_programs(spec, r.dtype, forward, grad, grad, r.after_each_pass ? &traces : nullptr);
  });
  if (r.after_each_pass)
    return passes_text("forward", traces.forward) + passes_text("grad", traces.grad) +
           passes_text("sgd_step", traces.sgd);
  std::string error;
  const std::optional<codegen::EmitTarget> target = codegen::target_for_cpu(r.cpu, &error);
  if (!target) throw Error(error);
  std::string text;
  if (r.emit == "paths") return codegen::gemm_paths_text(programs, *target, r.dtype, {1, 32, 128, 1024});
  if (r.emit == "program") {
    if (programs.forward) text += "forward\n" + programs.forward->str();
    if (programs.grad) text += "grad\n" + programs.grad->str();
    if (programs.sgd) text += "sgd_step\n" + programs.sgd->str();
    return text;
  }
  check_compile_size(codegen::kernel_exprs(programs));
  const auto what = r.emit == "llvm"  ? codegen::Artifact::LLVM
                    : r.emit == "asm" ? codegen::Artifact::Asm
                                      : codegen::Artifact::Object;
  codegen::CompileTimes ct;
  text = codegen::compile(what, r.prefix, programs, *target, &ct);
  times.add("LLVM IR emission", ct.emit);
  times.add("LLVM optimize", ct.optimize);
  if (what != codegen::Artifact::LLVM) times.add("LLVM codegen", ct.codegen);
  return text;
}

}  // namespace

std::string c_identifier(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) s = "m_" + s;
  return s;
}

void require_kernels(const LoweredModel& m, const std::string& file) {
  if (m.outputs.empty() && !m.loss) throw Error("'" + file + "' has no output and no loss: there is no kernel to compile");
}

std::string compile_artifact(ir::Context& ctx, const LoweredModel& m, const ArtifactRequest& request,
                             const std::string& file, PassTimes* times) {
  PassTimes ignored;
  PassTimes& t = times ? *times : ignored;
  require_kernels(m, file);
  const bool forward = !m.outputs.empty(), grad = m.loss != nullptr;
  const codegen::KernelSpec spec = kernel_spec(ctx, m, forward, grad, &t);
  return request.emit == "header" ? header_text(request, spec, forward, grad)
                                  : kernels_text(request, spec, forward, grad, t);
}

}  // namespace nabla::driver
