// The kernel ABI (architecture decision 7): the C signatures every model's
// kernels have, in process (JIT) and in object files (AOT). T is float (f32)
// or double (f64); arrays of pointers list the model's declarations in order.
//
//   void PREFIX_forward(const T* const* inputs, const T* const* params,
//                       T* const* outputs, int64_t n, void* workspace);
//   void PREFIX_grad(const T* const* inputs, const T* const* labels,
//                    const T* const* params, T* loss, T* const* grads,
//                    int64_t n, void* workspace);
//   void PREFIX_sgd_step(const T* const* inputs, const T* const* labels,
//                        T* const* params, T* loss, const T* rate,
//                        int64_t n, void* workspace);   // (optional)
//   PREFIX_forward_par, PREFIX_grad_par, PREFIX_sgd_step_par: the same with
//     a last argument `const nabla_parallel* par` (ParallelRunner; null: as
//     the plain kernel): large GEMMs are split by columns into par->tasks
//     tasks that par->run runs (on the caller's threads).
//   int64_t PREFIX_forward_workspace(int64_t n);   // bytes
//   int64_t PREFIX_grad_workspace(int64_t n);
//   int64_t PREFIX_sgd_step_workspace(int64_t n);
//
// Inputs, labels and outputs hold n samples, C order, the batch first; params
// and grads have exactly the declared shapes. `loss` receives the mean loss
// over the batch and `grads` its gradient (the mean of the per-sample
// gradients). The workspace is 64-byte aligned, at least as large as the
// workspace function says; no two arrays overlap. Kernels are reentrant: calls
// with different workspaces may run at the same time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nabla::codegen {

using ForwardFn = void (*)(const void* const* inputs, const void* const* params, void* const* outputs,
                           int64_t n, void* workspace);
using GradFn = void (*)(const void* const* inputs, const void* const* labels, const void* const* params,
                        void* loss, void* const* grads, int64_t n, void* workspace);
using WorkspaceFn = int64_t (*)(int64_t n);
// The fused training step: params updated in place, p -= rate * (mean gradient).
using SgdFn = void (*)(const void* const* inputs, const void* const* labels, void* const* params, void* loss,
                       const void* rate, int64_t n, void* workspace);

// C's struct nabla_parallel: run(ctx, tasks, task, arg) calls task(arg, t)
// for every t in [0, tasks), on any threads, and returns when all returned.
struct ParallelRunner {
  void (*run)(void* ctx, int64_t tasks, void (*task)(void* arg, int64_t t), void* arg);
  void* ctx;
  int64_t tasks;
};
using ForwardParFn = void (*)(const void* const* inputs, const void* const* params, void* const* outputs,
                              int64_t n, void* workspace, const ParallelRunner* par);
using GradParFn = void (*)(const void* const* inputs, const void* const* labels, const void* const* params,
                           void* loss, void* const* grads, int64_t n, void* workspace, const ParallelRunner* par);
using SgdParFn = void (*)(const void* const* inputs, const void* const* labels, void* const* params, void* loss,
                          const void* rate, int64_t n, void* workspace, const ParallelRunner* par);

// One array argument of a kernel, for the header's documentation.
struct ArgDoc {
  std::string name;
  std::vector<int64_t> shape;  // per sample for inputs, labels and outputs
};

struct HeaderInfo {
  std::string prefix, model_name, dtype;  // dtype: "float" or "double"
  std::vector<ArgDoc> inputs, labels, params, outputs;
  bool forward = true, grad = true;
};

// The C header declaring an object's kernels (nabla compile --emit header).
std::string c_header(const HeaderInfo& info);

}  // namespace nabla::codegen
