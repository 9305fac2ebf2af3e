#include "codegen/jit.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/CommandLine.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "codegen/compile_heap.h"
#include "codegen/llvm_info.h"
#include "ir/assert.h"

namespace nabla::codegen {
namespace {

// LLVM's target registry is process-wide; registering the native target is
// the one piece of global set-up, done once.
void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    // Expert hook: extra LLVM options (e.g. "-debug-pass-manager"), read once.
    if (const char* extra = std::getenv("NABLA_LLVM_ARGS"); extra && *extra) {
      std::vector<std::string> words{"nabla"};
      std::istringstream in(extra);
      for (std::string w; in >> w;) words.push_back(w);
      std::vector<const char*> argv;
      for (const auto& w : words) argv.push_back(w.c_str());
      llvm::cl::ParseCommandLineOptions(static_cast<int>(argv.size()), argv.data());
    }
  });
}

class Timer {
public:
  explicit Timer(double* into) : into_(into), t0_(std::chrono::steady_clock::now()) {}
  ~Timer() {
    if (into_) *into_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

private:
  double* into_;
  std::chrono::steady_clock::time_point t0_;
};

const llvm::Target* lookup_target(const std::string& triple);

std::unique_ptr<llvm::TargetMachine> target_machine(const EmitTarget& t) {
  const llvm::Target* target = lookup_target(t.triple);
  llvm::TargetOptions options;
  return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
      t.triple, t.cpu, t.features, options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
}

void optimize(llvm::Module& module, llvm::TargetMachine& tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  tuning.LoopInterleaving = true;
  // Full unrolling of the many constant-trip loops multiplies code size and
  // compile time by ~4 (the MLP: 280 -> 75 ms) for no measured gain: the hot
  // loops are vectorized and interleaved, and GEMMs are blocked explicitly.
  tuning.LoopUnrolling = false;
  llvm::PassBuilder pb(&tm, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(module, mam);
}

}  // namespace

namespace {

const llvm::Target* lookup_target(const std::string& triple) {
  initialize_llvm();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  NABLA_ASSERT(target, "no LLVM target for " + triple + ": " + error);
  return target;
}

// The profile LLVM's description of `cpu` (with `features`) gives: vector
// width and registers, FMA, its tuning of 512-bit loops; the caches from
// the table of CPU families (host_target reads the host's own).
TargetProfile profile_of(const EmitTarget& t) {
  TargetProfile p;
  p.cpu = t.cpu;
  family_caches(t.cpu, &p.l1d_bytes, &p.l2_bytes);
  // x86 feature names only on x86 (LLVM 19's checkFeatures is fatal on a
  // name the target does not know); elsewhere the defaults: 128-bit vectors.
  if (!llvm::Triple(t.triple).isX86()) return p;
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      lookup_target(t.triple)->createMCSubtargetInfo(t.triple, t.cpu, t.features));
  const bool avx512 = sti->checkFeatures("+avx512f");
  p.vector_bits = avx512 ? 512 : sti->checkFeatures("+avx2") ? 256 : 128;
  p.vector_registers = avx512 ? 32 : 16;
  p.fma = sti->checkFeatures("+fma");
  p.prefers_256 = avx512 && sti->checkFeatures("+prefer-256-bit");
  return p;
}

}  // namespace

EmitTarget host_target() {
  static const EmitTarget host = [] {
  EmitTarget t;
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  std::vector<std::string> features;
  for (const auto& f : llvm::sys::getHostCPUFeatures()) features.push_back((f.second ? "+" : "-") + f.first().str());
  std::sort(features.begin(), features.end());
  for (const std::string& f : features) t.features += (t.features.empty() ? "" : ",") + f;
  t.profile = profile_of(t);
  t.profile.caches_measured = host_caches(&t.profile.l1d_bytes, &t.profile.l2_bytes);
  return t;
  }();
  return host;
}

std::optional<EmitTarget> target_for_cpu(const std::string& cpu, std::string* error) {
  if (cpu.empty() || cpu == "host" || cpu == llvm::sys::getHostCPUName()) return host_target();
  EmitTarget t;
  t.triple = llvm::sys::getProcessTriple();
  std::unique_ptr<llvm::MCSubtargetInfo> sti(lookup_target(t.triple)->createMCSubtargetInfo(t.triple, "", ""));
  if (!sti->isCPUStringValid(cpu)) {
    // The name as given, fit for a terminal (CPU names are printable ASCII).
    std::string shown;
    for (char c : cpu.substr(0, 64)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      shown += c >= 0x20 && c < 0x7f ? std::string(1, c) : std::string(hex);
    }
    *error = "'" + shown + (cpu.size() > 64 ? "..." : "") + "' is not a CPU LLVM " + llvm_version() + " knows for " + t.triple +
             " (names as in clang's -mcpu: znver5, sapphirerapids, x86-64-v3, ...)";
    return std::nullopt;
  }
  // A 32-bit CPU (i686, pentium4, k6, ...) cannot run x86-64 code: LLVM
  // would stop the process creating a target machine for it.
  const llvm::Triple triple(t.triple);
  if (triple.getArch() == llvm::Triple::x86_64) {
    std::unique_ptr<llvm::MCSubtargetInfo> named(lookup_target(t.triple)->createMCSubtargetInfo(t.triple, cpu, ""));
    if (!named->checkFeatures("+64bit")) {
      *error = "'" + cpu + "' is a 32-bit CPU: nabla compiles 64-bit code (" + t.triple + ")";
      return std::nullopt;
    }
  }
  t.cpu = cpu;
  t.profile = profile_of(t);
  return t;
}

