#include "driver/kernels.h"

#include <chrono>
#include <cmath>
#include <thread>

#include "driver/gradient.h"
#include "ir/assert.h"
#include "ir/simplify.h"
#include "driver/error.h"
#include "runtime/budget.h"

namespace nabla::driver {

codegen::KernelSpec kernel_spec(ir::Context& ctx, const LoweredModel& m, bool forward, bool grad,
                                PassTimes* times) {
  codegen::KernelSpec spec;
  spec.inputs = m.inputs;
  spec.labels = m.labels;
  spec.params = m.params;
  if (forward && !m.outputs.empty()) {
    std::vector<const ir::Node*> roots;
    for (const auto& o : m.outputs) roots.push_back(o.second);
    auto simplify = [&] { return ir::simplify(ctx, roots); };
    roots = times ? times->time("simplify", simplify) : simplify();
    for (size_t i = 0; i < roots.size(); ++i) spec.outputs.emplace_back(m.outputs[i].first, roots[i]);
  }
  if (grad && m.loss) {
    auto differentiate = [&] { return gradient_program(ctx, m, m.params, true); };
    GradientProgram p = times ? times->time("differentiate + simplify", differentiate) : differentiate();
    spec.loss = p.loss;
    spec.gradients = p.gradients;
  }
  return spec;
}

std::string array_label(const std::string& name, const std::string& file) {
  return "array '" + name + "' in '" + file + "'";
}

// The array `name` of `file`, with the shape `expected` (after a batch axis
// when `batched`); throws NpzError naming what is wrong.
const runtime::Array& require(const runtime::ArrayMap& arrays, const std::string& file, const std::string& name,
                     const std::vector<int64_t>& expected, bool batched, int64_t* batch) {
  auto it = arrays.find(name);
  if (it == arrays.end()) {
    std::string have;
    for (const auto& [n, a] : arrays) have += (have.empty() ? "" : ", ") + runtime::escaped(n);
    throw runtime::NpzError("'" + file + "' has no array '" + name + "' (it has: " +
                            (have.empty() ? "none" : have) + ")");
  }
  const runtime::Array& a = it->second;
  std::vector<int64_t> want = expected;
  if (batched) {
    if (a.shape.empty())
      throw runtime::NpzError(array_label(name, file) + " has shape [] but needs a batch axis first: expected [n" +
                              (expected.empty() ? "" : ", ") + runtime::shape_str(expected).substr(1));
    if (*batch < 0) *batch = a.shape[0];
    want.insert(want.begin(), *batch);
  }
  if (a.shape != want)
    throw runtime::NpzError(array_label(name, file) + " has shape " + runtime::shape_str(a.shape) +
                            ", expected " + runtime::shape_str(want) +
                            (batched ? " (the batch first; every input has the same batch size)" : ""));
  return a;
}

namespace {

// check_distribution over the entries `at(i)` (sample s, entry e at s*k+e).
template <typename At>
void check_distribution_at(At at, const std::string& name, int64_t k, int64_t n, runtime::DType dtype,
                           const std::string& file) {
  const double tol = dtype == runtime::DType::F32 ? 1e-3 : 1e-6;
  const std::string label = "label '" + name + "'" + (file.empty() ? "" : " in '" + file + "'");
  for (int64_t s = 0; s < n; ++s) {
    double total = 0;
    for (int64_t e = 0; e < k; ++e) {
      const double y = at(s * k + e);
      if (!std::isfinite(y))
        throw runtime::NpzError(label + " is declared a distribution, but sample " + std::to_string(s) +
                                " has a non-finite entry");
      if (y < 0)
        throw runtime::NpzError(label + " is declared a distribution, but sample " + std::to_string(s) +
                                " has a negative entry");
      total += y;
    }
    if (!(std::fabs(total - 1) <= tol))
      throw runtime::NpzError(label + " is declared a distribution, but sample " + std::to_string(s) +
                              " sums to " + std::to_string(total));
  }
}

}  // namespace

void check_distribution(const runtime::Array& a, const std::string& name, int64_t k, int64_t n,
                        runtime::DType dtype, const std::string& file) {
  check_distribution_at([&](int64_t i) { return a.at(static_cast<size_t>(i)); }, name, k, n, dtype, file);
}

void check_distribution(const void* data, const std::string& name, int64_t k, int64_t n, runtime::DType dtype) {
  if (dtype == runtime::DType::F32) {
    const auto* p = static_cast<const float*>(data);
    check_distribution_at([&](int64_t i) { return static_cast<double>(p[i]); }, name, k, n, dtype, "");
  } else {
    const auto* p = static_cast<const double*>(data);
    check_distribution_at([&](int64_t i) { return p[i]; }, name, k, n, dtype, "");
  }
}

uint64_t elements_per_sample(const std::vector<const ir::Node*>& vars) {
  uint64_t total = 0;
  for (const ir::Node* v : vars) total += static_cast<uint64_t>(v->shape().numel());
  return total;
}

void check_interpreter_memory(const std::string& what, std::span<const ir::Node* const> roots, uint64_t extra) {
  uint64_t total = extra;
  for (const ir::Node* n : ir::reachable(roots)) {
    const uint64_t bytes = runtime::product_bytes(static_cast<uint64_t>(n->shape().numel()), sizeof(double));
    total = bytes > UINT64_MAX - total ? UINT64_MAX : total + bytes;
  }
  runtime::check_memory(what, total);
}

void check_batch_memory(const std::string& what, int64_t n, uint64_t per_sample, uint64_t elem_bytes) {
  runtime::check_memory(what + " of " + std::to_string(n) + " samples",
                        runtime::product_bytes(static_cast<uint64_t>(std::max<int64_t>(n, 0)),
                                               runtime::product_bytes(per_sample, elem_bytes)));
}


void check_compile_size(int64_t exprs) {
  runtime::check_memory("compiling the model's kernels (" + std::to_string(exprs) +
                            " elementwise operations, for LLVM)",
                        static_cast<uint64_t>(exprs), codegen::kCompileBytesPerExpr);
}

namespace {

// The kernels of `spec` compiled (or loaded from the cache) as `o` says,
// with their executor.
ModelKernels compile_spec(codegen::KernelSpec spec, const CompileOptions& o, PassTimes* times,
                          const runtime::Executor* pool_of = nullptr) {
  ModelKernels k;
  const runtime::DType dtype = o.dtype;
  k.dtype = dtype;
  k.spec = std::move(spec);
  codegen::KernelOptions options;
  options.forward = o.forward;
  options.grad = o.grad;
  options.sgd = o.sgd;
  options.use_cache = o.use_cache;
  options.cache_dir = o.cache_dir;
  options.cpu = o.cpu;
  options.check_size = check_compile_size;
  std::string error;
  k.kernels = codegen::compile_kernels(
      k.spec, dtype == runtime::DType::F32 ? ir::DType::F32 : ir::DType::F64, options, &error);
  if (!k.kernels) throw Error("cannot load the compiled kernels: " + error);
  if (times) {
    const auto& t = k.kernels->times;
    times->add("lower to loops (batching, fusion, buffers)", k.kernels->program_seconds);
    times->add(k.kernels->cache_hit ? "kernel cache (hit)" : "kernel cache (miss)",
               k.kernels->hash_seconds + k.kernels->cache_seconds);
    times->add("LLVM IR emission", t.emit);
    times->add("LLVM optimize", t.optimize);
    times->add("LLVM codegen", t.codegen);
    times->add("JIT link", t.link);
  }
  runtime::ArgSizes sizes;
  sizes.elem_bytes = dtype == runtime::DType::F32 ? 4 : 8;
  for (const ir::Node* v : k.spec.inputs) sizes.inputs.push_back(v->shape().numel());
  for (const ir::Node* v : k.spec.labels) sizes.labels.push_back(v->shape().numel());
  for (const ir::Node* v : k.spec.params) sizes.params.push_back(v->shape().numel());
  for (const auto& out : k.spec.outputs) sizes.outputs.push_back(out.second->shape().numel());
  if (pool_of)
    k.executor = std::make_unique<runtime::Executor>(k.kernels->forward, k.kernels->forward_workspace,
                                                     k.kernels->grad, k.kernels->grad_workspace, std::move(sizes),
                                                     *pool_of);
  else
    k.executor = std::make_unique<runtime::Executor>(k.kernels->forward, k.kernels->forward_workspace,
                                                     k.kernels->grad, k.kernels->grad_workspace, std::move(sizes),
                                                     runtime::useful_threads(o.threads, runtime::kMaxThreads));
  if (k.kernels->sgd) k.executor->set_sgd(k.kernels->sgd, k.kernels->sgd_workspace, k.kernels->sgd_par);
  k.executor->set_parallel(k.kernels->forward_par, k.kernels->grad_par);
  return k;
}

}  // namespace

ModelKernels compile_model_kernels(ir::Context& ctx, const LoweredModel& m, const CompileOptions& o,
                                   PassTimes* times) {
  return compile_spec(kernel_spec(ctx, m, o.forward, o.grad, times), o, times);
}

ModelKernels compile_eval_kernels(ir::Context& ctx, const LoweredModel& m, const CompileOptions& o,
                                  runtime::TrainModel& model) {
  NABLA_ASSERT(m.loss, "an evaluation kernel needs a loss");
  codegen::KernelSpec spec;
  spec.inputs = m.inputs;
  spec.inputs.insert(spec.inputs.end(), m.labels.begin(), m.labels.end());
  spec.params = m.params;
  // Simplified together, so the output and the loss share their nodes (the
  // logits of a softmax and of its cross-entropy).
  std::vector<const ir::Node*> roots;
  if (model.accuracy_output >= 0) roots.push_back(m.outputs[static_cast<size_t>(model.accuracy_output)].second);
  roots.push_back(m.loss);
  roots = ir::simplify(ctx, roots);
  if (model.accuracy_output >= 0)
    spec.outputs.emplace_back(m.outputs[static_cast<size_t>(model.accuracy_output)].first, roots.front());
  spec.outputs.emplace_back("loss", roots.back());
  CompileOptions eo = o;
  eo.forward = true;
  eo.grad = false;
  eo.sgd = false;
  // On the training executor's threads: the loop calls one or the other.
  ModelKernels k = compile_spec(std::move(spec), eo, nullptr, model.executor);
  model.eval = k.executor.get();
  return k;
}

CompileTiming time_compilation(const codegen::KernelSpec& spec, ir::DType dtype, bool forward, bool grad,
                               bool use_cache) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  CompileTiming r;
  codegen::KernelOptions ko;
  ko.forward = forward;
  ko.grad = grad;
  ko.use_cache = false;
  ko.check_size = check_compile_size;
  std::string error;
  auto t0 = Clock::now();
  auto cold = codegen::compile_kernels(spec, dtype, ko, &error);
  r.cold = since(t0);
  if (!cold) throw Error("cannot load the compiled kernels: " + error);
  r.model = cold->times;
  r.support = cold->support_times;
  r.support_shipped = cold->support_shipped;
  if (use_cache) {
    ko.use_cache = true;
    codegen::compile_kernels(spec, dtype, ko, &error);  // fills the cache if needed
    t0 = Clock::now();
    auto cached = codegen::compile_kernels(spec, dtype, ko, &error);
    r.cached = since(t0);
    r.hit = cached && cached->cache_hit;
  }
  return r;
}

