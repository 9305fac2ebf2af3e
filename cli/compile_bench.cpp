// nabla compile (LLVM IR, assembly, object file, C header, kernel program)
// and nabla bench (compile times, kernel times).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/arrays.h"
#include "driver/artifacts.h"
#include "codegen/abi.h"
#include "codegen/jit.h"
#include "frontend/lower.h"
#include "runtime/init.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct CompileArgs {
  std::string model, emit, out, prefix, cpu;
  bool after_each_pass = false;  // --emit program: after each of build_program's passes
};

int run_compile(const CompileArgs& args, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  PassTimes times;
  auto loaded = load_model(args.model, *options, std::cerr, Stage::Check, &times);
  if (!loaded) return kExitUserError;
  const bool binary = args.emit == "obj";
  if (args.out.empty() && binary) {
    print_error(std::cerr, "--emit " + args.emit + " needs -o FILE");
    return kExitUsage;
  }
  if (args.after_each_pass && args.emit != "program") {
    print_error(std::cerr, "--after-each-pass needs --emit program");
    return kExitUsage;
  }
  if (!args.out.empty() && args.out != "-") runtime::check_output(args.out, {args.model});
  ir::Context ctx;
  const LoweredModel m = times.time("lower", [&] { return lower_model(loaded->model, ctx); });
  driver::require_kernels(m, args.model);
  driver::ArtifactRequest request;
  request.emit = args.emit;
  request.dtype = global.dtype == "f64" ? ir::DType::F64 : ir::DType::F32;
  request.model_name = loaded->model.name.empty() ? args.model : loaded->model.name;
  request.after_each_pass = args.after_each_pass;
  request.cpu = args.cpu;
  request.prefix = args.prefix.empty() ? driver::c_identifier(loaded->model.name.empty()
                                                                  ? std::filesystem::path(args.model).stem().string()
                                                                  : loaded->model.name)
                                       : args.prefix;
  if (request.prefix != driver::c_identifier(request.prefix)) {
    print_error(std::cerr, "--prefix '" + request.prefix + "' is not a C identifier");
    return kExitUsage;
  }
  const std::string text = driver::compile_artifact(ctx, m, request, args.model, &times);
  if (global.time_passes) print_times(times, std::cerr);
  if (args.out.empty() || args.out == "-") {
    std::cout << text;
    return kExitOk;
  }
  runtime::write_output(args.out, text, {args.model});
  return kExitOk;
}

// --- bench -------------------------------------------------------------------

struct BenchArgs {
  std::string model;
  std::vector<int64_t> batches;
  double min_time = 0.3;  // seconds of timed calls per figure
  bool json = false;      // one JSON object per figure instead of text
};

struct Timing {
  double median = 0, min = 0;  // seconds per call
  int reps = 0;
  int threads_used = 1;  // the threads most of the timed calls ran on
};

// Counts the threads each call of a kernel ran on (Executor::last_call_threads).
class ThreadsUsed {
public:
  explicit ThreadsUsed(int threads) : calls_(static_cast<size_t>(threads) + 1) {}
  void add(int used) { ++calls_[static_cast<size_t>(std::clamp(used, 0, static_cast<int>(calls_.size()) - 1))]; }
  // The count most calls ran on.
  int most() const { return static_cast<int>(std::max_element(calls_.begin(), calls_.end()) - calls_.begin()); }

private:
  std::vector<int64_t> calls_;
};

// Times `f`: after a warm-up, repetitions of `iters` calls each (iters chosen
// so that one repetition takes >= 50 us, so the clock's cost does not count),
// at least 7 repetitions and until `min_time` has passed; per-call times.
template <typename F>
Timing time_calls(F&& f, double min_time) {
  for (int i = 0; i < 3; ++i) f();
  int64_t iters = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) f();
    if (seconds_since(t0) >= 50e-6 || iters >= (int64_t{1} << 20)) break;
    iters *= 2;
  }
  std::vector<double> t;
  const auto start = Clock::now();
  while (t.size() < 7 || (seconds_since(start) < min_time && t.size() < 100000)) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) f();
    t.push_back(seconds_since(t0) / static_cast<double>(iters));
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), static_cast<int>(t.size())};
}

std::string us(double s) {
  char buf[32];
  if (s < 1e-6) {
    std::snprintf(buf, sizeof buf, "%.1f ns", s * 1e9);
    return buf;
  }
  std::snprintf(buf, sizeof buf, s < 1e-3 ? "%.2f us" : "%.3f ms", s < 1e-3 ? s * 1e6 : s * 1e3);
  return buf;
}

