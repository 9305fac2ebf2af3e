// Calls compiled kernels (codegen/abi.h) on whole batches: workspaces, and
// the batch split across threads. The forward pass splits the samples; the
// gradient kernel runs on each thread's share and the shares' results are
// combined, weighted by their sizes (the kernels return batch means).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "codegen/abi.h"

namespace nabla::runtime {

// 64-byte aligned scratch memory that grows on demand.
class Workspace {
public:
  void* get(int64_t bytes);
  ~Workspace();

private:
  void* data_ = nullptr;
  int64_t size_ = 0;
};

struct ArgSizes {
  std::vector<int64_t> inputs, labels, params, outputs;  // elements per sample (params: total)
  int elem_bytes = 4;
};

class Executor {
public:
  Executor(codegen::ForwardFn forward, codegen::WorkspaceFn forward_ws, codegen::GradFn grad,
           codegen::WorkspaceFn grad_ws, ArgSizes sizes, int threads);

  // outputs[i] holds n * sizes.outputs[i] elements.
  void forward(const std::vector<const void*>& inputs, const std::vector<const void*>& params,
               const std::vector<void*>& outputs, int64_t n);
  // loss: one element; grads[i]: sizes.params[i] elements.
  void grad(const std::vector<const void*>& inputs, const std::vector<const void*>& labels,
            const std::vector<const void*>& params, void* loss, const std::vector<void*>& grads, int64_t n);

  int threads() const { return threads_; }

private:
  // The thread count worth using for n samples (at least 32 samples each).
  int split(int64_t n) const;

  codegen::ForwardFn forward_;
  codegen::WorkspaceFn forward_ws_;
  codegen::GradFn grad_;
  codegen::WorkspaceFn grad_ws_;
  ArgSizes sizes_;
  int threads_;
  std::vector<Workspace> workspaces_;
  std::vector<std::vector<char>> partial_;  // per extra thread: loss + grads
};

}  // namespace nabla::runtime
