// The loops of a kernel program's steps (program.h) other than elementwise
// groups and GEMMs: reductions, batch means, softmax and the special ops,
// and what every step's loops share (expression trees evaluated at an index,
// the loop over the batch). The kernel emitter (emit_kernel.cpp) adds the
// functions around them, elementwise groups and GEMM steps.
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "codegen/math_lib.h"

namespace nabla::codegen {

class StepEmitter : public MathEmitter {
protected:
  StepEmitter(llvm::Module& module, const Program& program, const EmitTarget& target)
      : MathEmitter(module, program.dtype, target), p_(program) {}

  // body(batch index) over the batch, or body(nullptr) once.
  void batch_loop_or_none(bool batched, const Body& body);
  // Where `a` is at batch `batch` (null: no batch axis) and index `idx`.
  llvm::Value* offset(const Access& a, llvm::Value* batch, const std::vector<llvm::Value*>& idx);
  // Expression e of step s at an index.
  llvm::Value* eval(const Step& s, int e, llvm::Value* batch, const std::vector<llvm::Value*>& idx);
  static bool flatten(Step& s);

  void reduce(const Step& original);
  void batch_mean(const Step& original);
  void softmax(const Step& s);
  void special(const Step& s);

  const Program& p_;
  llvm::Value* n_ = nullptr;                     // the batch size
  std::unordered_map<int, llvm::Value*> local_;  // within a fused loop iteration: buffer -> value

private:
  // The groups of a softmax-like op: outer x len x inner, the op along len.
  struct Groups {
    int64_t outer = 1, len = 1, inner = 1;
  };
  static Groups groups(const Shape& shape, int axis);
  using At = std::function<llvm::Value*(llvm::Value*)>;  // a group's element j -> its offset
  void for_groups(const Step& s, const Groups& g, const std::function<void(const At&)>& body);
  void best_of_groups(const Step& s);
  void repeat(const Step& s);
  void group_sum(const Step& s);
};

}  // namespace nabla::codegen
