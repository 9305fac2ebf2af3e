#include "driver/elementwise.h"

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "codegen/kernels.h"
#include "driver/error.h"
#include "driver/expression.h"
#include "driver/kernels.h"
#include "driver/turns.h"
#include "ir/differentiate.h"
#include "ir/simplify.h"
#include "runtime/budget.h"
#include "runtime/executor.h"
#include "runtime/thread_pool.h"

namespace nabla::driver {

namespace {

// Fewer points than this a thread are not worth waking a thread for: an
// elementwise kernel does a few nanoseconds of work a point, a wake-up costs
// microseconds.
constexpr int64_t kPointsPerThread = 16384;

size_t element_bytes(ir::DType t) { return t == ir::DType::F32 ? 4 : 8; }

}  // namespace

void check_points(int64_t n, uint64_t arrays, ir::DType dtype) {
  runtime::check_memory("an elementwise call over " + std::to_string(n) + " points", runtime::product_bytes(
                            static_cast<uint64_t>(std::max<int64_t>(n, 0)), arrays * element_bytes(dtype)));
}

namespace {

// One pool for every lambdified function of the process, of the machine's
// cores less one; calls of different functions take turns on it. Each
// function kept a pool of its own for its life: 1,000 functions held 1,000
// threads on 2 cores, and would hold 63,000 on 64. Never destroyed (a
// function may be called during the process's exit). In a child of fork()
// the turns' lock is made anew: a thread of the parent that held it is not
// there, and the pool runs every part on its caller there.
std::mutex& shared_pool_turns() {
  static std::mutex* turns = [] {
    auto* m = new std::mutex;
    pthread_atfork(nullptr, nullptr, [] { new (&shared_pool_turns()) std::mutex(); });
    return m;
  }();
  return *turns;
}

runtime::ThreadPool& shared_pool() {
  static auto* pool = new runtime::ThreadPool(runtime::hardware_threads() - 1);
  return *pool;
}

}  // namespace

struct Elementwise::Impl {
  std::string text;
  std::vector<std::string> args;
  ElementwiseOptions options;
  int threads = 1;
  std::string source;
  std::vector<std::string> derivatives;

  // What a kernel computes: the value or not, and the partials along the
  // arguments of `grads` (a bit an argument); `broadcast`: the arguments
  // that are its scalar params.
  struct Variant {
    uint64_t broadcast = 0, grads = 0;
    bool value = false;
    auto operator<=>(const Variant&) const = default;
  };

  // Kernels compiled on first use.
  mutable Turns mutex{"this lambdified function"};  // one call at a time: the workspaces are shared (turns.h)
  mutable std::map<Variant, codegen::CompiledKernels> kernels;
  mutable std::vector<runtime::Workspace> workspaces;
  mutable std::vector<void*> spaces;  // a call's parts' workspaces