std::string missing_on_host(const EmitTarget& target) {
  if (target.cpu == host_target().cpu && target.features == host_target().features) return "";
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      lookup_target(target.triple)->createMCSubtargetInfo(target.triple, target.cpu, target.features));
  // The host's map names every instruction-set feature LLVM detects, with
  // whether this CPU has it (tuning features are not in it: they do not fault).
  std::vector<std::string> missing;
  for (const auto& f : llvm::sys::getHostCPUFeatures())
    if (!f.second && sti->checkFeatures("+" + f.first().str())) missing.push_back(f.first().str());
  std::sort(missing.begin(), missing.end());
  std::string text;
  for (const std::string& m : missing) text += (text.empty() ? "" : " ") + m;
  return text;
}

EmitTarget with_host_instructions(const EmitTarget& target) {
  const std::string missing = missing_on_host(target);
  if (missing.empty()) return target;
  EmitTarget t = target;
  std::istringstream names(missing);
  for (std::string f; names >> f;) t.features += (t.features.empty() ? "-" : ",-") + f;
  t.profile = profile_of(t);
  return t;
}

namespace {

std::string finish(Artifact what, llvm::Module& module_ref, const EmitTarget& target, CompileTimes* times);

}  // namespace

std::string compile_support(ir::DType dtype, const EmitTarget& target, CompileTimes* times) {
  advise_compile_heap();
  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> module;
  {
    Timer t(times ? &times->emit : nullptr);
    module = emit_support_module(context, dtype, target);
  }
  return finish(Artifact::Object, *module, target, times);
}

std::string compile(Artifact what, const std::string& prefix, const ProgramSet& programs, const EmitTarget& for_target,
                    CompileTimes* times, bool external_gemm, KernelPiece piece) {
  advise_compile_heap();  // each compiling thread's heap, once
  EmitTarget target = for_target;
  target.external_gemm = external_gemm;
  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> module;
  {
    Timer t(times ? &times->emit : nullptr);
    module = emit_module(context, prefix, programs, target, piece);
  }
  return finish(what, *module, target, times);
}

namespace {

std::string finish(Artifact what, llvm::Module& module_ref, const EmitTarget& target, CompileTimes* times) {
  llvm::Module* module = &module_ref;
  std::unique_ptr<llvm::TargetMachine> tm = target_machine(target);
  module->setDataLayout(tm->createDataLayout());
  {
    Timer t(times ? &times->optimize : nullptr);
    optimize(*module, *tm);
  }
  std::string out;
  if (what == Artifact::LLVM) {
    llvm::raw_string_ostream os(out);
    module->print(os, nullptr);
    return out;
  }
  Timer t(times ? &times->codegen : nullptr);
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  const bool failed = tm->addPassesToEmitFile(
      pm, os, nullptr, what == Artifact::Asm ? llvm::CodeGenFileType::AssemblyFile : llvm::CodeGenFileType::ObjectFile);
  NABLA_ASSERT(!failed, "the host target cannot emit this file type");
  pm.run(*module);
  return std::string(buffer.begin(), buffer.end());
}

}  // namespace

struct Jit::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
};

Jit::Jit(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Jit::~Jit() = default;

std::unique_ptr<Jit> Jit::create(std::string* error) {
  initialize_llvm();
  // The kernels call libm and glibc's vector math library (libmvec).
  std::string ignored;
  llvm::sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1", &ignored);
  llvm::sys::DynamicLibrary::LoadLibraryPermanently("libm.so.6", &ignored);
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) {
    *error = llvm::toString(jtmb.takeError());
    return nullptr;
  }
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!jit) {
    *error = llvm::toString(jit.takeError());
    return nullptr;
  }
  auto generator = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!generator) {
    *error = llvm::toString(generator.takeError());
    return nullptr;
  }
  (*jit)->getMainJITDylib().addGenerator(std::move(*generator));
  auto impl = std::make_unique<Impl>();
  impl->jit = std::move(*jit);
  return std::unique_ptr<Jit>(new Jit(std::move(impl)));
}

bool Jit::add_object(const std::string& bytes, std::string* error) {
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(bytes, "nabla-kernels");
  if (auto err = impl_->jit->addObjectFile(std::move(buffer))) {
    *error = llvm::toString(std::move(err));
    return false;
  }
  return true;
}

void* Jit::lookup(const std::string& name, std::string* error) {
  auto address = impl_->jit->lookup(name);
  if (!address) {
    *error = llvm::toString(address.takeError());
    return nullptr;
  }
  return address->toPtr<void*>();
}

}  // namespace nabla::codegen
