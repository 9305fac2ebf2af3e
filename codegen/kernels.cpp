#include "codegen/kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

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

int64_t kernel_exprs(const ProgramSet& programs) {
  int64_t exprs = 0;
  for (const std::optional<Program>* p : {&programs.forward, &programs.grad, &programs.sgd})
    if (*p)
      for (const Step& s : (*p)->steps) exprs += static_cast<int64_t>(s.exprs.size());
  return exprs;
}

std::string key_material(const ProgramSet& programs, const std::string& prefix, const EmitTarget& t) {
  std::string s = std::string("nabla ") + NABLA_VERSION + " codegen " + NABLA_CODEGEN_FINGERPRINT + " llvm " +
                  llvm_version() + "\n" + t.triple + "\n" + t.cpu + "\n" + t.features + "\n" + t.profile.str() +
                  "\nprefix " + prefix + "\n";
  if (programs.forward) s += "forward\n" + programs.forward->str();
  if (programs.grad) s += "grad\n" + programs.grad->str();
  if (programs.sgd) s += "sgd\n" + programs.sgd->str();
  return s;
}

std::string support_key(ir::DType dtype, const EmitTarget& target) {
  return cache_key(key_material(ProgramSet{}, std::string("support ") + ir::dtype_name(dtype), target));
}

std::string gemm_paths_text(const ProgramSet& programs, const EmitTarget& target, ir::DType dtype,
                            const std::vector<int64_t>& batches) {
  const GemmChoices c = gemm_choices(target.profile, dtype);
  auto num = [](int64_t v) { return std::to_string(v); };
  std::string s = "target: " + target.profile.str() + "\n";
  s += std::string(ir::dtype_name(dtype)) + " GEMM: tile " + num(c.mr) + " x " + num(c.nr) + ", k block " + num(c.kc) +
       ", row block " + num(c.mc) + "; dot tiles from k " + num(c.dot_min_k) + " (" + num(c.dot_chains) +
       " chains); blocked from " + num(c.blocked_min_rows) + " rows and k " + num(c.blocked_min_k) +
       " (x W^T from " + num(c.dot_blocked_min_rows) + " rows); loops vectorized at " +
       num(c.vector_bits_loops) + " bits; threads from " + num(c.split_min_work_forward) +
       " multiply-adds (in gradient kernels " + num(c.split_min_work_gradient) + ", except on weights of more than " +
       num(c.split_weight_elems) + " elements)\n";
  auto dim = [&](const Dim& d, int64_t n) { return d.times_n ? d.value * n : d.value; };
  auto dim_text = [&](const Dim& d) { return d.times_n ? (d.value == 1 ? "n" : num(d.value) + "n") : num(d.value); };
  // `gradient`: a gradient or SGD-step kernel (split_min_work).
  auto kernel = [&](const std::optional<Program>& p, const char* name, bool gradient) {
    if (!p) return;
    for (size_t i = 0; i < p->steps.size(); ++i) {
      const Step& st = p->steps[i];
      if (st.kind != StepKind::Gemm) continue;
      const std::string layout = std::string(st.a.col_stride == 1 ? "N" : "T") + (st.b.col_stride == 1 ? "N" : "T");
      const bool dot = dot_tiles(c, st.a.col_stride == 1 && st.b.row_stride == 1 && !st.kdim.times_n, st.kdim.value);
      s += std::string(name) + " step " + num(static_cast<int64_t>(i)) + ": " + layout + " " + dim_text(st.m) + " x " +
           dim_text(st.kdim) + " x " + dim_text(st.n) + (st.gemm_batched ? " per sample" : "") + ":";
      for (int64_t n : batches) {
        // A product per sample runs at its own size whatever the batch.
        const int64_t m = st.gemm_batched ? st.m.value : dim(st.m, n);
        const int64_t k = st.gemm_batched ? st.kdim.value : dim(st.kdim, n);
        s += " n=" + num(n) + " " + gemm_path_name(gemm_path(c, st.scratch >= 0, dot, m, k));
      }
      s += "; threads from " + num(split_min_work(c, gradient, gemm_weight_elems(st))) + "\n";
    }
  };
  kernel(programs.forward, "forward", false);
  kernel(programs.grad, "grad", true);
  kernel(programs.sgd, "sgd_step", true);
  return s;
}

