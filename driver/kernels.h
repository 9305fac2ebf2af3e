// A model's compiled kernels: the kernel spec from the lowered model and its
// gradient program, compilation through the cache, and calls on arrays
// through the runtime's executor; with the checks arrays pass before a
// kernel sees them (names, shapes, distributions, the memory budget).
#pragma once

#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "codegen/kernels.h"
#include "driver/load.h"
#include "frontend/lower.h"
#include "runtime/executor.h"
#include "runtime/npz.h"
#include "runtime/train.h"

namespace nabla::driver {

// The forward outputs (simplified) and, when `grad`, the simplified loss and
// gradient of every param.
codegen::KernelSpec kernel_spec(ir::Context& ctx, const LoweredModel& m, bool forward, bool grad,
                                PassTimes* times = nullptr);

// What to compile, and how.
struct CompileOptions {
  runtime::DType dtype = runtime::DType::F32;
  bool forward = true, grad = true;
  bool sgd = false;            // also the fused SGD step kernel (the executor's sgd_step)
  int threads = 0;             // kernels' threads: 0 = every core (at most runtime::kMaxThreads)
  bool use_cache = true;       // the on-disk kernel cache
  std::string cache_dir = "";  // "" = $NABLA_CACHE_DIR, else $XDG_CACHE_HOME/nabla or ~/.cache/nabla
  // The CPU to compile for, by LLVM's name ("": this host); one whose
  // instruction sets this host has (its paths, e.g. x86-64-v3's AVX2 kernels).
  std::string cpu = "";
};

struct ModelKernels {
  std::optional<codegen::CompiledKernels> kernels;
  std::unique_ptr<runtime::Executor> executor;
  codegen::KernelSpec spec;
  runtime::DType dtype = runtime::DType::F32;

  // Arrays already checked against the model (names and shapes); n samples.
  runtime::ArrayMap forward(const runtime::ArrayMap& params, const runtime::ArrayMap& data, int64_t n);
  runtime::ArrayMap grad(const runtime::ArrayMap& params, const runtime::ArrayMap& data, int64_t n);
};

// Kernels of `exprs` elementwise operations (codegen::kernel_exprs) checked
// against the memory budget before LLVM compiles them: a ResourceError when
// LLVM would need more (codegen::kCompileBytesPerExpr a node).
void check_compile_size(int64_t exprs);

// Compiles (or loads from the cache) the kernels; throws Error when LLVM
// cannot load them. `times`: the passes' times are added there.
ModelKernels compile_model_kernels(ir::Context& ctx, const LoweredModel& m, const CompileOptions& options,
                                   PassTimes* times = nullptr);

// Compilation times (`nabla bench`): the front end (filled by the caller),
// then the kernels cold (no cache) and from the cache.
struct CompileTiming {
  double front = 0, cold = 0, cached = std::numeric_limits<double>::quiet_NaN();  // seconds; NaN: no cache
  bool hit = false;
  codegen::CompileTimes model, support;  // cold: the model's LLVM passes, the shared GEMM object's
  bool support_shipped = false;          // the shared GEMM object came with the build (not compiled)
};

// Compiles `spec`'s kernels cold, then from the cache when `use_cache` (the
// first of those calls fills it if needed). Throws Error when LLVM cannot
// load them.
CompileTiming time_compilation(const codegen::KernelSpec& spec, ir::DType dtype, bool forward, bool grad,
                               bool use_cache);

// The training loop's view of compiled kernels (runtime/train.h): sizes,
// names, and the output accuracy is measured on (a softmax over as many
// classes as a label declared a distribution), if any.
runtime::TrainModel train_model(const LoweredModel& m, ModelKernels& k);

// The evaluation kernel of validation (runtime::TrainModel::eval): one
// forward kernel whose inputs are the model's inputs then its labels, and
// whose outputs are the output accuracy is measured on (train_model's
// accuracy_output, when there is one) then the loss of each sample. A
// validation batch's loss and accuracy then cost one pass, where the
// gradient kernel (for the loss) and the forward kernel (for the outputs)
// cost three to four. Compiled and cached as any forward kernel; `model`
// gets it (train_model's result, whose executor stays for the rest). Its
// executor runs on the threads of model.executor (never called at the same
// time as it), so the model keeps one set of worker threads.
ModelKernels compile_eval_kernels(ir::Context& ctx, const LoweredModel& m, const CompileOptions& options,
                                  runtime::TrainModel& model);

// "array 'NAME' in 'FILE'", as messages about an array of a file name it.
std::string array_label(const std::string& name, const std::string& file);

// The array `name` of `file`, with the shape `expected` (after a batch axis
// when `batched`; *batch is set by the first batched array and then
// required); throws runtime::NpzError naming what is wrong.
const runtime::Array& require(const runtime::ArrayMap& arrays, const std::string& file, const std::string& name,
                              const std::vector<int64_t>& expected, bool batched, int64_t* batch);

// A label declared a distribution: every sample non-negative, summing to 1
// (within 1e-3 in f32, 1e-6 in f64); throws runtime::NpzError otherwise,
// naming the label and `file` when given ("label 'y' in 'val.npz' ...").
void check_distribution(const runtime::Array& a, const std::string& name, int64_t k, int64_t n,
                        runtime::DType dtype, const std::string& file = "");
// The same on `n` samples of `k` entries of `dtype` at `data`.
void check_distribution(const void* data, const std::string& name, int64_t k, int64_t n, runtime::DType dtype);

// The f64 interpreter's values for one evaluation of `roots` (every node
// reachable from them is kept), plus `extra` bytes: checked against the
// memory budget (runtime::check_memory) as `what`.
void check_interpreter_memory(const std::string& what, std::span<const ir::Node* const> roots, uint64_t extra = 0);

// Elements of one sample of `vars` (each var's per-sample size).
uint64_t elements_per_sample(const std::vector<const ir::Node*>& vars);
// The budget check (runtime/budget.h) for `n` samples of `per_sample`
// elements of `elem_bytes` each: "WHAT of N samples needs ...".
void check_batch_memory(const std::string& what, int64_t n, uint64_t per_sample, uint64_t elem_bytes);

}  // namespace nabla::driver
