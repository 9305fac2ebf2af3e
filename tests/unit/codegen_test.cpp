// Code generation against the reference interpreter: random expressions and
// their gradients compiled as forward kernels, gradient kernels (batch means),
// every example model, f32 and f64, transcendental accuracy, threads, and the
// kernel cache.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>

#include "driver/gradient.h"
#include "driver/kernels.h"
#include "driver/load.h"
#include "codegen/cache.h"
#include "codegen/compile_heap.h"
#include "codegen/kernels.h"
#include "codegen/fuse_epilogues.h"
#include "codegen/program.h"
#include "frontend/lower.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"
#include "program_steps.h"
#include "random_ir.h"
#include "runtime/executor.h"
#include "runtime/init.h"

namespace nabla {
namespace {

using codegen::KernelSpec;
using ir::Node;

struct Batch {
  std::vector<std::vector<double>> inputs, labels, params;  // per var: flat values (inputs: n samples)
  int64_t n = 0;
};

// Values of `vars` in sample `s`.
ir::Tensor slice(const std::vector<double>& flat, const Node* v, int64_t s) {
  ir::Tensor t = ir::Tensor::zeros(v->shape());
  const size_t k = t.data.size();
  for (size_t e = 0; e < k; ++e) t.data[e] = flat[static_cast<size_t>(s) * k + e];
  return t;
}

// Pointers to the values converted to T.
template <typename T>
struct Converted {
  std::vector<std::vector<T>> data;
  std::vector<const void*> ptrs;
  explicit Converted(const std::vector<std::vector<double>>& v) {
    for (const auto& a : v) data.emplace_back(a.begin(), a.end());
    for (const auto& a : data) ptrs.push_back(a.data());
  }
};

ir::VarValues sample_values(const KernelSpec& spec, const Batch& b, int64_t s) {
  return [&spec, &b, s](const Node* v) {
    if (v->var_kind() == ir::VarKind::Const) return ir::Tensor::scalar(v->value());
    for (size_t i = 0; i < spec.inputs.size(); ++i)
      if (spec.inputs[i] == v) return slice(b.inputs[i], v, s);
    for (size_t i = 0; i < spec.labels.size(); ++i)
      if (spec.labels[i] == v) return slice(b.labels[i], v, s);
    for (size_t i = 0; i < spec.params.size(); ++i)
      if (spec.params[i] == v) return slice(b.params[i], v, 0);
    ADD_FAILURE() << "no value for " << v->name();
    return ir::Tensor::zeros(v->shape());
  };
}

bool finite_close(double kernel, double reference, double tol) {
  if (!std::isfinite(reference)) return true;  // only where the reference is finite
  return test::close(kernel, reference, tol, tol);
}

// Kernels compiled for `cpu` ("": this host), nothing read from the cache
// or written to it.
codegen::KernelOptions uncached(const std::string& cpu = "") {
  codegen::KernelOptions options;
  options.use_cache = false;
  options.cpu = cpu;
  return options;
}

// Runs the forward kernel of `spec` on `b` and compares every output with
// the interpreter, sample by sample. Returns the number of elements compared.
template <typename T>
int compare_forward(const KernelSpec& spec, const Batch& b, double tol, const std::string& what,
                    const codegen::KernelOptions& base = uncached()) {
  std::string error;
  codegen::KernelOptions options = base;
  options.grad = false;
  const ir::DType dt = sizeof(T) == 4 ? ir::DType::F32 : ir::DType::F64;
  auto k = codegen::compile_kernels(spec, dt, options, &error);
  EXPECT_TRUE(k) << error;
  if (!k) return 0;
  Converted<T> in(b.inputs), par(b.params);
  std::vector<std::vector<T>> out;
  std::vector<void*> outs;
  for (const auto& o : spec.outputs) out.emplace_back(static_cast<size_t>(o.second->shape().numel() * b.n));
  for (auto& o : out) outs.push_back(o.data());
  std::vector<char> ws(static_cast<size_t>(k->forward_workspace(b.n)) + 64);
  void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  k->forward(in.ptrs.data(), par.ptrs.data(), outs.data(), b.n, aligned);
  std::vector<const Node*> roots;
  for (const auto& o : spec.outputs) roots.push_back(o.second);
  int compared = 0, failures = 0;
  for (int64_t s = 0; s < b.n; ++s) {
    const auto ref = ir::interpret(roots, sample_values(spec, b, s));
    for (size_t r = 0; r < roots.size(); ++r) {
      const size_t size = ref[r].data.size();
      for (size_t e = 0; e < size; ++e) {
        const double got = out[r][static_cast<size_t>(s) * size + e], want = ref[r].data[e];
        ++compared;
        if (!finite_close(got, want, tol) && ++failures <= 10)
          ADD_FAILURE() << what << " output " << r << " sample " << s << " [" << e << "]: kernel " << got
                        << ", interpreter " << want << "\n  " << ir::print_text(roots[r]);
      }
    }
  }
  return compared;
}

// Random values: inputs and params uniform in [-2, 2], labels in [0, 1].
Batch random_batch(const KernelSpec& spec, int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-2, 2), pos(0, 1);
  Batch b;
  b.n = n;
  for (const Node* v : spec.inputs) {
    b.inputs.emplace_back(static_cast<size_t>(v->shape().numel() * n));
    for (double& d : b.inputs.back()) d = u(rng);
  }
  for (const Node* v : spec.labels) {
    b.labels.emplace_back(static_cast<size_t>(v->shape().numel() * n));
    for (double& d : b.labels.back()) d = pos(rng);
  }
  for (const Node* v : spec.params) {
    b.params.emplace_back(static_cast<size_t>(v->shape().numel()));
    for (double& d : b.params.back()) d = u(rng);
  }
  return b;
}

KernelSpec random_spec(test::RandomIr& gen) {
  KernelSpec spec;
  const auto vars = gen.all_vars();
  for (const Node* v : vars) (v->var_kind() == ir::VarKind::Input ? spec.inputs : spec.params).push_back(v);
  return spec;
}

// `count` random expressions and their simplified gradients, compiled as
// forward kernels (40 outputs a kernel) over a batch of 4 samples, against
// the interpreter. Returns the number of elements compared.
int check_random_expressions(int count, const codegen::KernelOptions& base = uncached()) {
  ir::Context c;
  test::RandomIr gen(c, 101);
  const auto vars = gen.all_vars();
  int compared = 0, expressions = 0;
  for (int chunk = 0; expressions < count; ++chunk) {
    KernelSpec spec = random_spec(gen);
    while (spec.outputs.size() < 40) {
      const Node* f = chunk % 3 == 0 ? gen.scalar(3) : chunk % 3 == 1 ? gen.tensor_to_scalar(2) : gen.vector3(2);
      f = ir::simplify(c, f);
      ++expressions;
      spec.outputs.emplace_back("f", f);
      if (f->shape().rank() == 0)
        for (const Node* g : ir::simplify(c, ir::gradient(c, f, vars))) spec.outputs.emplace_back("g", g);
    }
    const Batch b = random_batch(spec, 4, static_cast<unsigned>(chunk));
    compared += compare_forward<double>(spec, b, 1e-8, "f64 chunk " + std::to_string(chunk), base);
    if (chunk < 3) compare_forward<float>(spec, b, 2e-3, "f32 chunk " + std::to_string(chunk), base);
  }
  return compared;
}

TEST(Codegen, RandomExpressionsMatchTheInterpreter) { EXPECT_GT(check_random_expressions(2000), 50000); }

// The gradient kernel: batch means of random losses' gradients, through the
// GEMM-over-the-batch and linear patterns and the BatchMean fallback.
// The interpreter's loss and gradients, each the mean over the batch.
std::vector<std::vector<double>> interpreter_means(const KernelSpec& spec, const Batch& b) {
  std::vector<const Node*> roots{spec.loss};
  roots.insert(roots.end(), spec.gradients.begin(), spec.gradients.end());
  std::vector<std::vector<double>> mean(roots.size());
  for (int64_t s = 0; s < b.n; ++s) {
    const auto ref = ir::interpret(roots, sample_values(spec, b, s));
    for (size_t r = 0; r < roots.size(); ++r) {
      mean[r].resize(ref[r].data.size());
      for (size_t e = 0; e < ref[r].data.size(); ++e) mean[r][e] += ref[r].data[e] / static_cast<double>(b.n);
    }
  }
  return mean;
}

// The gradient kernel's loss and gradients equal the interpreter's means over the batch.
void expect_grad_is_batch_mean(const KernelSpec& spec, const codegen::CompiledKernels& k, const Batch& b,
                               const std::string& what) {
  Converted<double> in(b.inputs), lab(b.labels), par(b.params);
  double loss = 0;
  std::vector<std::vector<double>> g;
  std::vector<void*> gp;
  for (const Node* p : spec.params) g.emplace_back(static_cast<size_t>(p->shape().numel()));
  for (auto& v : g) gp.push_back(v.data());
  std::vector<double> ws(static_cast<size_t>(k.grad_workspace(b.n)) / 8 + 8);
  k.grad(in.ptrs.data(), lab.ptrs.data(), par.ptrs.data(), &loss, gp.data(), b.n, ws.data());
  const std::vector<std::vector<double>> mean = interpreter_means(spec, b);
  EXPECT_TRUE(finite_close(loss, mean[0][0], 1e-8)) << what << ": " << loss << " vs " << mean[0][0];
  for (size_t p = 0; p < g.size(); ++p)
    for (size_t e = 0; e < g[p].size(); ++e)
      EXPECT_TRUE(finite_close(g[p][e], mean[p + 1][e], 1e-8))
          << what << ": d/d" << spec.params[p]->name() << "[" << e << "] " << g[p][e] << " vs " << mean[p + 1][e];
}

TEST(Codegen, GradientKernelsAreBatchMeans) {
  ir::Context c;
  test::RandomIr gen(c, 202);
  for (int i = 0; i < 40; ++i) {
    KernelSpec spec = random_spec(gen);
    const Node* f = i % 2 ? gen.tensor_to_scalar(2) : gen.scalar(3);
    spec.loss = ir::simplify(c, f);
    spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
    const Batch b = random_batch(spec, 5, 1000u + static_cast<unsigned>(i));
    std::string error;
    codegen::KernelOptions options;
    options.forward = false;
    options.use_cache = false;
    auto k = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
    ASSERT_TRUE(k) << error;
    expect_grad_is_batch_mean(spec, *k, b, ir::print_text(f));
  }
}

// A kernel of many steps compiles in pieces, one module each, at once on
// the cores (emit.h, KernelPiece): a chain of tanh layers' gradient, whose
// pieces share only memory, equals the interpreter's.
TEST(Codegen, LargeKernelsCompileInPieces) {
  ir::Context c;
  const Node* h = c.var(ir::VarKind::Input, 0, "x", {6});
  KernelSpec spec;
  spec.inputs = {h};
  for (int i = 0; i < 8; ++i) {
    const Node* w = c.var(ir::VarKind::Param, i, "W" + std::to_string(i), {6, 6});
    spec.params.push_back(w);
    h = c.unary(ir::Op::Tanh, c.make(ir::Op::MatMul, {w, h}));
  }
  spec.loss = c.make(ir::Op::Sum, {c.mul(h, h)});
  spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
  const size_t steps = codegen::build_program(spec, codegen::KernelKind::Gradient, ir::DType::F64).steps.size();
  ASSERT_GE(steps, 16u);
  codegen::KernelOptions options;
  options.forward = false;
  options.use_cache = false;
  std::string error;
  auto k = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
  ASSERT_TRUE(k) << error;
  if (std::thread::hardware_concurrency() >= 2) EXPECT_EQ(k->keys.size(), 2u) << "one object a piece";
  else std::printf("one core: the kernel compiled whole\n");
  expect_grad_is_batch_mean(spec, *k, random_batch(spec, 7, 31), "chain of 8 tanh layers");
}

// The fused SGD step equals one step with the gradient kernel's result,
// p - rate * g: where a gradient is a view of another param (loss a * b, or
// sum(A * transpose(B))), the updates must read the params' old values.
void expect_sgd_is_gradient_step(const KernelSpec& spec, const Batch& b, const std::string& what) {
  std::string error;
  codegen::KernelOptions options;
  options.forward = false;
  options.sgd = true;
  options.use_cache = false;
  auto k = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
  ASSERT_TRUE(k) << error;
  Converted<double> in(b.inputs), labels(b.labels), par(b.params);
  double loss = 0, step_loss = 0;
  std::vector<std::vector<double>> g, updated = b.params;
  std::vector<void*> gp, up;
  for (const auto& p : b.params) g.emplace_back(p.size());
  for (auto& v : g) gp.push_back(v.data());
  for (auto& v : updated) up.push_back(v.data());
  const size_t words = static_cast<size_t>(std::max(k->grad_workspace(b.n), k->sgd_workspace(b.n))) / 8 + 8;
  std::vector<double> ws(words);
  k->grad(in.ptrs.data(), labels.ptrs.data(), par.ptrs.data(), &loss, gp.data(), b.n, ws.data());
  const double rate = 0.125;
  k->sgd(in.ptrs.data(), labels.ptrs.data(), up.data(), &step_loss, &rate, b.n, ws.data());
  EXPECT_TRUE(finite_close(step_loss, loss, 1e-12)) << what << ": loss " << step_loss << " vs " << loss;
  for (size_t p = 0; p < g.size(); ++p)
    for (size_t e = 0; e < g[p].size(); ++e) {
      const double want = b.params[p][e] - rate * g[p][e];
      EXPECT_TRUE(finite_close(updated[p][e], want, 1e-10))
          << what << ": " << spec.params[p]->name() << "[" << e << "] " << updated[p][e] << " vs " << want;
    }
}

TEST(Codegen, SgdStepReadsOldParams) {
  ir::Context c;
  {
    const Node* a = c.var(ir::VarKind::Param, 0, "a", {});
    const Node* b = c.var(ir::VarKind::Param, 1, "b", {});
    KernelSpec spec;
    spec.params = {a, b};
    spec.loss = c.mul(a, b);
    spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
    Batch batch;
    batch.n = 1;
    batch.params = {{0.5}, {1.0}};
    expect_sgd_is_gradient_step(spec, batch, "a * b");
  }
  {
    const Node* a = c.var(ir::VarKind::Param, 2, "A", {3, 2});
    const Node* b = c.var(ir::VarKind::Param, 3, "B", {2, 3});
    const Node* x = c.var(ir::VarKind::Input, 0, "x", {3});
    KernelSpec spec;
    spec.inputs = {x};
    spec.params = {a, b};
    spec.loss = ir::simplify(c, c.add(c.make(ir::Op::Sum, {c.mul(a, c.make(ir::Op::Transpose, {b}))}),
                                      c.make(ir::Op::Sum, {c.mul(x, c.make(ir::Op::Sum, {a}))})));
    spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
    expect_sgd_is_gradient_step(spec, random_batch(spec, 4, 7), "sum(A * transpose(B)) + sum(x * sum(A))");
  }
  test::RandomIr gen(c, 203);
  for (int i = 0; i < 30; ++i) {
    KernelSpec spec = random_spec(gen);
    const Node* f = i % 2 ? gen.tensor_to_scalar(2) : gen.scalar(3);
    spec.loss = ir::simplify(c, f);
    spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
    expect_sgd_is_gradient_step(spec, random_batch(spec, 5, 2000u + static_cast<unsigned>(i)), ir::print_text(f));
  }
}

// A model file lowered into `ctx` (its errors rendered in the exception).
LoweredModel lower_file(ir::Context& ctx, const std::string& path) {
  auto loaded = driver::load_model(path, SemaOptions{});
  if (!loaded.value) throw std::runtime_error(path + ": " + loaded.rendered);
  return lower_model(loaded.value->model, ctx);
}

// A lowered model's kernels: f64, with the SGD step, nothing cached.
driver::ModelKernels f64_kernels(ir::Context& ctx, const LoweredModel& m, int threads) {
  driver::CompileOptions options;
  options.dtype = runtime::DType::F64;
  options.sgd = true;
  options.use_cache = false;
  options.threads = threads;
  return driver::compile_model_kernels(ctx, m, options);
}

// A model's kernels from its .nn text (f64, with the SGD step, one thread).
driver::ModelKernels kernels_of_text(ir::Context& ctx, const std::string& text) {
  const std::string path =
      std::filesystem::temp_directory_path() / ("nabla-codegen-test-" + std::to_string(::getpid()) + ".nn");
  std::ofstream(path) << text;
  struct Remove {
    std::string path;
    ~Remove() { std::filesystem::remove(path); }
  } remove{path};
  return f64_kernels(ctx, lower_file(ctx, path), 1);
}

// Gradients of the MLPs at batches of a few samples, where the products
// take the plain loops (below 8 rows): the backward pass's delta W in the
// support object's row loops (nabla_gemm_rows), the weights' gradients in
// the kernel's own, against the interpreter's means.
TEST(Codegen, SmallBatchGradientsMatchTheInterpreter) {
  for (const char* model : {"/examples/mnist_mlp.nn", "/bench/models/mlp_784_256_256_10.nn"}) {
    ir::Context ctx;
    const driver::ModelKernels k = f64_kernels(ctx, lower_file(ctx, std::string(NABLA_SOURCE_DIR) + model), 1);
    for (int64_t n : {1, 3}) {
      Batch b = random_batch(k.spec, n, 31);
      expect_grad_is_batch_mean(k.spec, *k.kernels, b, std::string(model) + " at batch " + std::to_string(n));
    }
  }
}

// One sample's SGD step (rate 0.1) against params - rate * the gradient
// kernel's gradient: equal values, NaN where that is NaN. Returns the
// updated params.
std::vector<std::vector<double>> expect_step_at_batch_1(const driver::ModelKernels& k, const Batch& b,
                                                        const std::string& what) {
  Converted<double> in(b.inputs), lab(b.labels), par(b.params);
  std::vector<std::vector<double>> g, updated = b.params;
  std::vector<void*> gp, up;
  for (const auto& v : b.params) g.emplace_back(v.size());
  for (auto& v : g) gp.push_back(v.data());
  for (auto& v : updated) up.push_back(v.data());
  std::vector<double> ws(static_cast<size_t>(std::max(k.kernels->grad_workspace(1), k.kernels->sgd_workspace(1))) / 8 + 8);
  double loss = 0, step_loss = 0;
  const double rate = 0.1;
  k.kernels->grad(in.ptrs.data(), lab.ptrs.data(), par.ptrs.data(), &loss, gp.data(), 1, ws.data());
  k.kernels->sgd(in.ptrs.data(), lab.ptrs.data(), up.data(), &step_loss, &rate, 1, ws.data());
  for (size_t p = 0; p < g.size(); ++p)
    for (size_t e = 0; e < g[p].size(); ++e) {
      const double want = b.params[p][e] - rate * g[p][e];
      EXPECT_EQ(std::isnan(updated[p][e]), std::isnan(want)) << what << ": param " << p << " [" << e << "]";
      if (!std::isnan(want)) {
        EXPECT_TRUE(finite_close(updated[p][e], want, 1e-12)) << what << ": param " << p << " [" << e << "]";
      }
    }
  return updated;
}

// The SGD step of a ReLU layer with no decay at batch 1 leaves the rows of
// W1 whose unit is inactive (delta exactly 0) unread and unwritten: their
// values are those of the full update, and a -0 there keeps its sign where
// adding the update's +0 would have made it +0 (so the test sees the skip).
// Where the other operand is not finite, the full update runs: a zero row
// of `a` times an infinite x is NaN.
TEST(Codegen, SgdStepSkipsTheRowsOfInactiveUnits) {
  ir::Context ctx;
  const driver::ModelKernels k = kernels_of_text(
      ctx, "model skip\ninput x : [16]\nlabel y : [3] distribution\nparam W1 : [8, 16]\nparam b1 : [8]\n"
           "param W2 : [3, 8]\nparam b2 : [3]\nh = relu(W1 @ x + b1)\np = softmax(W2 @ h + b2)\noutput p\n"
           "loss cross_entropy(y, p)\n");
  ASSERT_EQ(k.spec.params[0]->name(), "W1");
  Batch b = random_batch(k.spec, 1, 21);
  b.labels[0] = {0.2, 0.3, 0.5};
  for (int64_t i : {2, 5}) {
    b.params[1][static_cast<size_t>(i)] = -1e3;  // unit i inactive
    for (int64_t j = 0; j < 16; ++j) b.params[0][static_cast<size_t>(i * 16 + j)] = -0.0;
  }
  b.inputs[0][0] = -1.5;  // an input of each sign: -0 + (+0) = +0 for one of them
  b.inputs[0][1] = 1.5;
  const auto updated = expect_step_at_batch_1(k, b, "relu layer");
  for (int64_t i : {2, 5})
    for (int64_t j = 0; j < 16; ++j)
      EXPECT_TRUE(std::signbit(updated[0][static_cast<size_t>(i * 16 + j)])) << "W1[" << i << "][" << j << "]";

  const driver::ModelKernels outer =
      kernels_of_text(ctx, "model outer\ninput a : [4]\ninput x : [3]\nparam W : [4, 3]\nloss dot(a, W @ x)\n");
  ASSERT_EQ(outer.spec.inputs[0]->name(), "a");
  Batch o = random_batch(outer.spec, 1, 22);
  o.inputs[0] = {0.0, 1.0, -2.0, 0.5};
  o.inputs[1] = {1.0, INFINITY, 2.0};
  const auto w = expect_step_at_batch_1(outer, o, "outer(a, x), x infinite");
  EXPECT_TRUE(std::isnan(w[0][1])) << w[0][1];  // W[0][1] - 0.1 * 0 * inf
}

// sums_into_inits moves a weight's squared norm to the loop of the
// weight's decay and the loss after the GEMM; not when a step using the sum
// must run before that GEMM (it writes the GEMM's operand).
TEST(Codegen, SumMovesIntoTheInitOfItsWeightsGemm) {
  using codegen::Access;
  using codegen::BufKind;
  using codegen::Expr;
  using codegen::Step;
  using codegen::StepKind;
  using test::apply;
  using test::constant;
  using test::load;
  for (const bool conflict : {false, true}) {
    codegen::Program p;
    p.dtype = ir::DType::F64;
    // %0 W [4, 3], %1 the sum, %2 the loss, %3 W's gradient, %4 A [n][4], %5 B [n][3]
    p.buffers = {{BufKind::Param, 0, false, Shape{4, 3}, "W"}, {BufKind::Temp, 0, false, Shape{}, "t1"},
                 {BufKind::Loss, 0, false, Shape{}, "loss"},    {BufKind::Grad, 0, false, Shape{4, 3}, "G"},
                 {BufKind::Temp, 0, true, Shape{4}, "t4"},      {BufKind::Input, 0, true, Shape{3}, "x"}};
    Step sum;
    sum.kind = StepKind::Reduce;
    sum.op = ir::Op::Sum;
    sum.out = 1;
    sum.shape = Shape{4, 3};
    sum.reduced = {true, true};
    sum.exprs = {load(0, {3, 1}), constant(2), apply(ir::Op::Pow, {0, 1})};
    sum.root = 2;
    Step use;  // the loss, or (conflict) the GEMM's operand A
    use.out = conflict ? 4 : 2;
    use.batched = conflict;
    use.shape = conflict ? Shape{4} : Shape{};
    use.exprs = {load(1, conflict ? std::vector<int64_t>{0} : std::vector<int64_t>{}), constant(0.5),
                 apply(ir::Op::Mul, {0, 1})};
    use.root = 2;
    Step init;
    init.out = 3;
    init.shape = Shape{4, 3};
    init.exprs = {constant(0.1), load(0, {3, 1}), apply(ir::Op::Mul, {0, 1})};
    init.root = 2;
    p.steps = {sum, use, init, test::gradient_gemm_4x3(4, 5, 3)};
    ASSERT_TRUE(codegen::initializes_gemm(p, 2));
    const std::string before = p.str();
    codegen::sums_into_inits(p);
    if (conflict) {
      EXPECT_EQ(p.str(), before);
      continue;
    }
    ASSERT_EQ(p.steps.size(), 4u);
    EXPECT_EQ(p.steps[0].out, 1);
    EXPECT_EQ(p.steps[1].out, 3);
    EXPECT_EQ(p.steps[2].kind, StepKind::Gemm);
    EXPECT_EQ(p.steps[3].out, 2);
    EXPECT_TRUE(codegen::sum_fuses_into_init(p, 0)) << p.str();
  }
}

// GEMMs large enough for the cache-blocked loop nest, with edges in every
// dimension (rows, columns not multiples of the tile; K beyond one block):
// the forward x W^T (NT), W2^T @ delta (NN) and the batch-reducing weight
// gradients (TN), in f32 and f64, against the interpreter.
// Every GEMM path of the kernels compiled for `cpu` ("" the host) against
// the interpreter.
void check_gemm_paths(const codegen::KernelOptions& base) {
  const std::string& cpu = base.cpu;
  struct Size {
    int64_t in, hidden, out, n;
  };
  // Odd sizes: relu(W1 x + b1), the layer whose bias and relu become the
  // GEMM's epilogue (on each of the three paths: plain loops at n = 3, the
  // dot-product tiles below 128 rows (4 x 4, and 1 x 4 with several
  // accumulators a dot product for the rows past a multiple of 4: batch 1),
  // the blocked one).
  int which = 0;
  for (const Size sz : {Size{300, 17, 20, 9}, Size{20, 33, 18, 130}, Size{513, 40, 37, 300}, Size{784, 256, 10, 64},
                        Size{200, 40, 12, 3}, Size{300, 50, 33, 100}, Size{784, 259, 10, 1}, Size{97, 30, 20, 5}}) {
    const bool relu = which++ % 2 == 1;
    for (ir::DType dt : {ir::DType::F64, ir::DType::F32}) {
      ir::Context c(dt);
      const Node* x = c.var(ir::VarKind::Input, 0, "x", {sz.in});
      const Node* w1 = c.var(ir::VarKind::Param, 0, "W1", {sz.hidden, sz.in});
      const Node* w2 = c.var(ir::VarKind::Param, 1, "W2", {sz.out, sz.hidden});
      const Node* b1 = c.var(ir::VarKind::Param, 2, "b1", {sz.hidden});
      const Node* h = relu ? c.unary(ir::Op::Relu, c.make(ir::Op::Add, {c.make(ir::Op::MatMul, {w1, x}), b1}))
                           : c.unary(ir::Op::Tanh, c.make(ir::Op::MatMul, {w1, x}));
      const Node* y = c.make(ir::Op::MatMul, {w2, h});
      KernelSpec spec;
      spec.inputs = {x};
      spec.params = {w1, w2};
      if (relu) spec.params.push_back(b1);
      spec.outputs = {{"y", y}};
      spec.loss = c.make(ir::Op::Sum, {c.unary(ir::Op::Sin, y)});
      spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
      Batch b = random_batch(spec, sz.n, 77);
      for (auto& p : b.params)
        for (double& v : p) v *= 0.1;
      const double tol = dt == ir::DType::F64 ? 1e-10 : 1e-4;
      if (dt == ir::DType::F64) compare_forward<double>(spec, b, tol, "blocked f64 " + cpu, base);
      else compare_forward<float>(spec, b, tol, "blocked f32 " + cpu, base);
      // Gradients: the kernel's batch means against the interpreter's.
      std::string error;
      codegen::KernelOptions options = base;
      options.forward = false;
      auto k = codegen::compile_kernels(spec, dt, options, &error);
      ASSERT_TRUE(k) << error;
      const size_t np = spec.params.size();
      std::vector<std::vector<double>> got(np);
      double loss = 0;
      auto run = [&](auto zero) {
        using T = decltype(zero);
        Converted<T> in(b.inputs), par(b.params);
        std::vector<std::vector<T>> g(np);
        std::vector<void*> gp;
        for (size_t i = 0; i < np; ++i) {
          g[i].resize(static_cast<size_t>(spec.params[i]->shape().numel()));
          gp.push_back(g[i].data());
        }
        T l = 0;
        std::vector<double> ws(static_cast<size_t>(k->grad_workspace(b.n)) / 8 + 16);
        k->grad(in.ptrs.data(), nullptr, par.ptrs.data(), &l, gp.data(), b.n, ws.data());
        loss = l;
        for (size_t i = 0; i < np; ++i) got[i].assign(g[i].begin(), g[i].end());
      };
      if (dt == ir::DType::F64) run(0.0);
      else run(0.0f);
      const std::vector<std::vector<double>> mean = interpreter_means(spec, b);
      EXPECT_TRUE(finite_close(loss, mean[0][0], tol * 10)) << loss << " vs " << mean[0][0];
      for (size_t i = 0; i < np; ++i)
        for (size_t e = 0; e < got[i].size(); ++e)
          ASSERT_TRUE(finite_close(got[i][e], mean[i + 1][e], tol))
              << "d/d" << spec.params[i]->name() << "[" << e << "] " << got[i][e] << " vs " << mean[i + 1][e]
              << " (in " << sz.in << ", hidden " << sz.hidden << ", n " << sz.n << ", " << ir::dtype_name(dt) << ", cpu '"
              << cpu << "')";
    }
  }
}

TEST(Codegen, BlockedGemmsMatchTheInterpreter) { check_gemm_paths(uncached()); }

// The choices of other CPUs (codegen/target.h), run here where this host
// has their instruction sets: AVX2's 6 x 16 tile and 256-bit vectors, and
// SSE's 128-bit vectors without FMA instructions.
void check_gemm_paths_for(const std::string& cpu) {
  std::string error;
  const auto target = codegen::target_for_cpu(cpu, &error);
  ASSERT_TRUE(target) << error;
  if (const std::string missing = codegen::missing_on_host(*target); !missing.empty())
    GTEST_SKIP() << "this host lacks " << missing << " of " << cpu;
  check_gemm_paths(uncached(cpu));
}

TEST(Codegen, Avx2GemmsMatchTheInterpreter) { check_gemm_paths_for("x86-64-v3"); }
TEST(Codegen, SseGemmsMatchTheInterpreter) { check_gemm_paths_for("x86-64"); }

// Kernels for a CPU whose instructions this host lacks are refused with the
// reason, not run.
TEST(Codegen, KernelsForAnotherCpuAreRefused) {
  std::string error, other;
  // AMD's own instructions (sse4a, clzero) or Intel's (AMX): one of them is
  // not this host's.
  for (const char* cpu : {"znver5", "sapphirerapids"}) {
    const auto target = codegen::target_for_cpu(cpu, &error);
    ASSERT_TRUE(target) << error;
    if (!codegen::missing_on_host(*target).empty() && other.empty()) other = cpu;
  }
  if (other.empty()) GTEST_SKIP() << "this host has the instructions of both znver5 and sapphirerapids";
  ir::Context c(ir::DType::F64);
  const Node* x = c.var(ir::VarKind::Input, 0, "x", {3});
  KernelSpec spec;
  spec.inputs = {x};
  spec.outputs = {{"y", c.unary(ir::Op::Tanh, x)}};
  codegen::KernelOptions options;
  options.grad = false;
  options.use_cache = false;
  options.cpu = other;
  EXPECT_FALSE(codegen::compile_kernels(spec, ir::DType::F64, options, &error));
  EXPECT_NE(error.find("cannot run on this one"), std::string::npos) << error;
  options.cpu = "pentium-banana";
  EXPECT_FALSE(codegen::compile_kernels(spec, ir::DType::F64, options, &error));
  EXPECT_NE(error.find("is not a CPU"), std::string::npos) << error;
}

// The _par kernels split large GEMMs by columns into tasks: with a runner
// that runs the tasks one after another, last first, and task counts that do
// not divide the columns, every output and gradient equals the plain
// kernel's bit for bit (the tasks compute disjoint columns the same way).
void check_parallel_tasks(const codegen::KernelOptions& base = uncached()) {
  struct Reverse {
    static void run(void*, int64_t tasks, void (*task)(void*, int64_t), void* arg) {
      for (int64_t t = tasks - 1; t >= 0; --t) task(arg, t);
    }
  };
  // The tasks at the same time, one thread each: tasks that write each
  // other's packing space or rows show here, not when run one by one.
  struct Concurrent {
    static void run(void*, int64_t tasks, void (*task)(void*, int64_t), void* arg) {
      std::vector<std::thread> threads;
      for (int64_t t = 1; t < tasks; ++t) threads.emplace_back([=] { task(arg, t); });
      task(arg, 0);
      for (std::thread& th : threads) th.join();
    }
  };
  // Sizes: hidden 200 (the GEMMs' column and row splits), 256 x 300 (the
  // norms of W1 and V in the loss, 76,800 elements each, summed by rows on
  // the threads: W1's in its decay before its gradient's GEMM, V's alone),
  // 1024 x 1100 (at batches of 1 and 3, W1's decay, norm and rank-k update
  // in plain loops, its rows on the threads).
  struct Size {
    int64_t in, hidden;
    std::vector<int64_t> batches;
  };
  for (const Size& sz : {Size{300, 200, {40, 150}}, Size{300, 256, {40, 150}}, Size{1100, 1024, {1, 3}}})
  for (ir::DType dt : {ir::DType::F32, ir::DType::F64}) {
    ir::Context c(dt);
    const int64_t hid = sz.hidden;
    const Node* x = c.var(ir::VarKind::Input, 0, "x", {sz.in});
    const Node* w1 = c.var(ir::VarKind::Param, 0, "W1", {hid, sz.in});
    const Node* b1 = c.var(ir::VarKind::Param, 1, "b1", {hid});
    const Node* w2 = c.var(ir::VarKind::Param, 2, "W2", {70, hid});
    const Node* h = c.unary(ir::Op::Relu, c.make(ir::Op::Add, {c.make(ir::Op::MatMul, {w1, x}), b1}));
    const Node* y = c.unary(ir::Op::Tanh, c.make(ir::Op::MatMul, {w2, h}));
    // V: a param in the loss alone, whose norm no GEMM's init takes in
    // (summed by rows on the threads by itself: reduce_step).
    const Node* vpar = c.var(ir::VarKind::Param, 3, "V", {hid, sz.in});
    KernelSpec spec;
    spec.inputs = {x};
    spec.params = {w1, b1, w2, vpar};
    spec.outputs = {{"y", y}};
    spec.loss = c.make(ir::Op::Sum, {c.unary(ir::Op::Sin, y)});
    auto norm = [&](const Node* m) { return c.make(ir::Op::Mul, {c.constant(1e-3), c.make(ir::Op::Sum, {c.make(ir::Op::Mul, {m, m})})}); };
    if (hid != 200) spec.loss = c.make(ir::Op::Add, {c.make(ir::Op::Add, {spec.loss, norm(w1)}), norm(vpar)});
    else spec.params.pop_back();
    spec.gradients = ir::simplify(c, ir::gradient(c, spec.loss, spec.params));
    if (hid != 200) {  // W1's norm is summed in the loop of its decay, V's alone
      const codegen::Program g = codegen::build_program(spec, codegen::KernelKind::Gradient, dt);
      bool fused = false, alone = false;
      for (size_t i = 0; i < g.steps.size(); ++i) {
        fused = fused || codegen::sum_fuses_into_init(g, i);
        alone = alone || (g.steps[i].kind == codegen::StepKind::Reduce && g.steps[i].shape == Shape{hid, sz.in} &&
                          !codegen::sum_fuses_into_init(g, i));
      }
      ASSERT_TRUE(fused && alone) << g.str();
    }
    codegen::KernelOptions options = base;
    options.sgd = true;
    std::string error;
    auto k = codegen::compile_kernels(spec, dt, options, &error);
    ASSERT_TRUE(k) << error;
    for (int64_t n : sz.batches) {  // the dot-product GEMM (< 128 rows), the blocked one; plain loops
      Batch b = random_batch(spec, n, 5);
      for (auto& p : b.params)
        for (double& v : p) v *= 0.1;
      for (int64_t tasks : {2, 3, 4, 7, -2, -3, -4}) {  // negative: that many concurrent tasks
        const codegen::ParallelRunner runner{tasks > 0 ? &Reverse::run : &Concurrent::run, nullptr,
                                             tasks > 0 ? tasks : -tasks};
        auto check = [&](auto zero) {
          using T = decltype(zero);
          Converted<T> in(b.inputs), par(b.params);
          std::vector<char> ws(static_cast<size_t>(std::max(k->forward_workspace(n), k->grad_workspace(n))) + 64);
          void* w = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
          std::vector<T> y1(static_cast<size_t>(n * 70)), y2(y1.size());
          SCOPED_TRACE("hidden " + std::to_string(hid) + ", n " + std::to_string(n) + ", tasks " + std::to_string(tasks));
          void* o1[] = {y1.data()};
          void* o2[] = {y2.data()};
          k->forward(in.ptrs.data(), par.ptrs.data(), o1, n, w);
          k->forward_par(in.ptrs.data(), par.ptrs.data(), o2, n, w, &runner);
          ASSERT_EQ(y1, y2) << "forward, n " << n << ", tasks " << tasks;
          std::vector<std::vector<T>> g1, g2;
          std::vector<void*> p1, p2;
          for (const Node* p : spec.params) {
            g1.emplace_back(static_cast<size_t>(p->shape().numel()));
            g2.emplace_back(static_cast<size_t>(p->shape().numel()));
          }
          for (size_t i = 0; i < g1.size(); ++i) {
            p1.push_back(g1[i].data());
            p2.push_back(g2[i].data());
          }
          T l1 = 0, l2 = 0;
          k->grad(in.ptrs.data(), nullptr, par.ptrs.data(), &l1, p1.data(), n, w);
          k->grad_par(in.ptrs.data(), nullptr, par.ptrs.data(), &l2, p2.data(), n, w, &runner);
          ASSERT_EQ(l1, l2);
          for (size_t i = 0; i < g1.size(); ++i) ASSERT_EQ(g1[i], g2[i]) << "gradient " << i << ", n " << n << ", tasks " << tasks;
          // The SGD step (decay, norm and update of each weight by rows), on copies of the params.
          Converted<T> q1(b.params), q2(b.params);
          std::vector<char> ws2(static_cast<size_t>(k->sgd_workspace(n)) + 64);
          void* sgd_ws = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws2.data()) + 63) / 64 * 64);
          const T rate = T(0.05);
          std::vector<void*> m1, m2;
          for (size_t i = 0; i < q1.data.size(); ++i) {
            m1.push_back(q1.data[i].data());
            m2.push_back(q2.data[i].data());
          }
          k->sgd(in.ptrs.data(), nullptr, m1.data(), &l1, &rate, n, sgd_ws);
          k->sgd_par(in.ptrs.data(), nullptr, m2.data(), &l2, &rate, n, sgd_ws, &runner);
          ASSERT_EQ(l1, l2) << "SGD step's loss";
          ASSERT_EQ(q1.data, q2.data) << "SGD step, n " << n << ", tasks " << tasks;
        };
        // Concurrent tasks race only sometimes: several calls.
        for (int rep = 0; rep < (tasks > 0 ? 1 : 4); ++rep) {
          if (dt == ir::DType::F32) check(0.0f);
          else check(0.0);
        }
      }
    }
  }
}