namespace {

// One object to compile: one kernel's program, or a piece of it.
struct Unit {
  ProgramSet programs;
  KernelPiece piece;
  size_t steps = 0;  // the kernel's steps in this piece, about
};

size_t cores() { return std::max(1u, std::thread::hardware_concurrency()); }

// A kernel of at least 2 * kPieceSteps steps compiles in pieces, one per
// core at most (the MLP's gradient kernel, 29 steps, in two: its object
// alone took 100 ms of the MLP's 110 ms cold compile on 2 cores; the
// forward kernel, 4 steps, compiled beside it in 40). A module's own cost
// is small beside its steps' (the 2-8-1 model, compiled again and again in
// one process: its forward kernel, 4 steps, 18 ms; its gradient kernel, 15
// steps, 72 ms), so a kernel of 8 steps already gains from two cores: with
// pieces from 16 steps, the 2-8-1 model's gradient kernel compiled whole
// (cold compile, median of 6 alternated runs: 70.0 ms; in pieces from 8
// steps 61.2), a 2-layer tanh chain 69.4 against 61.2, the 20-layer
// sigmoid chain 181 against 168, the MLP unchanged (92.8 against 94.4).
// Each piece compiles its own copy of the shared units it calls
// (emit_kernel.cpp), so no more pieces than cores.
constexpr size_t kPieceSteps = 4;

// A module's own cost, in steps of a kernel: LLVM's set-up and the
// functions every module has.
constexpr size_t kModuleSteps = 1;

// The programs of `all`, one kernel each (forward, gradient, SGD step), a
// large kernel in pieces: the units compiled apart, in parallel, and
// cached apart. When one kernel is in pieces beside small ones (the
// gradient kernel beside the forward kernel), its first piece is shorter
// by the small ones' steps: the cores take the other pieces first (the
// most steps first), and the small kernels after the first piece on its
// core, so each core compiles about as many steps (the MLP 784-256-256-10,
// forward and gradient kernels: pieces of 13 and 12 steps compiled in 79
// and 87 ms, the forward kernel in 25 after the first: 104 ms; with a
// first piece of 10 steps, about as long as the other with the forward).
std::vector<Unit> compile_units_of(const ProgramSet& all) {
  std::vector<std::pair<ProgramSet, const Program*>> kernels;
  if (all.forward) kernels.emplace_back(ProgramSet{all.forward, std::nullopt, std::nullopt}, &*all.forward);
  if (all.grad) kernels.emplace_back(ProgramSet{std::nullopt, all.grad, std::nullopt}, &*all.grad);
  if (all.sgd) kernels.emplace_back(ProgramSet{std::nullopt, std::nullopt, all.sgd}, &*all.sgd);
  auto pieces = [](const Program& p) { return std::clamp<size_t>(p.steps.size() / kPieceSteps, 1, cores()); };
  const size_t in_pieces = static_cast<size_t>(
      std::count_if(kernels.begin(), kernels.end(), [&](const auto& k) { return pieces(*k.second) > 1; }));
  std::vector<Unit> units;
  for (const auto& [one, p] : kernels) {
    const size_t steps = p->steps.size(), count = pieces(*p);
    if (count == 1) {
      units.push_back(Unit{one, KernelPiece{}, steps});
      continue;
    }
    size_t others = 0;  // the small kernels' steps, when this is the one kernel in pieces
    if (in_pieces == 1)
      for (const auto& [o, q] : kernels)
        if (q != p) others += q->steps.size() + kModuleSteps;
    const size_t share = (steps + others) / count;
    const size_t first = share > others ? share - others : steps / count;
    for (size_t k = 0; k < count; ++k) {
      KernelPiece piece{static_cast<int>(k), static_cast<int>(count)};
      piece.begin = k == 0 ? 0 : first + (k - 1) * (steps - first) / (count - 1);
      piece.end = k + 1 == count ? steps : first + k * (steps - first) / (count - 1);
      units.push_back(Unit{one, piece, piece.end - piece.begin});
    }
  }
  return units;
}

// Compiles units[i] for each i of `todo` into objects[i], on up to as many
// threads as the machine has cores (each unit its own LLVM context), the
// units of most steps first; the LLVM times of all units add up in `times`.
void compile_units(const std::vector<Unit>& units, std::vector<size_t> todo, const EmitTarget& target,
                   std::vector<std::optional<std::string>>& objects, CompileTimes* times) {
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return units[a].steps > units[b].steps; });
  std::vector<CompileTimes> each(units.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < todo.size();) {
      const Unit& u = units[todo[j]];
      objects[todo[j]] = compile(Artifact::Object, kJitPrefix, u.programs, target, &each[todo[j]], true, u.piece);
    }
  };
  const size_t threads = std::min<size_t>(todo.size(), cores());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  for (const CompileTimes& c : each) {
    times->emit += c.emit;
    times->optimize += c.optimize;
    times->codegen += c.codegen;
  }
}

}  // namespace

