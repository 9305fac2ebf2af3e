// LLVM builder helpers: attributes, alias scopes, loops and branches.
#include "codegen/llvm_helpers.h"

#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>

#include <map>
#include <tuple>

namespace nabla::codegen {

using llvm::Value;

LlvmEmitter::LlvmEmitter(llvm::Module& module, ir::DType dtype, const EmitTarget& target)
    : m_(module), c_(module.getContext()), b_(c_), dtype_(dtype), target_(target),
      choice_(gemm_choices(target.profile, dtype)) {
  t_ = dtype == ir::DType::F32 ? llvm::Type::getFloatTy(c_) : llvm::Type::getDoubleTy(c_);
  i64_ = llvm::Type::getInt64Ty(c_);
  ptr_ = llvm::PointerType::get(c_, 0);
}

void LlvmEmitter::set_attributes(llvm::Function* f) {
  f->addFnAttr(llvm::Attribute::NoUnwind);
  if (!target_.cpu.empty()) f->addFnAttr("target-cpu", target_.cpu);
  if (!target_.features.empty()) f->addFnAttr("target-features", target_.features);
  // Loops LLVM vectorizes: the width the target's choices prefer (LLVM's
  // own tuning of the CPU). Vectors the emitters write out (the GEMM's) are
  // full width everywhere: legal at the target's widest.
  f->addFnAttr("prefer-vector-width", std::to_string(choice_.vector_bits_loops));
  f->addFnAttr("min-legal-vector-width", std::to_string(target_.profile.vector_bits));
}

void LlvmEmitter::make_scopes(const std::string& domain_name, const std::vector<size_t>& region,
                              const std::vector<int>* bufs) {
  llvm::MDBuilder mdb(c_);
  llvm::MDNode* domain = mdb.createAnonymousAliasScopeDomain(domain_name);
  std::vector<size_t> which;  // the buffers tagged
  if (bufs) {
    for (int b : *bufs) which.push_back(static_cast<size_t>(b));  // the tables sized by the caller
  } else {
    for (size_t i = 0; i < region.size(); ++i) which.push_back(i);
    scope_of_.assign(region.size(), nullptr);
    noalias_of_.assign(region.size(), nullptr);
  }
  std::map<size_t, llvm::MDNode*> scope;
  for (size_t i : which)
    if (!scope.count(region[i])) scope[region[i]] = mdb.createAnonymousAliasScope(domain);
  std::map<size_t, std::pair<llvm::MDNode*, llvm::MDNode*>> tags;  // per region: its scope, the others
  for (const auto& [r, s] : scope) {
    std::vector<llvm::Metadata*> others;
    for (const auto& [k, o] : scope)
      if (k != r) others.push_back(o);
    tags[r] = {llvm::MDNode::get(c_, {s}), llvm::MDNode::get(c_, others)};
  }
  for (size_t i : which) std::tie(scope_of_[i], noalias_of_[i]) = tags[region[i]];
}

llvm::AllocaInst* LlvmEmitter::slot(llvm::Type* type) {
  llvm::IRBuilder<> at(entry_, entry_->begin());
  return at.CreateAlloca(type);
}

// --- tasks -------------------------------------------------------------------

Value* LlvmEmitter::runner_tasks(Value* par) {
  auto* runner_t = llvm::StructType::get(c_, {ptr_, ptr_, i64_});  // {run, ctx, tasks}
  Value* tasks = b_.CreateLoad(i64_, b_.CreateStructGEP(runner_t, par, 2));
  return min(b_.CreateSelect(b_.CreateICmpSLT(tasks, i64(1)), i64(1), tasks), i64(kGemmMaxTasks));
}

void LlvmEmitter::run_tasks(Value* par, Value* tasks, llvm::Function* task, Value* arg) {
  auto* runner_t = llvm::StructType::get(c_, {ptr_, ptr_, i64_});
  Value* run = b_.CreateLoad(ptr_, b_.CreateStructGEP(runner_t, par, 0));
  Value* ctx = b_.CreateLoad(ptr_, b_.CreateStructGEP(runner_t, par, 1));
  auto* run_t = llvm::FunctionType::get(llvm::Type::getVoidTy(c_), {ptr_, i64_, ptr_, ptr_}, false);
  b_.CreateCall(run_t, run, {ctx, tasks, task, arg});
}

Value* LlvmEmitter::task_chunk(Value* extent, Value* tasks) {
  Value* share = b_.CreateSDiv(b_.CreateAdd(extent, b_.CreateSub(tasks, i64(1))), tasks);
  return b_.CreateMul(ceil_div(share, kGemmMaxNR), i64(kGemmMaxNR));
}

// --- loops -------------------------------------------------------------------

void LlvmEmitter::loop(Value* count, const Body& body, bool scalar) {
  llvm::BasicBlock* pre = b_.GetInsertBlock();
  auto* head = llvm::BasicBlock::Create(c_, "loop", f_);
  auto* exit = llvm::BasicBlock::Create(c_, "loop.end", f_);
  b_.CreateBr(head);
  b_.SetInsertPoint(head);
  llvm::PHINode* i = b_.CreatePHI(i64_, 2);
  i->addIncoming(i64(0), pre);
  body(i);
  Value* next = b_.CreateAdd(i, i64(1), "", true, true);
  i->addIncoming(next, b_.GetInsertBlock());
  llvm::BranchInst* latch = b_.CreateCondBr(b_.CreateICmpSLT(next, count), head, exit);
  auto hint = [&](const char* name, llvm::Metadata* value) {
    llvm::Metadata* md[] = {llvm::MDString::get(c_, name), value};
    llvm::MDNode* self = llvm::MDNode::getDistinct(c_, {nullptr, llvm::MDNode::get(c_, md)});
    self->replaceOperandWith(0, self);
    latch->setMetadata(llvm::LLVMContext::MD_loop, self);
  };
  if (scalar) {
    // Not vectorized: a strided copy would become scatters or gathers,
    // slower than scalar moves.
    hint("llvm.loop.vectorize.enable", llvm::ConstantAsMetadata::get(b_.getFalse()));
  } else if (lean_loops_ && llvm::isa<llvm::ConstantInt>(count) &&
             llvm::cast<llvm::ConstantInt>(count)->getSExtValue() >= 256 && streams(head)) {
    hint("llvm.loop.interleave.count", llvm::ConstantAsMetadata::get(b_.getInt32(1)));
  }
  b_.SetInsertPoint(exit);
}

bool LlvmEmitter::streams(llvm::BasicBlock* head) const {
  int64_t arithmetic = 0, memory = 0;
  for (auto bb = head->getIterator(); bb != f_->end(); ++bb) {
    for (llvm::Instruction& inst : *bb) {
      if (auto* st = llvm::dyn_cast<llvm::StoreInst>(&inst)) {
        if (llvm::isa<llvm::AllocaInst>(llvm::getUnderlyingObject(st->getPointerOperand()))) return false;
        ++memory;
      } else if (llvm::isa<llvm::LoadInst>(inst)) {
        ++memory;
      } else if (inst.getType()->isFPOrFPVectorTy()) {
        ++arithmetic;
      }
    }
  }
  return arithmetic <= 2 * memory;
}

void LlvmEmitter::loop0(Value* count, const Body& body, bool scalar) {
  auto* run = llvm::BasicBlock::Create(c_, "loop0", f_);
  auto* skip = llvm::BasicBlock::Create(c_, "loop0.skip", f_);
  b_.CreateCondBr(b_.CreateICmpSGT(count, i64(0)), run, skip);
  b_.SetInsertPoint(run);
  loop(count, body, scalar);
  b_.CreateBr(skip);
  b_.SetInsertPoint(skip);
}

void LlvmEmitter::loops(const std::vector<int64_t>& dims,
                        const std::function<void(const std::vector<Value*>&)>& body, std::vector<Value*> idx) {
  if (idx.size() == dims.size()) {
    body(idx);
    return;
  }
  loop(dims[idx.size()], [&](Value* i) {
    std::vector<Value*> next = idx;
    next.push_back(i);
    loops(dims, body, next);
  });
}

void LlvmEmitter::branch(Value* cond, const std::function<void()>& then, const std::function<void()>& otherwise) {
  auto* t = llvm::BasicBlock::Create(c_, "if", f_);
  auto* e = llvm::BasicBlock::Create(c_, "else", f_);
  auto* j = llvm::BasicBlock::Create(c_, "endif", f_);
  b_.CreateCondBr(cond, t, e);
  b_.SetInsertPoint(t);
  then();
  b_.CreateBr(j);
  b_.SetInsertPoint(e);
  otherwise();
  b_.CreateBr(j);
  b_.SetInsertPoint(j);
}

}  // namespace nabla::codegen
