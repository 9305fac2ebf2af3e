#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

#include "runtime/budget.h"
#include "runtime/optimizer.h"

namespace nabla::runtime {

// Below this many samples a thread, a gradient or an SGD step splits its
// large products across the threads (the _par kernels) rather than the
// batch: each share of a batch writes a whole gradient, which one thread
// then combines. The MNIST MLP's gradient at batch 32 on 2 threads: 142-272
// us as two shares, 100-110 us as one _par call (184 us on one thread).
constexpr int64_t kSharesFrom = 64;

void* Workspace::get(int64_t bytes) {
  if (bytes > size_) {
    check_memory("the kernel's workspace", static_cast<uint64_t>(bytes));
    release_values(data_, static_cast<size_t>(size_));
    data_ = nullptr;
    size_ = 0;
    const size_t rounded = static_cast<size_t>(line_aligned(bytes, 1));
    data_ = allocate_values(rounded);  // large ones in huge pages (runtime/aligned.h)
    size_ = static_cast<int64_t>(rounded);
  }
  return data_;
}

int64_t Workspace::size_after(int64_t bytes) const {
  return bytes > size_ ? line_aligned(bytes, 1) : size_;
}

void check_workspaces(int parts, uint64_t total) {
  check_memory("the workspace of the kernel on " + std::to_string(parts) + " threads", total);
}

Workspace::~Workspace() { release_values(data_, static_cast<size_t>(size_)); }

Workspace& Workspace::operator=(Workspace&& other) noexcept {
  if (this != &other) {
    release_values(data_, static_cast<size_t>(size_));
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Executor::Executor(codegen::ForwardFn forward_fn, codegen::WorkspaceFn forward_ws, codegen::GradFn grad_fn,
                   codegen::WorkspaceFn grad_ws, ArgSizes sizes, const Executor& pool_of)
    : Executor(forward_fn, forward_ws, grad_fn, grad_ws, std::move(sizes), pool_of.threads_, pool_of.pool_) {}

Executor::Executor(codegen::ForwardFn forward_fn, codegen::WorkspaceFn forward_ws, codegen::GradFn grad_fn,
                   codegen::WorkspaceFn grad_ws, ArgSizes sizes, int threads)
    : Executor(forward_fn, forward_ws, grad_fn, grad_ws, std::move(sizes), threads, nullptr) {}

Executor::Executor(codegen::ForwardFn forward_fn, codegen::WorkspaceFn forward_ws, codegen::GradFn grad_fn,
                   codegen::WorkspaceFn grad_ws, ArgSizes sizes, int threads, std::shared_ptr<ThreadPool> pool)
    : forward_(forward_fn), forward_ws_(forward_ws), grad_(grad_fn), grad_ws_(grad_ws),
      sizes_(std::move(sizes)), threads_(useful_threads(threads, kMaxThreads)), workspaces_(static_cast<size_t>(threads_)),
      pool_(pool ? std::move(pool) : std::make_shared<ThreadPool>(threads_ - 1)) {
  runner_.run = [](void* ctx, int64_t tasks, void (*task)(void*, int64_t), void* arg) {
    static_cast<ThreadPool*>(ctx)->run(static_cast<int>(tasks), [&](int t) { task(arg, t); });
  };
  runner_.ctx = pool_.get();
  runner_.tasks = threads_;
  partial_at_.push_back(0);
  partial_elems_ = 1;
  for (int64_t s : sizes_.params) {
    partial_at_.push_back(line_aligned(partial_elems_, sizes_.elem_bytes));
    partial_elems_ = partial_at_.back() + s;
  }
}

template <typename Call>
void Executor::par_call(ParKind kind, int64_t n, Call&& call) {
  // A caller with ever new batch sizes (a script) cannot grow this: the
  // choices start over past 64 sizes.
  if (choices_.size() >= 64 && !choices_.count({kind, n})) choices_.clear();
  PoolChoice& choice = choices_[{kind, n}];
  const bool pool = choice.use_pool();
  last_threads_ = pool ? threads_ : 1;
  const auto t0 = std::chrono::steady_clock::now();
  call(pool ? &runner_ : nullptr);
  choice.record(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

int Executor::split(int64_t n) const {
  return static_cast<int>(std::clamp<int64_t>(n / 16, 1, threads_));
}

namespace {

// The pointers of `base` advanced by `first` samples.
template <typename P>
std::vector<P> offset(const std::vector<P>& base, const std::vector<int64_t>& per_sample, int64_t first,
                      int elem_bytes) {
  std::vector<P> r(base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<P>>, const char, char>;
    r[i] = reinterpret_cast<P>(reinterpret_cast<Byte*>(base[i]) + first * per_sample[i] * elem_bytes);
  }
  return r;
}

}  // namespace

void Executor::forward(const std::vector<const void*>& inputs, const std::vector<const void*>& params,
                       const std::vector<void*>& outputs, int64_t n) {
  if (!forward_) throw std::logic_error("no forward kernel was compiled (the model has no output)");
  const int parts = split(n);
  last_threads_ = parts;
  reserve_workspaces(
      workspaces_, parts, [&](int t) { return forward_ws_(n * (t + 1) / parts - n * t / parts); }, 0, spaces_);
  const std::vector<void*>& spaces = spaces_;
  pool_->run(parts, [&](int t) {
    const int64_t first = n * t / parts, last = n * (t + 1) / parts, count = last - first;
    const auto in = offset(inputs, sizes_.inputs, first, sizes_.elem_bytes);
    const auto out = offset(outputs, sizes_.outputs, first, sizes_.elem_bytes);
    void* ws = spaces[static_cast<size_t>(t)];
    if (parts == 1 && threads_ > 1 && forward_par_)
      par_call(ParKind::Forward, count, [&](const codegen::ParallelRunner* par) {
        forward_par_(in.data(), params.data(), out.data(), count, ws, par);
      });
    else
      forward_(in.data(), params.data(), out.data(), count, ws);
  });
}

void Executor::grad(const std::vector<const void*>& inputs, const std::vector<const void*>& labels,
                    const std::vector<const void*>& params, void* loss, const std::vector<void*>& grads,
                    int64_t n) {
  if (!grad_) throw std::logic_error("no gradient kernel was compiled (the model has no loss)");
  const int parts = grad_par_ && n / threads_ < kSharesFrom ? 1 : split(n);
  last_threads_ = parts;
  const int eb = sizes_.elem_bytes;
  // Each extra share's loss and gradient, allocated here with the workspaces.
  const uint64_t partial_bytes = product_bytes(static_cast<uint64_t>(parts - 1),
                                               product_bytes(static_cast<uint64_t>(partial_elems_), static_cast<uint64_t>(eb)));
  reserve_workspaces(
      workspaces_, parts, [&](int t) { return grad_ws_(n * (t + 1) / parts - n * t / parts); }, partial_bytes,
      spaces_);
  const std::vector<void*>& spaces = spaces_;
  partial_.resize(static_cast<size_t>(parts));
  for (int t = 1; t < parts; ++t) partial_[static_cast<size_t>(t)].resize(static_cast<size_t>(partial_elems_ * eb));
  pool_->run(parts, [&](int t) {
    const int64_t first = n * t / parts, last = n * (t + 1) / parts, count = last - first;
    const auto in = offset(inputs, sizes_.inputs, first, eb);
    const auto lab = offset(labels, sizes_.labels, first, eb);
    void* ws = spaces[static_cast<size_t>(t)];
    if (t == 0) {
      if (parts == 1 && threads_ > 1 && grad_par_)
        par_call(ParKind::Grad, count, [&](const codegen::ParallelRunner* par) {
          grad_par_(in.data(), lab.data(), params.data(), loss, grads.data(), count, ws, par);
        });
      else
        grad_(in.data(), lab.data(), params.data(), loss, grads.data(), count, ws);
      return;
    }
    AlignedVector<char>& mine = partial_[static_cast<size_t>(t)];
    std::vector<void*> g;
    for (size_t a = 1; a < partial_at_.size(); ++a) g.push_back(mine.data() + partial_at_[a] * eb);
    grad_(in.data(), lab.data(), params.data(), mine.data(), g.data(), count, ws);
  });
  if (parts == 1) return;
  // Weighted sum of the shares' means.
  auto combine = [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    const T w0 = static_cast<T>(static_cast<double>(n / parts) / static_cast<double>(n));
    std::vector<T*> dst{static_cast<T*>(loss)};
    for (void* g : grads) dst.push_back(static_cast<T*>(g));
    std::vector<int64_t> sizes{1};
    sizes.insert(sizes.end(), sizes_.params.begin(), sizes_.params.end());
    for (size_t a = 0; a < dst.size(); ++a)
      for (int64_t e = 0; e < sizes[a]; ++e) dst[a][e] *= w0;
    for (int t = 1; t < parts; ++t) {
      const int64_t count = n * (t + 1) / parts - n * t / parts;
      const T w = static_cast<T>(static_cast<double>(count) / static_cast<double>(n));
      const T* src = reinterpret_cast<const T*>(partial_[static_cast<size_t>(t)].data());
      for (size_t a = 0; a < dst.size(); ++a)
        for (int64_t e = 0; e < sizes[a]; ++e) dst[a][e] += w * src[partial_at_[a] + e];
    }
  };
  if (eb == 4) combine(static_cast<float*>(nullptr));
  else combine(static_cast<double*>(nullptr));
}

void Executor::sgd_step(const std::vector<const void*>& inputs, const std::vector<const void*>& labels,
                        const std::vector<void*>& params, void* loss, double rate, int64_t n) {
  const int eb = sizes_.elem_bytes;
  // Splitting writes one gradient copy per thread, then combines and
  // updates: below 64 samples a thread the fused kernel on one thread wins.
  if (sgd_ && (split(n) == 1 || n / threads_ < kSharesFrom)) {
    const float r32 = static_cast<float>(rate);
    const void* r = eb == 4 ? static_cast<const void*>(&r32) : static_cast<const void*>(&rate);
    void* ws = workspaces_[0].get(sgd_ws_(n));
    last_threads_ = 1;
    if (threads_ > 1 && sgd_par_)
      par_call(ParKind::Sgd, n, [&](const codegen::ParallelRunner* par) {
        sgd_par_(inputs.data(), labels.data(), params.data(), loss, r, n, ws, par);
      });
    else
      sgd_(inputs.data(), labels.data(), params.data(), loss, r, n, ws);
    return;
  }
  grads_.resize(params.size());
  std::vector<void*> g;
  for (size_t i = 0; i < params.size(); ++i) {
    grads_[i].resize(static_cast<size_t>(sizes_.params[i] * eb));
    g.push_back(grads_[i].data());
  }
  std::vector<const void*> p(params.begin(), params.end());
  grad(inputs, labels, p, loss, g, n);
  for (size_t i = 0; i < params.size(); ++i) {
    if (eb == 4)
      sgd_update(static_cast<float*>(params[i]), static_cast<const float*>(g[i]), sizes_.params[i],
                 static_cast<float>(rate));
    else
      sgd_update(static_cast<double*>(params[i]), static_cast<const double*>(g[i]), sizes_.params[i], rate);
  }
}

}  // namespace nabla::runtime
