// Calls compiled kernels (codegen/abi.h) on whole batches: workspaces, and
// the batch split across threads. The forward pass splits the samples; the
// gradient kernel runs on each thread's share (from 64 samples a thread;
// below, one call of its _par twin) and the shares' results are combined,
// weighted by their sizes (the kernels return batch means). A _par call
// runs its products on the pool or on the caller alone, whichever its
// timings show faster on this machine now (runtime/pool_choice.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "codegen/abi.h"
#include "runtime/aligned.h"
#include "runtime/pool_choice.h"
#include "runtime/thread_pool.h"

namespace nabla::runtime {

// 64-byte aligned scratch memory that grows on demand. It owns its memory:
// moving hands the block over, copying is not allowed (a copy would free the
// block twice when a vector of workspaces grows).
class Workspace {
public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  Workspace(Workspace&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Workspace& operator=(Workspace&& other) noexcept;
  ~Workspace();

  void* get(int64_t bytes);
  // The bytes it holds once get(bytes) has run.
  int64_t size_after(int64_t bytes) const;

private:
  void* data_ = nullptr;
  int64_t size_ = 0;
};

// Throws ResourceError when the workspaces of a call on `parts` threads,
// `total` bytes with what the call allocates beside them, exceed the budget.
void check_workspaces(int parts, uint64_t total);

// The workspaces of a call split in `parts` (part t needing bytes_of(t)),
// grown on the calling thread before any part runs, their total (with
// `other_bytes` more that the call allocates beside them) checked against
// the memory budget at once: P threads' workspaces are P times one, and a
// worker thread never allocates (an exception there could not reach the
// caller). Each part's workspace into `out` (kept by the caller: a call of
// one part allocates nothing once the workspace has grown).
template <typename BytesOf>
void reserve_workspaces(std::vector<Workspace>& spaces, int parts, BytesOf&& bytes_of, uint64_t other_bytes,
                        std::vector<void*>& out) {
  if (spaces.size() < static_cast<size_t>(parts)) spaces.resize(static_cast<size_t>(parts));
  out.resize(static_cast<size_t>(parts));
  if (parts > 1) {
    uint64_t total = other_bytes;
    for (int t = 0; t < parts; ++t) {
      const uint64_t after = static_cast<uint64_t>(spaces[static_cast<size_t>(t)].size_after(bytes_of(t)));
      total = after > UINT64_MAX - total ? UINT64_MAX : total + after;
    }
    check_workspaces(parts, total);
  }
  for (int t = 0; t < parts; ++t) out[static_cast<size_t>(t)] = spaces[static_cast<size_t>(t)].get(bytes_of(t));
}

struct ArgSizes {
  std::vector<int64_t> inputs, labels, params, outputs;  // elements per sample (params: total)
  int elem_bytes = 4;
};

class Executor {
public:
  Executor(codegen::ForwardFn forward, codegen::WorkspaceFn forward_ws, codegen::GradFn grad,
           codegen::WorkspaceFn grad_ws, ArgSizes sizes, int threads);
  // The same, running on `pool_of`'s threads instead of a pool of its own
  // (its thread count): for kernels whose calls never overlap that
  // executor's (a model's evaluation kernel beside its training kernels,
  // called from the one training loop or under the model's lock), so that
  // a model keeps one set of worker threads.
  Executor(codegen::ForwardFn forward, codegen::WorkspaceFn forward_ws, codegen::GradFn grad,
           codegen::WorkspaceFn grad_ws, ArgSizes sizes, const Executor& pool_of);
  // The fused SGD step kernel, when compiled.
  void set_sgd(codegen::SgdFn sgd, codegen::WorkspaceFn sgd_ws, codegen::SgdParFn sgd_par = nullptr) {
    sgd_ = sgd;
    sgd_ws_ = sgd_ws;
    sgd_par_ = sgd_par;
  }
  // The kernels' _par twins: a batch too small to split across the threads
  // runs on one call whose large GEMMs are split across them instead.
  void set_parallel(codegen::ForwardParFn forward_par, codegen::GradParFn grad_par) {
    forward_par_ = forward_par;
    grad_par_ = grad_par;
  }

  // outputs[i] holds n * sizes.outputs[i] elements.
  void forward(const std::vector<const void*>& inputs, const std::vector<const void*>& params,
               const std::vector<void*>& outputs, int64_t n);
  // loss: one element; grads[i]: sizes.params[i] elements.
  void grad(const std::vector<const void*>& inputs, const std::vector<const void*>& labels,
            const std::vector<const void*>& params, void* loss, const std::vector<void*>& grads, int64_t n);

  // One SGD step: params[i] -= rate * gradient (in place); the loss before
  // the update to `loss`. Small batches (< 64 samples a thread): the fused
  // kernel, its large GEMMs split across the threads (sgd_par); else the
  // threads' gradients combined, then the update.
  void sgd_step(const std::vector<const void*>& inputs, const std::vector<const void*>& labels,
                const std::vector<void*>& params, void* loss, double rate, int64_t n);

  int threads() const { return threads_; }
  // The threads the last forward, grad or sgd_step call ran on: its shares,
  // or for a _par call the pool's threads or 1 (the caller alone).
  int last_call_threads() const { return last_threads_; }

private:
  Executor(codegen::ForwardFn forward, codegen::WorkspaceFn forward_ws, codegen::GradFn grad,
           codegen::WorkspaceFn grad_ws, ArgSizes sizes, int threads, std::shared_ptr<ThreadPool> pool);

  enum class ParKind { Forward, Grad, Sgd };
  // The thread count worth using for n samples (at least 16 samples each).
  int split(int64_t n) const;
  // call(runner): a _par kernel call on n samples, given the pool's runner
  // or null (the caller alone) as the choice for (kind, n) says, and timed
  // for that choice.
  template <typename Call>
  void par_call(ParKind kind, int64_t n, Call&& call);

  codegen::ForwardFn forward_;
  codegen::WorkspaceFn forward_ws_;
  codegen::GradFn grad_;
  codegen::WorkspaceFn grad_ws_;
  codegen::SgdFn sgd_ = nullptr;
  codegen::WorkspaceFn sgd_ws_ = nullptr;
  codegen::ForwardParFn forward_par_ = nullptr;
  codegen::GradParFn grad_par_ = nullptr;
  codegen::SgdParFn sgd_par_ = nullptr;
  codegen::ParallelRunner runner_{};  // the pool, for the _par kernels
  int last_threads_ = 1;
  std::map<std::pair<ParKind, int64_t>, PoolChoice> choices_;  // per kind and batch size
  std::vector<AlignedVector<char>> grads_;  // sgd_step on several threads: the gradient
  ArgSizes sizes_;
  int threads_;
  std::vector<Workspace> workspaces_;
  std::vector<void*> spaces_;  // a call's parts' workspaces (reserve_workspaces)
  std::shared_ptr<ThreadPool> pool_;  // shared with the executors made with pool_of
  // Per extra thread: the loss, then the gradients, each on its own cache
  // line; partial_at_[0] (the loss), [1 + i] (param i) are their element
  // offsets, partial_elems_ the size.
  std::vector<AlignedVector<char>> partial_;
  std::vector<int64_t> partial_at_;
  int64_t partial_elems_ = 0;
};

}  // namespace nabla::runtime