  const codegen::CompiledKernels& kernel(const Variant& v) const;
  void run(std::span<const PointArg> in, int64_t n, void* out, std::span<void* const> grads) const;
};

Elementwise::Elementwise(const std::string& text, std::vector<std::string> args, const ElementwiseOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (args.empty()) throw Error("lambdify needs at least one argument");
  if (args.size() > kMaxElementwiseArgs)
    throw Error("lambdify takes at most " + std::to_string(kMaxElementwiseArgs) + " arguments, not " +
                std::to_string(args.size()));
  std::set<std::string> seen;
  for (const std::string& a : args) {
    if (a.empty()) throw Error("an argument name is empty");
    if (!seen.insert(a).second) throw Error("argument '" + a + "' is named twice");
  }
  m.text = text;
  m.args = std::move(args);
  m.options = options;
  m.threads = runtime::useful_threads(options.threads, runtime::kMaxThreads);
  with_large_stack([&] {
    ir::Context ctx(ir::DType::F64);
    const Expression e = expression(text, ctx, m.args);
    for (const auto& [name, node] : e.vars)
      if (!seen.count(name))
        throw Error("the expression uses '" + name + "', which is not among the arguments");
    m.source = driver::text(simplified(ctx, e));
    // One at a time, as `nabla diff` and the module's diff print them (the
    // kernel differentiates them together, sharing common subexpressions).
    for (const std::string& a : m.args)
      m.derivatives.push_back(driver::text(driver::derivatives(ctx, e, {a}, 1, false, true)[0].value));
  });
}

Elementwise::~Elementwise() = default;
Elementwise::Elementwise(Elementwise&&) noexcept = default;
Elementwise& Elementwise::operator=(Elementwise&&) noexcept = default;

const std::vector<std::string>& Elementwise::args() const { return impl_->args; }
const std::string& Elementwise::source() const { return impl_->source; }
const std::vector<std::string>& Elementwise::derivatives() const { return impl_->derivatives; }
ir::DType Elementwise::dtype() const { return impl_->options.dtype; }
int Elementwise::threads() const { return impl_->threads; }

// The kernel of `v`: the broadcast arguments are the spec's params, the
// others its inputs (in argument order); the outputs are the value, then the
// partials asked for.
const codegen::CompiledKernels& Elementwise::Impl::kernel(const Variant& v) const {
  if (auto it = kernels.find(v); it != kernels.end()) return it->second;
  codegen::KernelSpec spec;
  std::optional<codegen::CompiledKernels> compiled;
  std::string error;
  with_large_stack([&] {
    ir::Context ctx(options.dtype);
    std::map<std::string, const ir::Node*> vars;
    std::vector<const ir::Node*> wrt;
    for (size_t i = 0; i < args.size(); ++i) {
      const bool broadcast = (v.broadcast >> i) & 1;
      auto& list = broadcast ? spec.params : spec.inputs;
      const ir::Node* var = ctx.var(broadcast ? ir::VarKind::Param : ir::VarKind::Input,
                                    static_cast<int>(list.size()), args[i], {});
      list.push_back(var);
      vars[args[i]] = var;
      if ((v.grads >> i) & 1) wrt.push_back(var);
    }
    auto loaded = load_expression(text);
    if (!loaded.value) throw Error(std::move(loaded.messages), loaded.rendered);
    const ir::Node* f = ir::simplify(ctx, lower_expression(loaded.value->expr, ctx, &vars).root);
    if (v.value) spec.outputs.emplace_back("f", f);
    if (!wrt.empty()) {
      const std::vector<const ir::Node*> g = ir::simplify(ctx, ir::gradient(ctx, f, wrt));
      for (size_t i = 0; i < g.size(); ++i) spec.outputs.emplace_back("d_" + wrt[i]->name(), g[i]);
    }
    codegen::KernelOptions ko;
    ko.grad = false;
    ko.use_cache = options.use_cache;
    ko.cache_dir = options.cache_dir;
    ko.check_size = check_compile_size;
    compiled = codegen::compile_kernels(spec, options.dtype, ko, &error);
  });
  if (!compiled) throw Error("cannot load the compiled kernel: " + error);
  return kernels.emplace(v, std::move(*compiled)).first->second;
}

void Elementwise::Impl::run(std::span<const PointArg> in, int64_t n, void* out, std::span<void* const> grads) const {
  if (in.size() != args.size())
    throw Error("the function takes " + std::to_string(args.size()) + " arguments, not " + std::to_string(in.size()));
  if (!grads.empty() && grads.size() != args.size())
    throw Error("the gradient has " + std::to_string(args.size()) + " arrays, not " + std::to_string(grads.size()));
  if (n < 0) throw Error("a negative number of points");
  Variant v;
  v.value = out != nullptr;
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i]) v.grads |= uint64_t{1} << i;
  if (n == 0 || (!v.value && !v.grads)) return;
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].broadcast) v.broadcast |= uint64_t{1} << i;
  // Every argument broadcast: the one value, at one point, then copied.
  const bool all_broadcast =
      v.broadcast == (args.size() == 64 ? ~uint64_t{0} : (uint64_t{1} << args.size()) - 1);
  const int64_t points = all_broadcast ? 1 : n;
  if (all_broadcast) v.broadcast &= ~uint64_t{1};
  const uint64_t mask = v.broadcast;

  std::lock_guard<Turns> lock(mutex);
  const codegen::CompiledKernels& k = kernel(v);
  const size_t bytes = element_bytes(options.dtype);
  std::vector<void*> outs;
  if (out) outs.push_back(out);
  for (void* g : grads)
    if (g) outs.push_back(g);

  int parts = static_cast<int>(std::clamp<int64_t>(points / kPointsPerThread, 1, threads));
  if (parts > 1) parts = std::min(parts, shared_pool().workers() + 1);  // the pool is the machine's size
  // Chunks of whole cache lines of every array.
  const int64_t chunk = ((points + parts - 1) / parts + 63) / 64 * 64;
  runtime::reserve_workspaces(
      workspaces, parts,
      [&](int part) { return k.forward_workspace(std::max<int64_t>(0, std::min<int64_t>(points - part * chunk, chunk))); },
      0, spaces);
  auto body = [&](int part) {
    const int64_t first = std::min<int64_t>(points, part * chunk);
    const int64_t count = std::min<int64_t>(points - first, chunk);
    if (count <= 0) return;
    std::vector<const void*> inputs, params;
    for (size_t i = 0; i < in.size(); ++i) {
      if ((mask >> i) & 1) params.push_back(in[i].data);
      else inputs.push_back(static_cast<const char*>(in[i].data) + (in[i].broadcast ? 0 : first * bytes));
    }
    std::vector<void*> o;
    for (void* p : outs) o.push_back(static_cast<char*>(p) + first * bytes);
    void* space = spaces[static_cast<size_t>(part)];
    k.forward(inputs.data(), params.data(), o.data(), count, space);
  };
  if (parts == 1) {
    body(0);
  } else {
    std::lock_guard<std::mutex> turn(shared_pool_turns());
    shared_pool().run(parts, body);
  }
  if (all_broadcast)
    for (void* p : outs)
      for (int64_t i = 1; i < n; ++i)
        std::memcpy(static_cast<char*>(p) + i * bytes, p, bytes);
}

void Elementwise::value(std::span<const PointArg> args, int64_t n, void* out) const {
  if (!out) throw Error("no array for the value");
  impl_->run(args, n, out, {});
}

void Elementwise::grad(std::span<const PointArg> args, int64_t n, std::span<void* const> grads) const {
  if (grads.size() != impl_->args.size() || std::find(grads.begin(), grads.end(), nullptr) != grads.end())
    throw Error("the gradient needs an array for each of the " + std::to_string(impl_->args.size()) + " arguments");
  impl_->run(args, n, nullptr, grads);
}

void Elementwise::evaluate(std::span<const PointArg> args, int64_t n, void* out, std::span<void* const> grads) const {
  impl_->run(args, n, out, grads);
}

}  // namespace nabla::driver
