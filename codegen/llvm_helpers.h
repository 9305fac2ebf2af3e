// LLVM builder helpers shared by the kernel and GEMM emitters (emit_kernel.h,
// gemm.h): the state of the function being emitted (module, builder, element
// type, the buffers' base addresses), constants, counted loops and branches,
// and loads and stores tagged with one alias scope per region of memory.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include <functional>
#include <string>
#include <vector>

#include "codegen/emit.h"

namespace nabla::codegen {

class LlvmEmitter {
public:
  LlvmEmitter(llvm::Module& module, ir::DType dtype, const EmitTarget& target);

protected:
  int64_t elem_bytes() const { return dtype_ == ir::DType::F32 ? 4 : 8; }
  llvm::Value* i64(int64_t v) { return llvm::ConstantInt::get(i64_, static_cast<uint64_t>(v), true); }
  llvm::Value* fp(double v) { return llvm::ConstantFP::get(t_, v); }
  // nounwind, and the host's CPU and features.
  void set_attributes(llvm::Function* f);

  // --- memory --------------------------------------------------------------------

  // One alias scope (in a new domain) per region of memory; buffer i lies in
  // region[i]: its loads and stores (tag) are in that region's scope and
  // noalias with every other region's. With `bufs`, only those buffers get
  // scopes, among the regions of those alone (a function that touches only
  // them: the lists stay as short as its buffers are few, and the work
  // follows their number, not the program's; the tables already hold
  // every buffer).
  void make_scopes(const std::string& domain_name, const std::vector<size_t>& region,
                   const std::vector<int>* bufs = nullptr);
  llvm::Value* address(int buf, llvm::Value* offset) {
    return b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(buf)], offset);
  }
  template <typename I>
  I* tag(I* inst, int buf) {
    inst->setMetadata(llvm::LLVMContext::MD_alias_scope, scope_of_[static_cast<size_t>(buf)]);
    inst->setMetadata(llvm::LLVMContext::MD_noalias, noalias_of_[static_cast<size_t>(buf)]);
    return inst;
  }
  llvm::Value* load(int buf, llvm::Value* offset) { return tag(b_.CreateLoad(t_, address(buf, offset)), buf); }
  void store(llvm::Value* v, int buf, llvm::Value* offset) { tag(b_.CreateStore(v, address(buf, offset)), buf); }
  llvm::FixedVectorType* vec(int64_t lanes) { return llvm::FixedVectorType::get(t_, static_cast<unsigned>(lanes)); }
  llvm::Value* vload(int buf, llvm::Value* offset, int64_t lanes) {
    return tag(b_.CreateAlignedLoad(vec(lanes), address(buf, offset), llvm::Align(elem_bytes())), buf);
  }
  void vstore(llvm::Value* v, int buf, llvm::Value* offset) {
    tag(b_.CreateAlignedStore(v, address(buf, offset), llvm::Align(elem_bytes())), buf);
  }
  // A variable in the function's entry block.
  llvm::AllocaInst* slot(llvm::Type* type);

  // --- loops -----------------------------------------------------------------------

  using Body = std::function<void(llvm::Value*)>;
  // for (i = 0; i < count; ++i) body(i); count >= 1 (sizes are positive and n >= 1).
  // `scalar`: not vectorized. With lean_loops_, a loop that streams
  // (streams()) is vectorized but not interleaved.
  void loop(llvm::Value* count, const Body& body, bool scalar = false);
  // Whether the loop body from `head` on (the blocks after it in the
  // function) streams memory: no store to a local variable (a reduction's
  // accumulator) and at most 2 floating-point results per load or store
  // (not a transcendental function's polynomial).
  bool streams(llvm::BasicBlock* head) const;
  void loop(int64_t count, const Body& body, bool scalar = false) { loop(i64(count), body, scalar); }
  // for (i = 0; i < count; ++i) body(i), for a count that may be 0.
  void loop0(llvm::Value* count, const Body& body, bool scalar = false);
  // Nested loops over `dims` (outermost first); body gets one index per dim.
  void loops(const std::vector<int64_t>& dims, const std::function<void(const std::vector<llvm::Value*>&)>& body,
             std::vector<llvm::Value*> idx = {});
  // Emits `then` or `otherwise` by a runtime condition.
  void branch(llvm::Value* cond, const std::function<void()>& then, const std::function<void()>& otherwise);

  llvm::Value* min(llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(b_.CreateICmpSLT(a, b), a, b); }
  llvm::Value* ceil_div(llvm::Value* a, int64_t b) { return b_.CreateSDiv(b_.CreateAdd(a, i64(b - 1)), i64(b)); }

  // --- tasks on the parallel runner (abi.h) ------------------------------------------

  // The tasks a runner `par` (not null) runs: its count, at least 1 and at
  // most kGemmMaxTasks.
  llvm::Value* runner_tasks(llvm::Value* par);
  // runner->run(runner->ctx, tasks, task, arg): task(arg, t) for each t < tasks.
  void run_tasks(llvm::Value* par, llvm::Value* tasks, llvm::Function* task, llvm::Value* arg);
  // The rows (or columns) of `extent` task t of `tasks` takes: a chunk of
  // ceil(extent / tasks) rounded up to kGemmMaxNR. Every split of a matrix
  // (GEMM tasks, rows_on_threads) takes its chunks from here, so a thread
  // gets the same rows in each.
  llvm::Value* task_chunk(llvm::Value* extent, llvm::Value* tasks);

  // Most of a kernel's loops stream memory: LLVM's interleaving (4 vectors
  // a trip, then a vectorized epilogue) adds code to compile there, not
  // speed (the MLP's cold compile: 118 -> 108 ms). Reductions and
  // arithmetic-heavy loops keep it: independent partial sums and
  // polynomials hide the FMA's latency (the 20-layer sigmoid net's
  // gradient lost 4 % without it).
  bool lean_loops_ = false;
  llvm::Module& m_;
  llvm::LLVMContext& c_;
  llvm::IRBuilder<> b_;
  const ir::DType dtype_;
  const EmitTarget& target_;
  const GemmChoices choice_;  // the target's choices for dtype_ (target.h)
  llvm::Type* t_;
  llvm::IntegerType* i64_;
  llvm::PointerType* ptr_;
  llvm::Function* f_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  std::vector<llvm::Value*> base_;                     // per buffer: its address
  std::vector<llvm::MDNode*> scope_of_, noalias_of_;  // per buffer: its alias scope, the others
};

}  // namespace nabla::codegen