// One figure as a JSON line (the fields of ../shared/baselines' programs).
void json_line(const std::string& model, const char* kind, int threads, int64_t batch, const Timing& t,
               const std::string& dtype) {
  std::printf("{\"impl\": \"nabla\", \"model\": \"%s\", \"kind\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, "
              "\"threads_used\": %d, \"batch\": %lld, \"median_us\": %.4f, \"min_us\": %.4f, \"reps\": %d, "
              "\"samples_per_s\": %.2f}\n",
              model.c_str(), kind, dtype.c_str(), threads, t.threads_used, static_cast<long long>(batch),
              t.median * 1e6, t.min * 1e6, t.reps, static_cast<double>(batch) / t.median);
}

// Said after a figure whose calls ran on fewer threads than the run has: a
// batch with too few samples for every thread, or a small batch's call kept
// on the calling thread because that was faster here (runtime/pool_choice.h).
std::string threads_note(const Timing& t, int threads) {
  if (t.threads_used >= threads) return "";
  return "  [ran on " + std::to_string(t.threads_used) + " of " + std::to_string(threads) + " threads]";
}

void print_compile_timing(const BenchArgs& args, const GlobalOptions& global, int threads, const driver::CompileTiming& c) {
  const auto& st = c.support;
  const double support = st.emit + st.optimize + st.codegen;  // the shared GEMM object
  if (args.json)
    std::printf("{\"impl\": \"nabla\", \"model\": \"%s\", \"kind\": \"compile\", \"dtype\": \"%s\", "
                "\"front_end_ms\": %.4f, \"cold_ms\": %.4f, \"cold_model_ms\": %.4f, \"support_ms\": %.4f, "
                "\"llvm_optimize_ms\": %.4f, \"llvm_codegen_ms\": %.4f, \"cached_ms\": %.4f, \"cache_hit\": %s}\n",
                args.model.c_str(), global.dtype.c_str(), c.front * 1e3, c.cold * 1e3, (c.cold - support) * 1e3,
                support * 1e3, c.model.optimize * 1e3,
                c.model.codegen * 1e3, std::isnan(c.cached) ? -1.0 : c.cached * 1e3, c.hit ? "true" : "false");
  if (!args.json) std::printf("%s: %s, %d thread%s\n", args.model.c_str(), global.dtype.c_str(), threads, threads == 1 ? "" : "s");
  if (!args.json) std::printf("compile: front end (parse..differentiate) %s; kernels cold %s (the model %s: LLVM "
              "optimize %s, codegen %s; the shared GEMM object %s); from the cache %s%s\n",
              us(c.front).c_str(), us(c.cold).c_str(), us(c.cold - support).c_str(), us(c.model.optimize).c_str(),
              us(c.model.codegen).c_str(), c.support_shipped ? "shipped with the build" : us(support).c_str(),
              std::isnan(c.cached) ? "-" : us(c.cached).c_str(),
              std::isnan(c.cached) ? "" : c.hit ? " (hit)" : " (MISS)");
}

// Inputs and labels of a batch of n (made in f64, then converted): inputs
// uniform in [-1, 1], labels in [0, 1], or one-hot for a distribution.
runtime::ArrayMap batch_data(const LoweredModel& m, const driver::ModelKernels& k, int64_t n, runtime::DType dtype,
                             std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0, 1);
  // Inputs, labels and outputs of the batch.
  std::vector<const ir::Node*> batch_vars(m.inputs);
  batch_vars.insert(batch_vars.end(), m.labels.begin(), m.labels.end());
  for (const auto& o : k.spec.outputs) batch_vars.push_back(o.second);
  driver::check_batch_memory("a batch", n, driver::elements_per_sample(batch_vars), 16);
  runtime::ArrayMap data;
  auto fill = [&](const ir::Node* v, bool label, bool distribution) {
    std::vector<int64_t> shape = v->shape().dims();
    shape.insert(shape.begin(), n);
    runtime::Array a = runtime::Array::zeros(shape, runtime::DType::F64);
    const int64_t per = v->shape().numel();
    for (int64_t s = 0; s < n; ++s) {
      if (distribution) {
        a.f64[static_cast<size_t>(s * per + static_cast<int64_t>(unit(rng) * static_cast<double>(per)) % per)] = 1;
        continue;
      }
      for (int64_t e = 0; e < per; ++e) a.f64[static_cast<size_t>(s * per + e)] = label ? unit(rng) : 2 * unit(rng) - 1;
    }
    data[v->name()] = a.as(dtype);
  };
  for (const ir::Node* v : m.inputs) fill(v, false, false);
  for (size_t i = 0; i < m.labels.size(); ++i) fill(m.labels[i], true, m.label_distribution[i]);
  return data;
}