runtime::TrainModel train_model(const LoweredModel& m, ModelKernels& k) {
  runtime::TrainModel model;
  model.executor = k.executor.get();
  for (const ir::Node* p : m.params) {
    model.param_names.push_back(p->name());
    model.param_sizes.push_back(p->shape().numel());
  }
  for (const ir::Node* v : m.inputs) model.input_sizes.push_back(v->shape().numel());
  for (const ir::Node* v : m.labels) model.label_sizes.push_back(v->shape().numel());
  for (const auto& o : k.spec.outputs) model.output_sizes.push_back(o.second->shape().numel());
  for (size_t o = 0; o < m.outputs.size() && model.accuracy_output < 0; ++o)
    for (size_t l = 0; l < m.labels.size(); ++l)
      if (m.label_distribution[l] && m.outputs[o].second->op() == ir::Op::Softmax &&
          m.outputs[o].second->shape() == m.labels[l]->shape()) {
        model.accuracy_output = static_cast<int>(o);
        model.accuracy_label = static_cast<int>(l);
        break;
      }
  return model;
}

namespace {

// The arrays named like `vars`, in the kernel's element type.
std::vector<runtime::Array> gather(const runtime::ArrayMap& arrays, const std::vector<const ir::Node*>& vars,
                                   runtime::DType dtype) {
  std::vector<runtime::Array> r;
  for (const ir::Node* v : vars) r.push_back(arrays.at(v->name()).as(dtype));  // checked by check_arrays
  return r;
}

std::vector<const void*> pointers(const std::vector<runtime::Array>& arrays) {
  std::vector<const void*> r;
  for (const auto& a : arrays) r.push_back(a.bytes());
  return r;
}

}  // namespace