TEST(Codegen, ParallelGemmTasksEqualOneCall) { check_parallel_tasks(); }

std::vector<std::string> example_models() {
  std::vector<std::string> paths;
  for (const auto& dir : {std::string(NABLA_SOURCE_DIR) + "/examples",
                          std::string(NABLA_SOURCE_DIR) + "/tests/unit/models",  // deep: kernels in parts
                          std::string(NABLA_SOURCE_DIR) + "/../shared/acceptance/models"}) {
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.path().extension() == ".nn") paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Every example model: forward and gradient kernels equal the interpreter's
// per-sample results (gradients: their mean), f64, 7 samples on 2 threads.
TEST(Codegen, EveryExampleModelMatchesTheInterpreter) {
  const auto paths = example_models();
  ASSERT_GE(paths.size(), 8u);
  for (const std::string& path : paths) {
    ir::Context ctx;
    const LoweredModel m = lower_file(ctx, path);
    driver::ModelKernels k = f64_kernels(ctx, m, 2);
    Batch b = random_batch(k.spec, 70, 5);
    for (size_t i = 0; i < m.labels.size(); ++i) {  // distributions sum to 1
      if (!m.label_distribution[i]) continue;
      const size_t per = static_cast<size_t>(m.labels[i]->shape().numel());
      for (size_t s = 0; s < 70; ++s) {
        double total = 0;
        for (size_t e = 0; e < per; ++e) total += b.labels[i][s * per + e];
        for (size_t e = 0; e < per; ++e) b.labels[i][s * per + e] /= total;
      }
    }
    runtime::ArrayMap params, data;
    auto to_array = [](const std::vector<double>& v, std::vector<int64_t> shape) {
      runtime::Array a = runtime::Array::zeros(std::move(shape), runtime::DType::F64);
      a.f64.assign(v.begin(), v.end());
      return a;
    };
    for (size_t i = 0; i < m.params.size(); ++i) params[m.params[i]->name()] = to_array(b.params[i], m.params[i]->shape().dims());
    auto batched = [](const Node* v) {
      auto s = v->shape().dims();
      s.insert(s.begin(), 70);
      return s;
    };
    for (size_t i = 0; i < m.inputs.size(); ++i) data[m.inputs[i]->name()] = to_array(b.inputs[i], batched(m.inputs[i]));
    for (size_t i = 0; i < m.labels.size(); ++i) data[m.labels[i]->name()] = to_array(b.labels[i], batched(m.labels[i]));
    if (!k.spec.outputs.empty()) {
      runtime::ArrayMap out = k.forward(params, data, 70);
      std::vector<const Node*> roots;
      for (const auto& o : m.outputs) roots.push_back(o.second);
      for (int64_t s = 0; s < 70; ++s) {
        const auto ref = ir::interpret(roots, sample_values(k.spec, b, s));
        for (size_t r = 0; r < roots.size(); ++r)
          for (size_t e = 0; e < ref[r].data.size(); ++e)
            ASSERT_TRUE(finite_close(out[m.outputs[r].first].f64[static_cast<size_t>(s) * ref[r].data.size() + e],
                                     ref[r].data[e], 1e-9))
                << path << " output " << m.outputs[r].first << " sample " << s;
      }
    }
    if (k.spec.loss) {
      runtime::ArrayMap g = k.grad(params, data, 70);
      // Against the simplified program the kernel compiles (tight), and
      // against the raw lowered loss and its unsimplified gradient (an
      // independent oracle, looser: the raw forms are less accurate, e.g.
      // log(1 - sigmoid(z)) against -softplus(z)).
      driver::GradientProgram raw = driver::gradient_program(ctx, m, m.params, false);
      struct Oracle {
        const Node* loss;
        std::vector<const Node*> gradients;
        double tol;
      };
      // The fused SGD step (one thread: the kernel; two: gradient + update)
      // equals params - rate * gradient, and reports the same loss.
      for (int threads : {1, 2}) {
        runtime::ArrayMap updated = params;
        std::vector<void*> pp;
        for (const Node* p : m.params) pp.push_back(updated[p->name()].f64.data());
        std::vector<const void*> in, lab;
        for (const Node* v : m.inputs) in.push_back(data[v->name()].f64.data());
        for (const Node* v : m.labels) lab.push_back(data[v->name()].f64.data());
        runtime::Executor ex(k.kernels->forward, k.kernels->forward_workspace, k.kernels->grad,
                             k.kernels->grad_workspace, [&] {
                               runtime::ArgSizes sz;
                               sz.elem_bytes = 8;
                               for (const Node* v : m.inputs) sz.inputs.push_back(v->shape().numel());
                               for (const Node* v : m.labels) sz.labels.push_back(v->shape().numel());
                               for (const Node* v : m.params) sz.params.push_back(v->shape().numel());
                               return sz;
                             }(), threads);
        ex.set_sgd(k.kernels->sgd, k.kernels->sgd_workspace, k.kernels->sgd_par);
        ex.set_parallel(k.kernels->forward_par, k.kernels->grad_par);
        double loss = 0;
        ex.sgd_step(in, lab, pp, &loss, 0.1, 70);
        EXPECT_TRUE(finite_close(loss, g["loss"].f64[0], 1e-12)) << path << " sgd loss, threads " << threads;
        for (const Node* p : m.params)
          for (size_t e = 0; e < updated[p->name()].f64.size(); ++e)
            ASSERT_TRUE(finite_close(updated[p->name()].f64[e],
                                     params[p->name()].f64[e] - 0.1 * g[p->name()].f64[e], 1e-12))
                << path << " sgd " << p->name() << "[" << e << "], threads " << threads;
      }
      for (const Oracle& o : {Oracle{k.spec.loss, k.spec.gradients, 1e-9}, Oracle{m.loss, raw.gradients, 1e-6}}) {
        std::vector<const Node*> roots{o.loss};
        roots.insert(roots.end(), o.gradients.begin(), o.gradients.end());
        std::vector<std::vector<double>> mean(roots.size());
        for (int64_t s = 0; s < 70; ++s) {
          const auto ref = ir::interpret(roots, sample_values(k.spec, b, s));
          for (size_t r = 0; r < roots.size(); ++r) {
            mean[r].resize(ref[r].data.size());
            for (size_t e = 0; e < ref[r].data.size(); ++e) mean[r][e] += ref[r].data[e] / 70.0;
          }
        }
        EXPECT_TRUE(finite_close(g["loss"].f64[0], mean[0][0], o.tol))
            << path << " loss " << g["loss"].f64[0] << " vs " << mean[0][0];
        for (size_t i = 0; i < m.params.size(); ++i)
          for (size_t e = 0; e < mean[i + 1].size(); ++e)
            ASSERT_TRUE(finite_close(g[m.params[i]->name()].f64[e], mean[i + 1][e], o.tol))
                << path << " d/d" << m.params[i]->name() << "[" << e << "]: " << g[m.params[i]->name()].f64[e]
                << " vs " << mean[i + 1][e];
      }
    }
  }
}

// The executor's gradient on 2 threads against one call of the plain kernel
// on the whole batch: below 64 samples a thread one call of the _par kernel
// (its products split across the threads: the same bits), from 64 the
// batch in shares whose means are combined by their sizes (unequal here).
TEST(Codegen, ExecutorGradientOnThreadsEqualsOneCall) {
  ir::Context ctx;
  const driver::ModelKernels k =
      f64_kernels(ctx, lower_file(ctx, std::string(NABLA_SOURCE_DIR) + "/examples/mnist_mlp.nn"), 2);
  ASSERT_NE(k.kernels->grad_par, nullptr);
  // 1 and 3: W1's products split by rows at a small batch too (in f64, W1
  // is more than half the L2 of Zen 5 and of Sapphire Rapids:
  // split_weight_elems).
  for (int64_t n : {1, 3, 32, 131}) {
    const Batch b = random_batch(k.spec, n, 11);
    Converted<double> in(b.inputs), lab(b.labels), par(b.params);
    auto gradient = [&](bool executor) {
      std::vector<std::vector<double>> g{std::vector<double>(1)};  // the loss, then the params' gradients
      std::vector<void*> gp;
      for (const Node* p : k.spec.params) g.emplace_back(static_cast<size_t>(p->shape().numel()));
      for (size_t i = 1; i < g.size(); ++i) gp.push_back(g[i].data());
      if (executor) {
        runtime::ArgSizes sz;
        sz.elem_bytes = 8;
        for (const Node* v : k.spec.inputs) sz.inputs.push_back(v->shape().numel());
        for (const Node* v : k.spec.labels) sz.labels.push_back(v->shape().numel());
        for (const Node* v : k.spec.params) sz.params.push_back(v->shape().numel());
        runtime::Executor ex(k.kernels->forward, k.kernels->forward_workspace, k.kernels->grad,
                             k.kernels->grad_workspace, sz, 2);
        ex.set_parallel(k.kernels->forward_par, k.kernels->grad_par);
        ex.grad(in.ptrs, lab.ptrs, par.ptrs, g[0].data(), gp, n);
      } else {
        std::vector<double> ws(static_cast<size_t>(k.kernels->grad_workspace(n)) / 8 + 8);
        k.kernels->grad(in.ptrs.data(), lab.ptrs.data(), par.ptrs.data(), g[0].data(), gp.data(), n, ws.data());
      }
      return g;
    };
    const auto threads = gradient(true), one = gradient(false);
    for (size_t a = 0; a < one.size(); ++a)
      for (size_t e = 0; e < one[a].size(); ++e) {
        if (n < 128) {
          ASSERT_EQ(threads[a][e], one[a][e]) << "n " << n << " array " << a << " [" << e << "]";
        } else {
          ASSERT_TRUE(finite_close(threads[a][e], one[a][e], 1e-12)) << "n " << n << " array " << a << " [" << e << "]";
        }
      }
  }
}

// The executor times its _par calls on the pool against the caller alone
// (runtime/pool_choice.h): calls in either mode give the plain kernel's
// bits, so the choice cannot change a result. The first 2 * kBlock calls
// try both modes.
TEST(Codegen, ExecutorParCallsInEitherModeEqualOneCall) {
  ir::Context ctx;
  const driver::ModelKernels k =
      f64_kernels(ctx, lower_file(ctx, std::string(NABLA_SOURCE_DIR) + "/examples/mnist_mlp.nn"), 2);
  ASSERT_NE(k.kernels->grad_par, nullptr);
  const int64_t n = 3;
  const Batch b = random_batch(k.spec, n, 5);
  Converted<double> in(b.inputs), lab(b.labels), par(b.params);
  auto fresh = [&] {
    std::vector<std::vector<double>> g{std::vector<double>(1)};
    for (const Node* p : k.spec.params) g.emplace_back(static_cast<size_t>(p->shape().numel()));
    return g;
  };
  auto pointers = [](std::vector<std::vector<double>>& g) {
    std::vector<void*> gp;
    for (size_t i = 1; i < g.size(); ++i) gp.push_back(g[i].data());
    return gp;
  };
  auto one = fresh();
  {
    std::vector<double> ws(static_cast<size_t>(k.kernels->grad_workspace(n)) / 8 + 8);
    auto gp = pointers(one);
    k.kernels->grad(in.ptrs.data(), lab.ptrs.data(), par.ptrs.data(), one[0].data(), gp.data(), n, ws.data());
  }
  runtime::ArgSizes sz;
  sz.elem_bytes = 8;
  for (const Node* v : k.spec.inputs) sz.inputs.push_back(v->shape().numel());
  for (const Node* v : k.spec.labels) sz.labels.push_back(v->shape().numel());
  for (const Node* v : k.spec.params) sz.params.push_back(v->shape().numel());
  runtime::Executor ex(k.kernels->forward, k.kernels->forward_workspace, k.kernels->grad, k.kernels->grad_workspace,
                       sz, 2);
  ex.set_parallel(k.kernels->forward_par, k.kernels->grad_par);
  bool pool = false, alone = false;
  for (int call = 0; call < 2 * runtime::PoolChoice::kBlock + 2; ++call) {
    auto g = fresh();
    auto gp = pointers(g);
    ex.grad(in.ptrs, lab.ptrs, par.ptrs, g[0].data(), gp, n);
    ASSERT_TRUE(ex.last_call_threads() == 2 || ex.last_call_threads() == 1);
    (ex.last_call_threads() == 2 ? pool : alone) = true;
    for (size_t a = 0; a < one.size(); ++a)
      for (size_t e = 0; e < one[a].size(); ++e)
        ASSERT_EQ(g[a][e], one[a][e]) << "call " << call << " array " << a << " [" << e << "]";
  }
  EXPECT_TRUE(pool);
  EXPECT_TRUE(alone);
}

// Accuracy of the vectorized transcendental functions (libmvec through the
// kernels' vector variants) against the f64 (long double for f64) reference,
// over a dense grid: f32 within 4 ulp, f64 within 1e-14 relative.
void check_transcendentals(const codegen::KernelOptions& base = uncached()) {
  struct Fn {
    ir::Op op;
    double lo, hi;
    long double (*ref)(long double);
  };
  const Fn fns[] = {
      {ir::Op::Exp, -87, 88.7, [](long double x) { return expl(x); }},
      {ir::Op::Log, 1e-6, 1e6, [](long double x) { return logl(x); }},
      {ir::Op::Tanh, -20, 20, [](long double x) { return tanhl(x); }},
      {ir::Op::Erf, -6, 6, [](long double x) { return erfl(x); }},
      {ir::Op::Sin, -10, 10, [](long double x) { return sinl(x); }},
      {ir::Op::Cos, -10, 10, [](long double x) { return cosl(x); }},
      {ir::Op::Sigmoid, -80, 80, [](long double x) { return 1 / (1 + expl(-x)); }},
      {ir::Op::Softplus, -80, 80, [](long double x) { return x > 0 ? x + log1pl(expl(-x)) : log1pl(expl(x)); }},
  };
  for (const Fn& fn : fns) {
    for (ir::DType dt : {ir::DType::F32, ir::DType::F64}) {
      ir::Context c(dt);
      const Node* x = c.var(ir::VarKind::Input, 0, "x", {});
      KernelSpec spec;
      spec.inputs = {x};
      spec.outputs = {{"y", c.unary(fn.op, x)}};
      std::string error;
      codegen::KernelOptions options = base;
      options.grad = false;
      auto k = codegen::compile_kernels(spec, dt, options, &error);
      ASSERT_TRUE(k) << error;
      const int64_t n = 100003;
      std::vector<double> xs(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) xs[static_cast<size_t>(i)] = fn.lo + (fn.hi - fn.lo) * static_cast<double>(i) / static_cast<double>(n - 1);
      double worst = 0;
      std::vector<char> ws(static_cast<size_t>(k->forward_workspace(n)) + 64);
      void* w = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
      if (dt == ir::DType::F32) {
        std::vector<float> in(xs.begin(), xs.end()), out(static_cast<size_t>(n));
        const void* ip[] = {in.data()};
        void* op[] = {out.data()};
        k->forward(ip, nullptr, op, n, w);
        for (int64_t i = 0; i < n; ++i) {
          const long double ref = fn.ref(in[static_cast<size_t>(i)]);
          const float want = static_cast<float>(ref);
          if (!std::isfinite(want) || want == 0) continue;
          const float ulp = std::nextafter(std::fabs(want), INFINITY) - std::fabs(want);
          worst = std::max(worst, static_cast<double>(std::fabs(static_cast<long double>(out[static_cast<size_t>(i)]) - ref) / ulp));
        }
        EXPECT_LE(worst, 4.0) << ir::op_name(fn.op) << " f32: worst error in ulp";
      } else {
        std::vector<double> out(static_cast<size_t>(n));
        const void* ip[] = {xs.data()};
        void* op[] = {out.data()};
        k->forward(ip, nullptr, op, n, w);
        for (int64_t i = 0; i < n; ++i) {
          const long double ref = fn.ref(xs[static_cast<size_t>(i)]);
          if (!std::isfinite(static_cast<double>(ref)) || ref == 0) continue;
          worst = std::max(worst, static_cast<double>(std::fabs((out[static_cast<size_t>(i)] - ref) / ref)));
        }
        EXPECT_LE(worst, 1e-14) << ir::op_name(fn.op) << " f64: worst relative error";
      }
    }
  }
}

TEST(Codegen, TranscendentalAccuracy) { check_transcendentals(); }

// Another CPU's kernels, run here: Sapphire Rapids' on an AMD host, Zen 5's
// on an Intel one. They are compiled with LLVM's tuning for that CPU and the
// choices of its profile (Sapphire Rapids: loops of 256 bits beside 512-bit
// GEMMs, so libmvec's 256-bit variants; an L2 of 2 MiB for the row splits),
// with the instruction sets this host lacks (AMX and AVX512-FP16, or AMD's
// SSE4a and CLZERO) turned off. The kernels use none of those, so what runs
// is that CPU's code: every GEMM path, the split tasks and the SGD step, the
// transcendental functions, random expressions and their gradients, against
// the interpreter and one call.
TEST(Codegen, AnotherCpusPathsRunHereOnThisHostsInstructions) {
  // A cache of this test's own: the other CPU's support object (the GEMM
  // functions) is compiled once per element type, not for every kernel.
  const std::string dir =
      std::filesystem::temp_directory_path() / ("nabla-other-cpu-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  struct Remove {
    std::string dir;
    ~Remove() { std::filesystem::remove_all(dir); }
  } remove{dir};
  int ran = 0;
  for (const char* cpu : {"sapphirerapids", "znver5"}) {
    std::string error;
    const auto named = codegen::target_for_cpu(cpu, &error);
    ASSERT_TRUE(named) << error;
    // This host itself: the tests above ran its paths.
    if (named->cpu == codegen::host_target().cpu && named->features == codegen::host_target().features) continue;
    const codegen::EmitTarget here = codegen::with_host_instructions(*named);
    EXPECT_EQ(codegen::missing_on_host(here), "") << cpu;
    EXPECT_EQ(here.cpu, named->cpu);
    // A host without an instruction set the choices follow from (AVX-512,
    // FMA) gives other choices: not that CPU's paths.
    if (here.profile.str() != named->profile.str()) {
      std::cout << "[ skipped ] " << cpu << " here: " << here.profile.str() << ", not " << named->profile.str() << "\n";
      continue;
    }
    SCOPED_TRACE(cpu);
    codegen::KernelOptions options;
    options.cpu = cpu;
    options.host_instructions = true;
    options.cache_dir = dir;
    check_gemm_paths(options);
    check_parallel_tasks(options);
    check_transcendentals(options);
    EXPECT_GT(check_random_expressions(300, options), 5000);
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no other CPU's paths can run on this host (it is one of the two, and lacks the "
                                  "other's vector instructions)";
}

// The cache: a second compilation is a hit and loads working code; a
// corrupted entry is a miss; concurrent writers leave a valid entry.
// The f32 exp is computed inline (codegen/math_lib.cpp): its edges. Overflow to inf,
// underflow through the subnormals to 0 (one rounding: within 1 ulp of the
// subnormal spacing), NaN through, and exp(0) exactly 1.
TEST(Codegen, ExpF32Edges) {
  ir::Context c(ir::DType::F32);
  const Node* x = c.var(ir::VarKind::Input, 0, "x", {});
  KernelSpec spec;
  spec.inputs = {x};
  spec.outputs = {{"y", c.unary(ir::Op::Exp, x)}};
  codegen::KernelOptions options;
  options.grad = false;
  options.use_cache = false;
  std::string error;
  auto k = codegen::compile_kernels(spec, ir::DType::F32, options, &error);
  ASSERT_TRUE(k) << error;
  std::vector<float> in = {0.f, 88.7f, 88.73f, 89.f, 1000.f, INFINITY, -INFINITY, NAN, -1000.f, -104.f, -87.3f};
  for (float v = -103.9f; v < -87.f; v += 0.37f) in.push_back(v);  // subnormal results
  const int64_t n = static_cast<int64_t>(in.size());
  std::vector<float> out(in.size());
  std::vector<char> ws(static_cast<size_t>(k->forward_workspace(n)) + 64);
  void* w = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  const void* ip[] = {in.data()};
  void* op[] = {out.data()};
  k->forward(ip, nullptr, op, n, w);
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = static_cast<float>(expl(static_cast<long double>(in[i])));
    if (std::isnan(in[i])) {
      EXPECT_TRUE(std::isnan(out[i]));
    } else if (std::isinf(want) || want == 0 || in[i] == 0) {
      EXPECT_EQ(out[i], want) << "exp(" << in[i] << ")";
    } else if (std::fpclassify(want) == FP_SUBNORMAL) {
      EXPECT_LE(std::fabs(out[i] - want), std::numeric_limits<float>::denorm_min()) << "exp(" << in[i] << ")";
    } else {
      const float ulp = std::nextafter(want, INFINITY) - want;
      EXPECT_LE(std::fabs(out[i] - want), 2 * ulp) << "exp(" << in[i] << ")";
    }
  }
}

// The default cache: $NABLA_CACHE_DIR, $XDG_CACHE_HOME/nabla, ~/.cache/nabla,
// or none when $HOME is not an existing folder (a system user's
// "/nonexistent": the cache made that tree from the root).
TEST(Codegen, DefaultCacheDirNeedsAnExistingHome) {
  struct Saved {
    std::vector<std::pair<std::string, std::optional<std::string>>> vars;
    explicit Saved(std::initializer_list<const char*> names) {
      for (const char* n : names) vars.emplace_back(n, std::getenv(n) ? std::optional<std::string>(std::getenv(n)) : std::nullopt);
    }
    ~Saved() {
      for (const auto& [n, v] : vars) v ? ::setenv(n.c_str(), v->c_str(), 1) : ::unsetenv(n.c_str());
    }
  } saved{"NABLA_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  ::unsetenv("NABLA_CACHE_DIR");
  ::unsetenv("XDG_CACHE_HOME");
  const std::string home = std::filesystem::temp_directory_path();
  ::setenv("HOME", home.c_str(), 1);
  EXPECT_EQ(codegen::default_cache_dir(), home + "/.cache/nabla");
  ::setenv("HOME", "/nonexistent-nabla-home", 1);
  EXPECT_EQ(codegen::default_cache_dir(), "");
  ::setenv("XDG_CACHE_HOME", "/somewhere", 1);
  EXPECT_EQ(codegen::default_cache_dir(), "/somewhere/nabla");
  ::setenv("NABLA_CACHE_DIR", "/else", 1);
  EXPECT_EQ(codegen::default_cache_dir(), "/else");
}

TEST(Codegen, KernelCache) {
  const std::string dir = std::filesystem::temp_directory_path() / ("nabla-cache-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ir::Context c;
  const Node* x = c.var(ir::VarKind::Input, 0, "x", {3});
  const Node* w = c.var(ir::VarKind::Param, 0, "w", {3});
  KernelSpec spec;
  spec.inputs = {x};
  spec.params = {w};
  spec.outputs = {{"y", c.unary(ir::Op::Tanh, c.mul(w, x))}};
  codegen::KernelOptions options;
  options.grad = false;
  options.cache_dir = dir;
  std::string error;
  auto run = [&](const codegen::CompiledKernels& k) {
    const double xs[] = {1, 2, 3, -1, -2, -3}, ws[] = {0.5, 0.25, 0.125};
    double out[6];
    const void* in[] = {xs};
    const void* par[] = {ws};
    void* outs[] = {out};
    std::vector<double> space(static_cast<size_t>(k.forward_workspace(2)) / 8 + 8);
    k.forward(in, par, outs, 2, space.data());
    return out[5];
  };
  auto first = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
  ASSERT_TRUE(first) << error;
  EXPECT_FALSE(first->cache_hit);
  auto second = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
  ASSERT_TRUE(second) << error;
  EXPECT_TRUE(second->cache_hit);
  ASSERT_EQ(first->keys.size(), 1u);  // one entry a kernel: this spec has the forward kernel only
  EXPECT_EQ(first->keys, second->keys);
  EXPECT_DOUBLE_EQ(run(*second), std::tanh(-3 * 0.125));
  // A different element type is a different entry.
  auto f32 = codegen::compile_kernels(spec, ir::DType::F32, options, &error);
  ASSERT_TRUE(f32);
  EXPECT_FALSE(f32->cache_hit);
  EXPECT_NE(f32->keys, first->keys);
  // Corrupt the entry: a miss, then a valid entry again.
  const std::string entry = dir + "/" + first->keys[0] + ".o";
  {
    std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-10, std::ios::end);
    f.write("XXXX", 4);
  }
  EXPECT_FALSE(codegen::cache_read(dir, first->keys[0]));
  auto third = codegen::compile_kernels(spec, ir::DType::F64, options, &error);
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->cache_hit);
  EXPECT_TRUE(codegen::cache_read(dir, first->keys[0]));
  // Concurrent writers of one key.
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t)
    writers.emplace_back([&, t] { codegen::cache_write(dir, "k", std::string(100000 + t, static_cast<char>('a' + t))); });
  for (auto& t : writers) t.join();
  auto got = codegen::cache_read(dir, "k");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 100000u + static_cast<size_t>((*got)[0] - 'a'));
  // Entries that are not regular files are misses, at once: a FIFO (its
  // read blocked forever), a link to /dev/zero (read without end), a link
  // to a valid entry.
  ASSERT_EQ(::mkfifo((dir + "/fifo.o").c_str(), 0600), 0);
  EXPECT_FALSE(codegen::cache_read(dir, "fifo"));
  std::filesystem::create_symlink("/dev/zero", dir + "/zero.o");
  EXPECT_FALSE(codegen::cache_read(dir, "zero"));
  std::filesystem::create_symlink(dir + "/k.o", dir + "/link.o");
  EXPECT_FALSE(codegen::cache_read(dir, "link"));
  // A header that claims more bytes than the file holds, or fewer.
  for (const char* size : {"2147483647", "3", "-1", "5x"}) {
    std::ofstream(dir + "/claim.o", std::ios::binary) << "nabla-kernel-cache 1\nclaim\n" << size << " "
                                                       << codegen::cache_key("abcd") << "\nabcd";
    EXPECT_FALSE(codegen::cache_read(dir, "claim")) << size;
  }
  std::ofstream(dir + "/claim.o", std::ios::binary) << "nabla-kernel-cache 1\nclaim\n4 " << codegen::cache_key("abcd")
                                                     << "\nabcd";
  EXPECT_EQ(codegen::cache_read(dir, "claim"), std::optional<std::string>("abcd"));
  std::filesystem::remove_all(dir);
}