// The data pointers of `vars` in `from`, for the kernels.
std::vector<const void*> pointers(const std::vector<const ir::Node*>& vars, const runtime::ArrayMap& from,
                                  runtime::DType dtype) {
  std::vector<const void*> r;
  for (const ir::Node* v : vars) {
    const runtime::Array& a = from.at(v->name());
    r.push_back(dtype == runtime::DType::F32 ? static_cast<const void*>(a.f32.data()) : a.f64.data());
  }
  return r;
}

// One batch's kernel times: forward, gradient, and a training step. Kernel
// calls on prepared pointers (the .npz conversions are not timed).
void time_kernels(const BenchArgs& args, const GlobalOptions& global, int threads, const LoweredModel& m,
                  driver::ModelKernels& k, const runtime::ArrayMap& data, const runtime::ArrayMap& params,
                  runtime::DType dtype, int64_t n) {
  const bool forward = !m.outputs.empty(), grad = m.loss != nullptr;
  const auto in = pointers(m.inputs, data, dtype), lab = pointers(m.labels, data, dtype);
  const auto par = pointers(m.params, params, dtype);
  Timing fwd, grd, step;
  if (forward) {
    // The kernels' outputs, 64-byte aligned as the library's arrays are.
    std::vector<runtime::AlignedVector<double>> out;
    std::vector<void*> outs;
    for (const auto& o : k.spec.outputs) out.emplace_back(static_cast<size_t>(o.second->shape().numel() * n));
    for (auto& o : out) outs.push_back(o.data());
    ThreadsUsed used(threads);
    fwd = time_calls([&] {
      k.executor->forward(in, par, outs, n);
      used.add(k.executor->last_call_threads());
    }, args.min_time);
    fwd.threads_used = used.most();
    if (args.json) json_line(args.model, "forward", threads, n, fwd, global.dtype);
    else std::printf("  forward       %12s/call  (min %s, %d calls)  %12.0f samples/s%s\n", us(fwd.median).c_str(),
                us(fwd.min).c_str(), fwd.reps, static_cast<double>(n) / fwd.median, threads_note(fwd, threads).c_str());
  }
  if (!grad) return;
  std::vector<runtime::AlignedVector<double>> gs;
  std::vector<void*> gp;
  double loss[1];
  for (const ir::Node* p : m.params) gs.emplace_back(static_cast<size_t>(p->shape().numel()));
  for (auto& v : gs) gp.push_back(v.data());
  ThreadsUsed grad_used(threads);
  grd = time_calls([&] {
    k.executor->grad(in, lab, par, loss, gp, n);
    grad_used.add(k.executor->last_call_threads());
  }, args.min_time);
  grd.threads_used = grad_used.most();
  if (args.json) json_line(args.model, "gradient", threads, n, grd, global.dtype);
  else std::printf("  gradient      %12s/call  (min %s, %d calls)  %12.0f samples/s%s\n", us(grd.median).c_str(),
              us(grd.min).c_str(), grd.reps, static_cast<double>(n) / grd.median, threads_note(grd, threads).c_str());
  // A training step: the loss, the gradient and p -= lr * g on every param
  // (the fused SGD step kernel on one thread).
  runtime::ArrayMap train = params;
  std::vector<void*> tpm;
  for (const void* p : pointers(m.params, train, dtype)) tpm.push_back(const_cast<void*>(p));
  ThreadsUsed step_used(threads);
  step = time_calls([&] {
    k.executor->sgd_step(in, lab, tpm, loss, 1e-6, n);
    step_used.add(k.executor->last_call_threads());
  }, args.min_time);
  step.threads_used = step_used.most();
  if (args.json) json_line(args.model, "train_step", threads, n, step, global.dtype);
  else std::printf("  train step    %12s/step  (min %s, %d steps)  %12.0f samples/s  (loss, gradient, SGD update)%s\n",
              us(step.median).c_str(), us(step.min).c_str(), step.reps, static_cast<double>(n) / step.median,
              threads_note(step, threads).c_str());
  if (forward && !args.json) std::printf("  gradient / forward  %.2f\n", grd.median / fwd.median);
}