runtime::ArrayMap ModelKernels::forward(const runtime::ArrayMap& params, const runtime::ArrayMap& data,
                                        int64_t n) {
  const auto in = gather(data, spec.inputs, dtype);
  const auto par = gather(params, spec.params, dtype);
  runtime::ArrayMap result;
  std::vector<void*> outs;
  std::vector<std::string> names;
  std::vector<const ir::Node*> outputs;
  for (const auto& o : spec.outputs) outputs.push_back(o.second);
  check_batch_memory("the outputs", n, elements_per_sample(outputs), dtype == runtime::DType::F32 ? 4 : 8);
  for (const auto& [name, node] : spec.outputs) {
    std::vector<int64_t> shape = node->shape().dims();
    shape.insert(shape.begin(), n);
    names.push_back(name);
    result[name] = runtime::Array::zeros(shape, dtype);
  }
  for (const std::string& name : names) outs.push_back(result[name].bytes());
  executor->forward(pointers(in), pointers(par), outs, n);
  return result;
}

runtime::ArrayMap ModelKernels::grad(const runtime::ArrayMap& params, const runtime::ArrayMap& data, int64_t n) {
  const auto in = gather(data, spec.inputs, dtype);
  const auto lab = gather(data, spec.labels, dtype);
  const auto par = gather(params, spec.params, dtype);
  runtime::ArrayMap result;
  result["loss"] = runtime::Array::zeros({}, dtype);
  for (const ir::Node* p : spec.params) result[p->name()] = runtime::Array::zeros(p->shape().dims(), dtype);
  std::vector<void*> grads;
  for (const ir::Node* p : spec.params) grads.push_back(result[p->name()].bytes());
  executor->grad(pointers(in), pointers(lab), pointers(par), result["loss"].bytes(), grads, n);
  return result;
}

}  // namespace nabla::driver