// The mapping of /proc/self/smaps that holds `at`: its size and VmFlags.
struct MappingOf {
  uintptr_t bytes = 0;
  std::string flags;
};

MappingOf mapping_of(const void* at) {
  const auto a = reinterpret_cast<uintptr_t>(at);
  std::ifstream in("/proc/self/smaps");
  MappingOf m;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      if (inside) m.bytes = hi - lo;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      m.flags = line + " ";
      break;
    }
  }
  return m;
}

// Whether any glibc arena besides the main heap exists yet (a mapping of
// /proc/self/maps that is readable and writable and starts on a 64 MiB
// boundary, followed by a reserved one): none before a second thread has
// allocated.
bool any_arena() {
  std::ifstream in("/proc/self/maps");
  uintptr_t rw_end = 0;
  for (std::string line; std::getline(in, line);) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3) continue;
    if (rw_end && lo == rw_end && std::string(perms) == "---p") return true;
    rw_end = std::string(perms) == "rw-p" && lo % (uintptr_t{64} << 20) == 0 ? hi : 0;
  }
  return false;
}

// A thread that compiles gets its glibc arena writable 32 MiB at once and
// advised for huge pages; the main heap is never advised.
TEST(CompileHeap, ACompilingThreadsArenaMayUseHugePagesAndTheMainHeapNot) {
  // An arena made before the pad was set (by an earlier test's thread, when
  // the tests share a process) is reused by the next thread, as it was made.
  const bool fresh = !any_arena();
  if (!codegen::use_huge_pages_for_compiling())
    GTEST_SKIP() << "transparent huge pages are off, or malloc is not glibc's (a sanitizer build)";
  MappingOf before, after, again;
  std::thread([&] {
    void* p = std::malloc(8192);  // the thread's own arena
    before = mapping_of(p);
    codegen::advise_compile_heap();
    after = mapping_of(p);
    codegen::advise_compile_heap();  // a second time: nothing more
    again = mapping_of(p);
    std::free(p);
  }).join();
  if (fresh) {
    EXPECT_GE(before.bytes, uintptr_t{32} << 20) << "the arena is writable 32 MiB at once";
  }
  EXPECT_EQ(before.flags.find(" hg "), std::string::npos) << before.flags;
  EXPECT_NE(after.flags.find(" hg "), std::string::npos) << after.flags;
  EXPECT_EQ(again.flags, after.flags);
  EXPECT_EQ(again.bytes, after.bytes);
  void* q = std::malloc(8192);  // the main thread: the main heap
  codegen::advise_compile_heap();
  EXPECT_EQ(mapping_of(q).flags.find(" hg "), std::string::npos) << mapping_of(q).flags;
  std::free(q);
}

}  // namespace
}  // namespace nabla