int run_bench(const BenchArgs& args, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  const runtime::DType dtype = dtype_of(global);
  const auto t0 = Clock::now();
  auto loaded = load_model(args.model, *options, std::cerr);
  if (!loaded) return kExitUserError;
  ir::Context ctx;
  const LoweredModel m = lower_model(loaded->model, ctx);
  const bool forward = !m.outputs.empty(), grad = m.loss != nullptr;
  const codegen::KernelSpec spec = driver::kernel_spec(ctx, m, forward, grad);
  const double front = seconds_since(t0);
  const ir::DType dt = dtype == runtime::DType::F32 ? ir::DType::F32 : ir::DType::F64;
  driver::CompileTiming compiled = driver::time_compilation(spec, dt, forward, grad, !global.no_cache);
  compiled.front = front;
  driver::CompileOptions co = compile_options(global, dtype);
  co.forward = forward;
  co.grad = grad;
  co.sgd = grad;
  co.use_cache = false;
  driver::ModelKernels k = driver::compile_model_kernels(ctx, m, co);
  const int threads = thread_count(global);
  print_compile_timing(args, global, threads, compiled);

  std::mt19937_64 rng(global.seed.value_or(1));
  const runtime::ArrayMap params = driver::initial_params(loaded->model, global.seed.value_or(1), dtype);
  for (int64_t n : args.batches) {
    const runtime::ArrayMap data = batch_data(m, k, n, dtype, rng);
    if (!args.json) std::printf("batch %lld:\n", static_cast<long long>(n));
    time_kernels(args, global, threads, m, k, data, params, dtype, n);
  }
  return kExitOk;
}

std::vector<int64_t> parse_batches(const std::string& text) {
  std::vector<int64_t> r;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = text.find(',', at);
    const std::string part = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    std::string checked = part;
    const std::string why = positive_integer("batch size", kMaxBatch)(checked);
    if (!why.empty()) throw CLI::ValidationError("--batch", why);
    r.push_back(std::stoll(part));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return r;
}

}  // namespace

void add_compile_bench_commands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto cargs = std::make_shared<CompileArgs>();
  auto* compile = app.add_subcommand(
      "compile", "Compile the forward and gradient kernels: LLVM IR, assembly, an object file, or its C header");
  compile->add_option("MODEL", cargs->model, "the .nn file")->required();
  compile->add_option("--emit", cargs->emit,
                      "llvm, asm, obj, header, program (the loop program before LLVM), or paths (each GEMM's path "
                      "on the CPU at batches 1, 32, 128, 1024)")
      ->required()
      ->check(CLI::IsMember({"llvm", "asm", "obj", "header", "program", "paths"}));
  compile->add_option("--cpu", cargs->cpu,
                      "the CPU to compile for, by LLVM's name (znver5, sapphirerapids, x86-64-v3, ...; default: "
                      "this one)")
      ->check(CLI::Validator(
          [](const std::string& v) {
            return v.empty() ? std::string("an empty CPU name: leave --cpu out to compile for this CPU") : "";
          },
          "CPU"));
  compile->add_flag("--after-each-pass", cargs->after_each_pass,
                    "with --emit program: the program after each pass, under a line 'KERNEL after PASS'");
  compile->add_option("-o,--output", cargs->out, "the file to write (default for text: standard output)");
  compile->add_option("--prefix", cargs->prefix, "prefix of the function names (default: the model's name)");
  compile->callback([cargs, &action, &global] {
    action = [cargs, &global] { return run_compile(*cargs, global); };
  });

  auto bargs = std::make_shared<BenchArgs>();
  auto* bench = app.add_subcommand("bench", "Time compilation and the forward and gradient kernels");
  bench->add_option("MODEL", bargs->model, "the .nn file")->required();
  auto batch_text = std::make_shared<std::string>("32");
  bench->add_option("--batch", *batch_text, "batch size, or a comma-separated list (default 32)");
  bench->add_option("--min-time", bargs->min_time, "seconds of timed calls per figure (default 0.3)")
      ->check(positive_number("time per figure in seconds", 60));
  bench->add_flag("--json", bargs->json, "one JSON object per figure (for scripts)");
  bench->callback([bargs, batch_text, &action, &global] {
    bargs->batches = parse_batches(*batch_text);
    action = [bargs, &global] { return run_bench(*bargs, global); };
  });
}

}  // namespace nabla::cli
