// libFuzzer target: the compiled kernels against the reference interpreter
// (differential). The bytes decode (fuzz_ir.h) into a small model: 1-2
// inputs, 0-1 label, 1-3 params of shapes from the table, 1-2 outputs (random
// expressions over the inputs and params, usually simplified as the CLI
// does), a scalar loss over all of them, simplified, and its simplified
// gradient; a batch of 1-5 samples; f64 or f32. The forward, gradient and
// SGD-step kernels, compiled by codegen::compile_kernels (caching only the
// support object, in a directory of the fuzzer's own), must give the
// interpreter's values:
//   - forward: every output of every sample;
//   - grad: the mean loss and the mean gradient over the batch;
//   - sgd_step: the mean loss and params - rate * mean gradient;
// within what rounding explains (fuzz_ir.h; f32 looser, and only at points
// whose intermediates stay inside float's range). The _par kernels, with
// their tasks run last first, must equal the plain ones bit for bit. Every
// array a kernel writes has guard zones that must stay untouched, and inputs,
// labels and params (except under sgd_step) must not change.
// A failed check prints the model and traps.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <unistd.h>

#include "codegen/kernels.h"
#include "fuzz_ir.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"

namespace nabla::fuzz {
namespace {

using ir::Node;
using Roots = std::vector<const Node*>;

struct Model {
  ir::Context ctx;
  codegen::KernelSpec spec;
  ir::DType dtype = ir::DType::F64;
  int64_t n = 1;
  Roots roots;  // the outputs, the loss, the gradients: what the kernels compute
  std::vector<Point> samples;  // every var's value, per sample (params the same in each)
};

// The model as a .nn-like text, for failure reports.
std::string describe(const Model& m) {
  std::string s = std::string("dtype ") + ir::dtype_name(m.dtype) + ", batch " + std::to_string(m.n) + "\n";
  auto decl = [&](const char* kw, const Node* v) { s += std::string(kw) + " " + v->name() + " : " + v->shape().str() + "\n"; };
  for (const Node* v : m.spec.inputs) decl("input", v);
  for (const Node* v : m.spec.labels) decl("label", v);
  for (const Node* v : m.spec.params) decl("param", v);
  for (const auto& [name, node] : m.spec.outputs) s += "output " + name + " =\n" + ir::print_text(node) + "\n";
  s += "loss\n" + ir::print_text(m.spec.loss) + "\n";
  for (size_t i = 0; i < m.spec.gradients.size(); ++i)
    s += "d loss/d " + m.spec.params[i]->name() + " =\n" + ir::print_text(m.spec.gradients[i]) + "\n";
  return s;
}

// The values: params once, inputs and labels per sample.
std::string describe_values(const Model& m) {
  std::string s;
  auto values = [&](const Node* v, const Point& p) {
    s += " " + v->name() + "=";
    const auto& data = p.at(v).data;
    for (size_t i = 0; i < data.size(); ++i) s += (i ? "," : "") + number(data[i]);
  };
  s += "params:";
  for (const Node* v : m.spec.params) values(v, m.samples[0]);
  for (size_t i = 0; i < m.samples.size(); ++i) {
    s += "\nsample " + std::to_string(i) + ":";
    for (const auto* list : {&m.spec.inputs, &m.spec.labels})
      for (const Node* v : *list) values(v, m.samples[i]);
  }
  return s + "\n";
}

[[noreturn]] void fail(const Model& m, const std::string& what) {
  std::fprintf(stderr, "kernel_fuzzer: %s\n%s%s", what.c_str(), describe(m).c_str(), describe_values(m).c_str());
  __builtin_trap();
}

// Vars of shapes from the table: x0.. inputs, y0 a label, p0.. params.
void decode_vars(Model& m, ByteReader& in, uint8_t flags) {
  const auto& shapes = shape_table();
  auto shape = [&] { return shapes[static_cast<size_t>(in.pick(static_cast<int>(shapes.size())))]; };
  const int inputs = 1 + (flags >> 4) % 2, labels = (flags >> 5) & 1, params = 1 + (flags >> 6) % 3;
  for (int i = 0; i < inputs; ++i)
    m.spec.inputs.push_back(m.ctx.var(ir::VarKind::Input, i, "x" + std::to_string(i), shape()));
  for (int i = 0; i < labels; ++i)
    m.spec.labels.push_back(m.ctx.var(ir::VarKind::Label, i, "y" + std::to_string(i), shape()));
  for (int i = 0; i < params; ++i)
    m.spec.params.push_back(m.ctx.var(ir::VarKind::Param, i, "p" + std::to_string(i), shape()));
}

void decode(Model& m, ByteReader& in) {
  const uint8_t flags = in.byte();
  m.dtype = flags & 1 ? ir::DType::F32 : ir::DType::F64;
  m.n = 1 + (flags >> 1) % 5;
  decode_vars(m, in, flags);
  Roots forward_vars = m.spec.inputs;
  forward_vars.insert(forward_vars.end(), m.spec.params.begin(), m.spec.params.end());
  ExprGen outputs(m.ctx, in, forward_vars, GenLimits{4, 20, true});
  const int count = 1 + in.pick(2);
  for (int i = 0; i < count; ++i) {
    const Node* o = outputs.expr(outputs.shape());
    m.spec.outputs.emplace_back("o" + std::to_string(i), in.pick(4) != 0 ? ir::simplify(m.ctx, o) : o);
  }
  Roots all_vars = forward_vars;
  all_vars.insert(all_vars.end(), m.spec.labels.begin(), m.spec.labels.end());
  ExprGen loss(m.ctx, in, all_vars, GenLimits{4, 24, true});
  m.spec.loss = ir::simplify(m.ctx, loss.expr({}));
  m.spec.gradients = ir::simplify(m.ctx, ir::gradient(m.ctx, m.spec.loss, m.spec.params));
  for (const auto& [name, node] : m.spec.outputs) m.roots.push_back(node);
  m.roots.push_back(m.spec.loss);
  m.roots.insert(m.roots.end(), m.spec.gradients.begin(), m.spec.gradients.end());
}

// Per-sample values of inputs and labels, one set of params; for f32 all
// rounded to float, so the kernel and the interpreter see the same numbers.
void decode_samples(Model& m, ByteReader& in) {
  std::mt19937 rng(in.word());
  const Point params = random_point(m.spec.params, rng);
  for (int64_t s = 0; s < m.n; ++s) {
    Point p = random_point(m.spec.inputs, rng);
    for (auto& [v, t] : random_point(m.spec.labels, rng, 0, 1)) p[v] = t;
    for (const auto& [v, t] : params) p[v] = t;
    if (m.dtype == ir::DType::F32)
      for (auto& [v, t] : p)
        for (double& d : t.data) d = static_cast<float>(d);
    m.samples.push_back(std::move(p));
  }
}

// ---------------------------------------------------------------------------
// Kernel arguments with guard zones

constexpr size_t kGuard = 16;  // elements before and after each array

template <typename T>
T sentinel() {
  if constexpr (sizeof(T) == 8) return std::bit_cast<T>(uint64_t{0x7ff8dead0000beefULL});
  else return std::bit_cast<T>(uint32_t{0x7fc0beefU});
}

// An array between two guard zones of a NaN sentinel; also remembers its
// initial contents, to tell whether a kernel wrote where it must not.
template <typename T>
class Guarded {
public:
  explicit Guarded(const std::vector<double>& values) : storage_(values.size() + 2 * kGuard, sentinel<T>()) {
    for (size_t i = 0; i < values.size(); ++i) storage_[kGuard + i] = static_cast<T>(values[i]);
    initial_ = storage_;
  }
  T* data() { return storage_.data() + kGuard; }
  T operator[](size_t i) const { return storage_[kGuard + i]; }
  size_t size() const { return storage_.size() - 2 * kGuard; }
  bool guards_intact() const {
    const size_t tail = storage_.size() - kGuard;
    return std::memcmp(storage_.data(), initial_.data(), kGuard * sizeof(T)) == 0 &&
           std::memcmp(storage_.data() + tail, initial_.data() + tail, kGuard * sizeof(T)) == 0;
  }
  bool unchanged() const { return std::memcmp(storage_.data(), initial_.data(), storage_.size() * sizeof(T)) == 0; }
  bool same_bits(const Guarded& other) const {
    return size() == other.size() && std::memcmp(storage_.data(), other.storage_.data(), storage_.size() * sizeof(T)) == 0;
  }

private:
  std::vector<T> storage_, initial_;
};

// A 64-byte aligned workspace with a guard zone after it.
class Workspace {
public:
  explicit Workspace(int64_t bytes) : bytes_(static_cast<size_t>(bytes)), storage_(bytes_ + 64 + kTail, kFill) {
    offset_ = (64 - reinterpret_cast<uintptr_t>(storage_.data()) % 64) % 64;
  }
  void* data() { return storage_.data() + offset_; }
  bool guards_intact() const {
    for (size_t i = 0; i < storage_.size(); ++i)
      if ((i < offset_ || i >= offset_ + bytes_) && storage_[i] != kFill) return false;
    return true;
  }

private:
  static constexpr size_t kTail = 256;
  static constexpr unsigned char kFill = 0xa5;
  size_t bytes_, offset_ = 0;
  std::vector<unsigned char> storage_;
};

template <typename T>
struct Args {
  std::vector<Guarded<T>> inputs, labels, params;
  std::vector<const void*> in, lab, par;
};

// The batch as the kernels take it: inputs and labels sample-major.
template <typename T>
Args<T> batch_args(const Model& m) {
  Args<T> a;
  auto flat = [&](const Node* v, bool per_sample) {
    std::vector<double> out;
    for (int64_t s = 0; s < (per_sample ? m.n : 1); ++s) {
      const auto& d = m.samples[static_cast<size_t>(s)].at(v).data;
      out.insert(out.end(), d.begin(), d.end());
    }
    return out;
  };
  for (const Node* v : m.spec.inputs) a.inputs.emplace_back(flat(v, true));
  for (const Node* v : m.spec.labels) a.labels.emplace_back(flat(v, true));
  for (const Node* v : m.spec.params) a.params.emplace_back(flat(v, false));
  for (auto& g : a.inputs) a.in.push_back(g.data());
  for (auto& g : a.labels) a.lab.push_back(g.data());
  for (auto& g : a.params) a.par.push_back(g.data());
  return a;
}

template <typename T>
void check_untouched(const Model& m, const Args<T>& a, bool params_too, const std::string& kernel) {
  for (const auto* list : {&a.inputs, &a.labels})
    for (const auto& g : *list)
      if (!g.unchanged()) fail(m, kernel + " wrote into an input or label array");
  for (const auto& g : a.params)
    if (params_too ? !g.unchanged() : !g.guards_intact()) fail(m, kernel + " wrote into or around a param array");
}

constexpr double kUnwritten = std::numeric_limits<double>::quiet_NaN();

// Result arrays of the given per-sample (or whole) shapes, NaN until the
// kernel writes them.
template <typename T>
std::vector<Guarded<T>> results(const Roots& roots, int64_t copies, std::vector<void*>& ptrs) {
  std::vector<Guarded<T>> out;
  for (const Node* r : roots)
    out.emplace_back(std::vector<double>(static_cast<size_t>(r->shape().numel() * copies), kUnwritten));
  for (auto& g : out) ptrs.push_back(g.data());
  return out;
}

void run_last_first(void*, int64_t tasks, void (*task)(void*, int64_t), void* arg) {
  for (int64_t t = tasks - 1; t >= 0; --t) task(arg, t);
}

// ---------------------------------------------------------------------------
// The reference

struct Reference {
  std::vector<std::vector<ir::Tensor>> values;           // [sample][root]
  std::vector<std::vector<std::vector<double>>> spread;  // [sample][root][element]
  std::vector<std::vector<bool>> valid;                  // [sample][root]: in the domain
  Tolerance tol;
};

Reference reference(Model& m, uint32_t seed) {
  const bool f32 = m.dtype == ir::DType::F32;
  Reference ref;
  ref.tol = f32 ? Tolerance{1e-4, 1e-5} : Tolerance{1e-9, 1e-10};
  DomainOptions domain;
  if (f32) domain = DomainOptions{1e30, 1e-30, 1e-4, 1e-5};
  const Sensitivity rounding(m.ctx, m.roots, f32 ? 1e-5 : 1e-10, seed, f32);
  for (const Point& p : m.samples) {
    ref.values.push_back(evaluate(m.roots, p));
    ref.spread.push_back(rounding.spread(p, ref.values.back()));
    std::vector<bool> valid;
    for (const Node* r : m.roots) valid.push_back(in_domain(std::span<const Node* const>(&r, 1), p, domain));
    ref.valid.push_back(std::move(valid));
  }
  return ref;
}

// The mean over the batch of root r's element e and what rounding explains
// of it; false when a sample is outside the root's domain.
bool batch_mean(const Reference& ref, size_t r, size_t e, double& mean, double& tol) {
  mean = tol = 0;
  const double n = static_cast<double>(ref.values.size());
  for (size_t s = 0; s < ref.values.size(); ++s) {
    const double v = ref.values[s][r].data[e], spread = ref.spread[s][r][e];
    if (!ref.valid[s][r] || !std::isfinite(spread)) return false;
    mean += v / n;
    tol += (ref.tol.rtol * std::fabs(v) + ref.tol.atol + ref.tol.spread_factor * spread) / n;
  }
  return true;
}

bool mean_agrees(double got, double mean, double tol, const Tolerance& t) {
  return std::fabs(got - mean) <= tol + t.rtol * std::fabs(mean);
}

// ---------------------------------------------------------------------------
// The kernels

template <typename T>
void check_forward(Model& m, const codegen::CompiledKernels& k, const Reference& ref) {
  Args<T> a = batch_args<T>(m);
  Roots outputs;
  for (const auto& [name, node] : m.spec.outputs) outputs.push_back(node);
  std::vector<void*> out_ptrs, par_ptrs;
  auto out = results<T>(outputs, m.n, out_ptrs), again = results<T>(outputs, m.n, par_ptrs);
  Workspace ws(k.forward_workspace(m.n));
  k.forward(a.in.data(), a.par.data(), out_ptrs.data(), m.n, ws.data());
  if (!ws.guards_intact()) fail(m, "forward wrote outside its workspace");
  check_untouched(m, a, true, "forward");
  for (size_t r = 0; r < outputs.size(); ++r) {
    if (!out[r].guards_intact()) fail(m, "forward wrote outside output " + std::to_string(r));
    const size_t size = static_cast<size_t>(outputs[r]->shape().numel());
    for (size_t s = 0; s < static_cast<size_t>(m.n); ++s) {
      if (!ref.valid[s][r]) continue;
      for (size_t e = 0; e < size; ++e) {
        const double got = out[r][s * size + e], want = ref.values[s][r].data[e];
        if (!agrees(got, want, ref.spread[s][r][e], ref.tol))
          fail(m, "forward: output " + std::to_string(r) + " sample " + std::to_string(s) + " [" +
                      std::to_string(e) + "] is " + number(got) + ", the interpreter's " + number(want) +
                      " (rounding spread " + number(ref.spread[s][r][e]) + ")");
      }
    }
  }
  const codegen::ParallelRunner runner{&run_last_first, nullptr, 3};
  Workspace ws2(k.forward_workspace(m.n));
  k.forward_par(a.in.data(), a.par.data(), par_ptrs.data(), m.n, ws2.data(), &runner);
  for (size_t r = 0; r < outputs.size(); ++r)
    if (!again[r].same_bits(out[r])) fail(m, "forward_par differs from forward in output " + std::to_string(r));
}

// The loss and gradients of a grad or sgd_step call against the batch means;
// `updated` (sgd_step) holds the params after the step, else null.
template <typename T>
void check_means(Model& m, const Reference& ref, T loss, const std::vector<Guarded<T>>* grads,
                 const std::vector<Guarded<T>>* updated, double rate, const std::string& kernel) {
  const size_t first = m.spec.outputs.size();
  double mean = 0, tol = 0;
  if (batch_mean(ref, first, 0, mean, tol) && !mean_agrees(loss, mean, tol, ref.tol))
    fail(m, kernel + ": mean loss " + number(loss) + ", the interpreter's " + number(mean));
  for (size_t i = 0; i < m.spec.params.size(); ++i) {
    const size_t size = static_cast<size_t>(m.spec.params[i]->shape().numel());
    for (size_t e = 0; e < size; ++e) {
      if (!batch_mean(ref, first + 1 + i, e, mean, tol)) continue;
      const double p = m.samples[0].at(m.spec.params[i]).data[e];
      const double got = grads ? (*grads)[i][e] : (*updated)[i][e];
      const double want = grads ? mean : p - rate * mean;
      const double slack = grads ? tol : rate * tol + ref.tol.rtol * std::fabs(p) + ref.tol.atol;
      if (!mean_agrees(got, want, slack, ref.tol))
        fail(m, kernel + ": " + (grads ? "d loss/d " : "updated ") + m.spec.params[i]->name() + "[" +
                    std::to_string(e) + "] is " + number(got) + ", the interpreter's " + number(want));
    }
  }
}

template <typename T>
void check_grad(Model& m, const codegen::CompiledKernels& k, const Reference& ref) {
  Args<T> a = batch_args<T>(m);
  std::vector<void*> grad_ptrs, par_ptrs;
  auto grads = results<T>(m.spec.params, 1, grad_ptrs), again = results<T>(m.spec.params, 1, par_ptrs);
  Guarded<T> loss(std::vector<double>{kUnwritten}), loss2(std::vector<double>{kUnwritten});
  Workspace ws(k.grad_workspace(m.n));
  k.grad(a.in.data(), a.lab.data(), a.par.data(), loss.data(), grad_ptrs.data(), m.n, ws.data());
  if (!ws.guards_intact()) fail(m, "grad wrote outside its workspace");
  check_untouched(m, a, true, "grad");
  if (!loss.guards_intact()) fail(m, "grad wrote around the loss");
  for (const auto& g : grads)
    if (!g.guards_intact()) fail(m, "grad wrote outside a gradient array");
  check_means<T>(m, ref, loss[0], &grads, nullptr, 0, "grad");
  const codegen::ParallelRunner runner{&run_last_first, nullptr, 3};
  Workspace ws2(k.grad_workspace(m.n));
  k.grad_par(a.in.data(), a.lab.data(), a.par.data(), loss2.data(), par_ptrs.data(), m.n, ws2.data(), &runner);
  if (!loss2.same_bits(loss)) fail(m, "grad_par's loss differs from grad's");
  for (size_t i = 0; i < grads.size(); ++i)
    if (!again[i].same_bits(grads[i])) fail(m, "grad_par differs from grad in gradient " + std::to_string(i));
}

template <typename T>
void check_sgd(Model& m, const codegen::CompiledKernels& k, const Reference& ref) {
  Args<T> a = batch_args<T>(m);
  std::vector<void*> params;
  for (auto& g : a.params) params.push_back(g.data());
  Guarded<T> loss(std::vector<double>{kUnwritten}), rate(std::vector<double>{0.125});
  Workspace ws(k.sgd_workspace(m.n));
  k.sgd(a.in.data(), a.lab.data(), params.data(), loss.data(), rate.data(), m.n, ws.data());
  if (!ws.guards_intact()) fail(m, "sgd_step wrote outside its workspace");
  check_untouched(m, a, false, "sgd_step");
  if (!loss.guards_intact() || !rate.unchanged()) fail(m, "sgd_step wrote around the loss or into the rate");
  check_means<T>(m, ref, loss[0], nullptr, &a.params, 0.125, "sgd_step");
}

// The kernel cache of the fuzzer: a directory of its own in the temporary
// directory, so that the support object (the GEMM functions, about a second
// to compile) is compiled once per element type and host, and nothing lands
// in the user's cache. Each model's entry is removed after use, so the
// directory holds the support objects only (the cache is safe to share
// between concurrent runs).
const std::string& cache_dir() {
  static const std::string dir = [] {
    const auto path = std::filesystem::temp_directory_path() / ("nabla-kernel-fuzzer-" + std::to_string(getuid()));
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    return path.string();
  }();
  return dir;
}

template <typename T>
void check_kernels(Model& m, uint32_t seed) {
  codegen::KernelOptions options;
  options.sgd = true;
  options.cache_dir = cache_dir();
  std::string error;
  const auto k = codegen::compile_kernels(m.spec, m.dtype, options, &error);
  if (!k) fail(m, "the kernels do not compile: " + error);
  // Only the support object stays: the model's own entries (cache.cpp: KEY.o) go.
  std::error_code ec;
  for (const std::string& key : k->keys) std::filesystem::remove(cache_dir() + "/" + key + ".o", ec);
  if (!k->forward || !k->grad || !k->sgd || !k->forward_par || !k->grad_par) fail(m, "a kernel is missing");
  const Reference ref = reference(m, seed);
  check_forward<T>(m, *k, ref);
  check_grad<T>(m, *k, ref);
  check_sgd<T>(m, *k, ref);
}

}  // namespace
}  // namespace nabla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nabla::fuzz;
  ByteReader in(data, size);
  Model m;
  decode(m, in);
  decode_samples(m, in);
  const uint32_t seed = in.word();
  if (m.dtype == nabla::ir::DType::F32) check_kernels<float>(m, seed);
  else check_kernels<double>(m, seed);
  return 0;
}