std::optional<CompiledKernels> compile_kernels(const KernelSpec& spec, ir::DType dtype,
                                               const KernelOptions& options, std::string* error) {
  CompiledKernels k;
  std::optional<EmitTarget> target = target_for_cpu(options.cpu, error);
  if (!target) return std::nullopt;
  if (options.host_instructions) target = with_host_instructions(*target);
  if (const std::string missing = missing_on_host(*target); !missing.empty()) {
    *error = "kernels for CPU '" + target->cpu + "' cannot run on this one (" + host_target().cpu +
             "): it lacks " + missing;
    return std::nullopt;
  }
  auto t0 = std::chrono::steady_clock::now();
  const ProgramSet programs = build_programs(spec, dtype, options.forward, options.grad, options.sgd);
  k.program_seconds = since(t0);
  // One object per kernel: LLVM's time grows faster than a function's size,
  // kernels are independent (they share only the support object's GEMMs and
  // libm), and apart they compile on several cores and are cached apart.
  const std::vector<Unit> units = compile_units_of(programs);
  t0 = std::chrono::steady_clock::now();
  for (const Unit& u : units)
    k.keys.push_back(cache_key(key_material(u.programs, kJitPrefix, *target) + "piece " +
                               std::to_string(u.piece.index) + " of " + std::to_string(u.piece.count) + ", steps " +
                               std::to_string(u.piece.begin) + " to " + std::to_string(u.piece.end) + "\n"));
  k.hash_seconds = since(t0);
  const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  std::vector<std::optional<std::string>> objects(units.size());
  std::vector<size_t> missing;
  t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < units.size(); ++i) {
    if (options.use_cache) objects[i] = cache_read(dir, k.keys[i]);
    if (!objects[i]) missing.push_back(i);
  }
  k.cache_seconds = since(t0);
  k.cache_hit = missing.empty();
  if (!missing.empty() && options.check_size) options.check_size(kernel_exprs(programs));
  compile_units(units, missing, *target, objects, &k.times);
  if (options.use_cache)
    for (size_t i : missing) cache_write(dir, k.keys[i], *objects[i]);
  // The GEMM functions: one support object per element type and host. The
  // build compiles it for the machine it runs on (support_objects.cpp);
  // on another machine it is compiled once and cached like the kernels.
  const std::string skey = support_key(dtype, *target);
  std::optional<std::string> support = cache_read(shipped_support_dir(), skey);
  k.support_shipped = support.has_value();
  if (!support && options.use_cache) {
    support = cache_read(dir, skey);
    k.support_cached = support.has_value();
  }
  if (!support) {
    support = compile_support(dtype, *target, &k.support_times);
    if (options.use_cache) cache_write(dir, skey, *support);
  }
  t0 = std::chrono::steady_clock::now();
  k.jit = Jit::create(error);
  if (!k.jit || !k.jit->add_object(*support, error)) return std::nullopt;
  for (const std::optional<std::string>& object : objects)
    if (!k.jit->add_object(*object, error)) return std::nullopt;
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
