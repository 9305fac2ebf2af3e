// Kernel emission: the kernel's functions and arguments, the steps in order
// (elementwise groups sharing loops, GEMM steps; the others in emit_steps.h).
#include "codegen/emit_kernel.h"

#include <llvm/IR/Module.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "codegen/emit_steps.h"
#include "codegen/fuse_epilogues.h"
#include "codegen/gemm.h"
#include "ir/assert.h"

namespace nabla::codegen {
namespace {

using ir::Op;
using llvm::Value;

class KernelEmitter : public StepEmitter {
public:
  KernelEmitter(llvm::Module& module, const Program& program, const EmitTarget& target)
      : StepEmitter(module, program, target) {
    lean_loops_ = true;
  }

  void emit_kernel(const std::string& name, bool gradient, bool sgd, KernelPiece piece) {
    gradient_kernel_ = gradient;
    sgd_kernel_ = sgd;
    if (piece.index > 0) {  // NAME_par.piece<k>: its run of the steps
      f_ = llvm::Function::Create(kernel_type(gradient, true), llvm::Function::ExternalLinkage,
                                  piece_name(name, piece.index), m_);
      kernel_attributes(f_);
      entry_ = llvm::BasicBlock::Create(c_, "entry", f_);
      b_.SetInsertPoint(entry_);
      const Arguments args = arguments(gradient, sgd);
      par_ = f_->getArg(f_->arg_size() - 1);
      prepare(args);
      emit_steps(piece, name);
      b_.CreateRetVoid();
      return;
    }
    declare(name, gradient);
    auto* entry = llvm::BasicBlock::Create(c_, "entry", f_);
    auto* body = llvm::BasicBlock::Create(c_, "body", f_);
    auto* done = llvm::BasicBlock::Create(c_, "done", f_);
    b_.SetInsertPoint(entry);
    entry_ = entry;
    const Arguments args = arguments(gradient, sgd);
    b_.CreateCondBr(b_.CreateICmpSLT(n_, i64(1)), done, body);
    b_.SetInsertPoint(body);
    prepare(args);
    emit_steps(piece, name);
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
    b_.CreateRetVoid();
  }

  void emit_workspace_function(const std::string& name) {
    auto* fty = llvm::FunctionType::get(i64_, {i64_}, false);
    auto* f = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, name, m_);
    set_attributes(f);
    b_.SetInsertPoint(llvm::BasicBlock::Create(c_, "entry", f));
    const int64_t esize = elem_bytes();
    b_.CreateRet(b_.CreateAdd(i64((p_.workspace_fixed + 16) * esize),
                              b_.CreateMul(f->getArg(0), i64(p_.workspace_batched * esize))));
  }

private:
  // --- the kernel's functions and arguments -------------------------------------

  // The kernel's signature (abi.h), with the runner when `par`.
  llvm::FunctionType* kernel_type(bool gradient, bool par) {
    std::vector<llvm::Type*> args = gradient
        ? std::vector<llvm::Type*>{ptr_, ptr_, ptr_, ptr_, ptr_, i64_, ptr_}
        : std::vector<llvm::Type*>{ptr_, ptr_, ptr_, i64_, ptr_};
    if (par) args.push_back(ptr_);
    return llvm::FunctionType::get(llvm::Type::getVoidTy(c_), args, false);
  }

  static std::string piece_name(const std::string& name, int k) { return name + "_par.piece" + std::to_string(k); }

  // A function of the kernel's body (NAME_par, a piece, a part): one copy,
  // distinct arguments.
  void kernel_attributes(llvm::Function* f) {
    set_attributes(f);
    f->addFnAttr(llvm::Attribute::NoInline);
    for (auto& a : f->args())
      if (a.getType()->isPointerTy()) a.addAttr(llvm::Attribute::NoAlias);
  }

  // NAME_par (f_, whose body the steps are), and NAME calling it with a null
  // runner.
  void declare(const std::string& name, bool gradient) {
    llvm::Function* plain = llvm::Function::Create(kernel_type(gradient, false), llvm::Function::ExternalLinkage, name, m_);
    set_attributes(plain);
    for (auto& a : plain->args())
      if (a.getType()->isPointerTy()) a.addAttr(llvm::Attribute::NoAlias);
    f_ = llvm::Function::Create(kernel_type(gradient, true), llvm::Function::ExternalLinkage, name + "_par", m_);
    llvm::IRBuilder<> w(llvm::BasicBlock::Create(c_, "entry", plain));
    std::vector<Value*> pass;
    for (auto& a : plain->args()) pass.push_back(&a);
    pass.push_back(llvm::ConstantPointerNull::get(ptr_));
    w.CreateCall(f_, pass);
    w.CreateRetVoid();
    kernel_attributes(f_);  // one copy of the body, not two
    par_ = f_->getArg(f_->arg_size() - 1);
  }

  // The kernel's arrays of pointers (and the loss, rate and workspace).
  struct Arguments {
    Value *inputs = nullptr, *labels = nullptr, *params = nullptr, *outputs = nullptr, *loss = nullptr,
          *grads = nullptr, *ws = nullptr, *rate = nullptr;
  };

  Arguments arguments(bool gradient, bool sgd) {
    Arguments a;
    a.inputs = f_->getArg(0);
    if (gradient) {
      a.labels = f_->getArg(1);
      a.params = f_->getArg(2);
      a.loss = f_->getArg(3);
      (sgd ? a.rate : a.grads) = f_->getArg(4);
      n_ = f_->getArg(5);
      a.ws = f_->getArg(6);
    } else {
      a.params = f_->getArg(1);
      a.outputs = f_->getArg(2);
      n_ = f_->getArg(3);
      a.ws = f_->getArg(4);
    }
    return a;
  }

  // The memory regions and alias scopes, the buffers' addresses (unless
  // parts compute their own) and each buffer's last reader.
  void prepare(const Arguments& args) {
    make_alias_scopes();
    // The per-buffer tables, one entry a buffer: the addresses here for a
    // kernel emitted whole, else each part's own (outline, bind); the alias
    // tags from make_alias_scopes, or each unit's own.
    const size_t nb = p_.buffers.size();
    base_.assign(nb, nullptr);
    if (p_.steps.size() <= kOutlineAbove)
      for (size_t i = 0; i < nb; ++i) base_[i] = buffer_base(p_.buffers[i], args);
    scope_of_.resize(nb, nullptr);
    noalias_of_.resize(nb, nullptr);
    last_read_.assign(nb, -1);
    for (size_t i = 0; i < p_.steps.size(); ++i)
      for_each_read(p_.steps[i], [&](int buf) { last_read_[static_cast<size_t>(buf)] = static_cast<int>(i); });
  }

  // Where a buffer is: an argument array's element, or its place in the
  // workspace (batched temps after the fixed ones, scaled by n).
  Value* buffer_base(const Buffer& buf, const Arguments& a) {
    auto arg = [&](Value* array) {
      return b_.CreateLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, array, static_cast<uint64_t>(buf.index)));
    };
    const int64_t esize = elem_bytes();
    switch (buf.kind) {
      case BufKind::Input: return arg(a.inputs);
      case BufKind::Label: return arg(a.labels);
      case BufKind::Param: return arg(a.params);
      case BufKind::Output: return arg(a.outputs);
      case BufKind::Grad: return arg(a.grads);
      case BufKind::Loss: return a.loss;
      case BufKind::Rate: return a.rate;
      case BufKind::Temp: {
        Value* off = buf.batched
            ? b_.CreateAdd(i64(p_.workspace_fixed * esize), b_.CreateMul(n_, i64(buf.offset * esize)))
            : i64(buf.offset * esize);
        return b_.CreateInBoundsGEP(b_.getInt8Ty(), a.ws, off);
      }
    }
    return nullptr;
  }

  // Temps that share workspace memory (at different times) share a scope;
  // every other buffer is distinct memory by the ABI's contract.
  void make_alias_scopes() {
    const size_t nb = p_.buffers.size();
    std::vector<size_t> cls(nb);
    for (size_t i = 0; i < nb; ++i) cls[i] = i;
    std::function<size_t(size_t)> find = [&](size_t x) { return cls[x] == x ? x : cls[x] = find(cls[x]); };
    // Overlapping temps of one arena, transitively: sorted by offset, each
    // joins the group before it while it starts below the group's end (the
    // components of the overlap graph, in n log n rather than all pairs).
    for (const bool batched : {false, true}) {
      std::vector<std::pair<int64_t, size_t>> temps;  // offset, buffer
      for (size_t i = 0; i < nb; ++i)
        if (p_.buffers[i].kind == BufKind::Temp && p_.buffers[i].batched == batched)
          temps.emplace_back(p_.buffers[i].offset, i);
      std::sort(temps.begin(), temps.end());
      int64_t end = 0;
      for (size_t k = 0; k < temps.size(); ++k) {
        const auto [offset, i] = temps[k];
        const int64_t size = std::max<int64_t>(p_.buffers[i].shape.numel(), 1);
        const bool joins = k > 0 && offset < end;
        if (joins) cls[find(i)] = find(temps[k - 1].second);
        end = joins ? std::max(end, offset + size) : offset + size;
      }
    }
    for (size_t i = 0; i < nb; ++i) region_.push_back(find(i));
    if (p_.steps.size() <= kOutlineAbove) make_scopes("nabla", region_);  // else per part (outline)
  }

  // --- steps ----------------------------------------------------------------------

  // The steps, in units emitted together: a GEMM with the step that
  // initializes its C (and a sum that loop computes), a run of fused
  // elementwise steps, or one step. Of a kernel in pieces, the units of
  // `piece` (runs of about equal steps), and in piece 0 the calls of the
  // other pieces after them.
  void emit_steps(KernelPiece piece, const std::string& name) {
    std::vector<std::pair<size_t, size_t>> units;  // [begin, end) of steps
    for (size_t i = 0; i < p_.steps.size();) {
      const size_t end = sum_fuses_into_init(p_, i)                 ? i + 3
                         : initializes_gemm(i)                        ? i + 2
                         : p_.steps[i].kind != StepKind::Elementwise ? i + 1
                                                                     : fusible_run(i);
      units.emplace_back(i, end);
      i = end;
    }
    if (piece.count > 1) {  // the units whose first step falls in the piece's run
      std::vector<std::pair<size_t, size_t>> mine;
      for (const auto& u : units)
        if (u.first >= piece.begin && u.first < piece.end) mine.push_back(u);
      units = std::move(mine);
    }
    if (p_.steps.size() <= kOutlineAbove) {
      for (const auto& u : units) emit_unit(u.first, u.second);
    } else {
      // A large kernel: its units in functions of about kPartSteps steps each,
      // which LLVM optimizes and compiles in time linear in their number (one
      // function of all the steps took it time growing faster than the
      // model: a chain of 128 tanh layers, 8.7 s).
      outline(units);
    }
    if (piece.index != 0) return;
    std::vector<Value*> args;
    for (auto& a : f_->args()) args.push_back(&a);
    for (int k = 1; k < piece.count; ++k) {
      llvm::Function* f = llvm::Function::Create(f_->getFunctionType(), llvm::Function::ExternalLinkage,
                                                 piece_name(name, k), m_);
      kernel_attributes(f);
      b_.CreateCall(f, args);
    }
  }

  void emit_unit(size_t begin, size_t end) {
    if (end - begin == 3 && sum_fuses_into_init(p_, begin))
      return gemm(p_.steps[begin + 2], &p_.steps[begin + 1], &p_.steps[begin]);
    if (end - begin == 2 && initializes_gemm(begin)) return gemm(p_.steps[begin + 1], &p_.steps[begin]);
    if (p_.steps[begin].kind != StepKind::Elementwise) return emit_step(p_.steps[begin]);
    std::vector<const Step*> group;
    for (size_t j = begin; j < end; ++j) group.push_back(&p_.steps[j]);
    elementwise(group, static_cast<int>(end));
  }

  // The emitter's state for the function being emitted; enter() switches
  // to a new function (its own entry block), bind() gives it the addresses
  // and alias scopes of the buffers it uses, leave() returns to the saved
  // one. The per-buffer tables stay one copy: bind() notes what it
  // replaced and leave() puts it back, so a function costs the work of its
  // own buffers, not of all the program's (a kernel of 40,000 buffers in
  // 3,000 functions).
  struct Bound {
    size_t buf;
    Value* base;
    llvm::MDNode *scope, *noalias;
  };
  struct FunctionState {
    llvm::IRBuilderBase::InsertPoint ip;
    llvm::Function* f;
    llvm::BasicBlock* entry;
    Value *n, *par;
    std::vector<Bound> bound;  // the entries bind() replaced
  };

  FunctionState enter(llvm::Function* fn) {
    FunctionState saved{b_.saveIP(), f_, entry_, n_, par_, {}};
    f_ = fn;
    entry_ = llvm::BasicBlock::Create(c_, "entry", fn);
    b_.SetInsertPoint(entry_);
    return saved;
  }

  void leave(FunctionState saved) {
    b_.CreateRetVoid();
    f_ = saved.f;
    entry_ = saved.entry;
    n_ = saved.n;
    par_ = saved.par;
    for (auto it = saved.bound.rbegin(); it != saved.bound.rend(); ++it) {
      base_[it->buf] = it->base;
      scope_of_[it->buf] = it->scope;
      noalias_of_[it->buf] = it->noalias;
    }
    b_.restoreIP(saved.ip);
  }

  // In the entered function (`state`, enter's result): buffer bufs[i] at
  // address(i), and alias scopes for those buffers alone (none with an
  // empty `domain`: a function that only passes the addresses on).
  void bind(FunctionState& state, const std::vector<int>& bufs, const std::function<Value*(size_t)>& address,
            const std::string& domain) {
    for (size_t i = 0; i < bufs.size(); ++i) {
      const size_t b = static_cast<size_t>(bufs[i]);
      state.bound.push_back({b, base_[b], scope_of_[b], noalias_of_[b]});
      base_[b] = address(i);
    }
    if (!domain.empty()) make_scopes(domain, region_, &bufs);
  }

  static constexpr size_t kOutlineAbove = 64, kPartSteps = 24;

  // The units in internal functions NAME_par.partK, of the kernel's own
  // signature, called in order with its arguments: a part computes the
  // addresses of the buffers its steps use and calls its units (functions
  // of those addresses, shared_unit) with them. Values never cross units in
  // registers (a unit's results are stored), so a part boundary between
  // units changes nothing but where the code lies.
  void outline(const std::vector<std::pair<size_t, size_t>>& units) {
    std::vector<Value*> args;
    for (auto& a : f_->args()) args.push_back(&a);
    for (size_t u = 0, part = 0; u < units.size(); ++part) {
      size_t last = u;
      while (last < units.size() && units[last].second - units[u].first <= kPartSteps) ++last;
      last = std::max(last, u + 1);
      llvm::Function* f = llvm::Function::Create(f_->getFunctionType(), llvm::Function::InternalLinkage,
                                                 f_->getName() + ".part" + std::to_string(part), m_);
      kernel_attributes(f);
      b_.CreateCall(f, args);
      // Emit the part with the function-level state its own.
      FunctionState saved = enter(f);
      const Arguments a = arguments(gradient_kernel_, sgd_kernel_);
      par_ = f->getArg(f->arg_size() - 1);
      const std::vector<int> bufs = unit_buffers(units[u].first, units[last - 1].second);
      // No scopes: a part's code is calls of its units, which tag their own.
      bind(saved, bufs, [&](size_t i) { return buffer_base(p_.buffers[static_cast<size_t>(bufs[i])], a); }, "");
      for (size_t k = u; k < last; ++k) shared_unit(units[k].first, units[k].second);
      leave(std::move(saved));
      u = last;
    }
  }

  // The buffers steps [begin, end) touch, in order of first use (a fused
  // update's GEMM reads the rate: gemm()).
  std::vector<int> unit_buffers(size_t begin, size_t end) const {
    std::vector<const Step*> steps;
    for (size_t i = begin; i < end; ++i) steps.push_back(&p_.steps[i]);
    return step_buffers(steps);
  }

  std::vector<int> step_buffers(const std::vector<const Step*>& steps) const {
    std::vector<int> bufs;
    auto use = [&](int buf) {
      if (buf >= 0 && std::find(bufs.begin(), bufs.end(), buf) == bufs.end()) bufs.push_back(buf);
    };
    for (const Step* step : steps) {
      const Step& st = *step;
      for_each_read(st, use);
      for (int buf : {st.out, st.c.buf, st.scratch}) use(buf);
      if (st.alpha_times_rate)
        for (size_t b = 0; b < p_.buffers.size(); ++b)
          if (p_.buffers[b].kind == BufKind::Rate) use(static_cast<int>(b));
    }
    return bufs;
  }

  // What the code of steps [begin, end) depends on, with the buffers named
  // by their order of first use: the steps' text, each buffer's kind,
  // shape, batch dimension, memory region (which of them share one) and
  // whether a fused loop stores it (keep()). Units with equal signatures
  // compile to the same function of the buffers' addresses.
  std::string unit_signature(size_t begin, size_t end, const std::vector<int>& bufs) const {
    auto canon = [&](int buf) {
      if (buf < 0) return buf;
      return static_cast<int>(std::find(bufs.begin(), bufs.end(), buf) - bufs.begin());
    };
    std::string sig;
    for (size_t i = begin; i < end; ++i) {
      Step st = p_.steps[i];
      for (int* b : {&st.out, &st.in.buf, &st.a.buf, &st.b.buf, &st.c.buf, &st.scratch, &st.bias, &st.mask}) *b = canon(*b);
      for (Expr& e : st.exprs)
        if (e.kind == Expr::Kind::Load) e.access.buf = canon(e.access.buf);
      sig += step_str(st) + "\n";  // all of alpha's digits, and whether it is times the rate
    }
    std::vector<size_t> regions;
    for (int buf : bufs) {
      const Buffer& b = p_.buffers[static_cast<size_t>(buf)];
      const size_t r = region_[static_cast<size_t>(buf)];
      const size_t region = static_cast<size_t>(std::find(regions.begin(), regions.end(), r) - regions.begin());
      if (region == regions.size()) regions.push_back(r);
      const bool stored = b.kind != BufKind::Temp || last_read_[static_cast<size_t>(buf)] >= static_cast<int>(end);
      sig += std::to_string(static_cast<int>(b.kind)) + (b.batched ? " [n]" : " ") + b.shape.str() + " r" +
             std::to_string(region) + (stored ? " s\n" : "\n");
    }
    return sig;
  }

  // Steps [begin, end) as a call of an internal function taking the
  // addresses of their buffers, n and the runner; the function emitted
  // once per signature. A model whose layers repeat (a chain of equal
  // layers) compiles each kind of unit once: LLVM's time follows the kinds
  // of layer, not their number.
  void shared_unit(size_t begin, size_t end) {
    const std::vector<int> bufs = unit_buffers(begin, end);
    const std::string sig = unit_signature(begin, end, bufs);
    llvm::Function*& fn = shared_units_[sig];
    if (!fn) {
      std::vector<llvm::Type*> types(bufs.size(), ptr_);
      types.push_back(i64_);
      types.push_back(ptr_);
      fn = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(c_), types, false),
                                  llvm::Function::InternalLinkage,
                                  f_->getName().split(".part").first + ".unit" + std::to_string(shared_units_.size()),
                                  m_);
      set_attributes(fn);
      fn->addFnAttr(llvm::Attribute::NoInline);
      for (size_t i = 0; i < bufs.size(); ++i) {
        const size_t r = region_[static_cast<size_t>(bufs[i])];
        bool alone = true;
        for (size_t j = 0; j < bufs.size(); ++j)
          alone = alone && (j == i || region_[static_cast<size_t>(bufs[j])] != r);
        if (alone) fn->getArg(static_cast<unsigned>(i))->addAttr(llvm::Attribute::NoAlias);
      }
      FunctionState saved = enter(fn);
      bind(saved, bufs, [&](size_t i) { return fn->getArg(static_cast<unsigned>(i)); }, "nabla.unit");
      n_ = fn->getArg(static_cast<unsigned>(bufs.size()));
      par_ = fn->getArg(static_cast<unsigned>(bufs.size() + 1));
      emit_unit(begin, end);
      leave(std::move(saved));
    }
    std::vector<Value*> args;
    for (int buf : bufs) args.push_back(base_[static_cast<size_t>(buf)]);
    args.push_back(n_);
    args.push_back(par_);
    b_.CreateCall(fn, args);
  }

  void emit_step(const Step& step) {
    switch (step.kind) {
      case StepKind::Elementwise: return elementwise({&step});
      case StepKind::Reduce: return reduce_step(step);
      case StepKind::BatchMean: return batch_mean(step);
      case StepKind::Softmax: return softmax(step);
      case StepKind::Special: return special(step);
      case StepKind::Gemm: return gemm(step);
    }
  }

  // --- elementwise steps ----------------------------------------------------------

  // The end of the run of elementwise steps from `first` that can share one
  // loop (horizontal fusion): the same index space after flattening, every
  // value a later step reads from an earlier one read at the same element,
  // and no step writing memory that another step of the run reads; at most
  // kMaxLoopBuffers buffers in all (fuse_epilogues.h: LLVM's vectorizer
  // takes time quadratic in the pointers of one loop).
  size_t fusible_run(size_t first) {
    Step head = p_.steps[first];
    flatten(head);
    std::vector<int> written{head.out};
    std::vector<size_t> read;
    std::vector<int> touched;  // distinct buffers, read or written
    auto touch = [&](const Step& s) {
      auto add = [&](int buf) {
        if (std::find(touched.begin(), touched.end(), buf) == touched.end()) touched.push_back(buf);
      };
      add(s.out);
      for_each_read(s, add);
      return touched.size() <= kMaxLoopBuffers;
    };
    auto note_reads = [&](const Step& s) {
      for_each_read(s, [&](int buf) { read.push_back(region_[static_cast<size_t>(buf)]); });
    };
    touch(head);
    note_reads(head);
    size_t j = first + 1;
    for (; j < p_.steps.size(); ++j) {
      const Step& next = p_.steps[j];
      if (next.kind != StepKind::Elementwise || next.batched != head.batched || initializes_gemm(j)) break;
      Step f = next;
      flatten(f);
      if (f.shape != head.shape) break;
      bool ok = std::find(read.begin(), read.end(), region_[static_cast<size_t>(f.out)]) == read.end();
      for (const Expr& e : f.exprs) {
        if (!ok || e.kind != Expr::Kind::Load) continue;
        if (std::find(written.begin(), written.end(), e.access.buf) == written.end()) continue;
        const Buffer& b = p_.buffers[static_cast<size_t>(e.access.buf)];
        const auto rm = row_major(f.shape);
        ok = e.access.strides == rm && e.access.batch_stride == (b.batched ? f.shape.numel() : 0);
      }
      for (int w : written) ok = ok && region_[static_cast<size_t>(w)] != region_[static_cast<size_t>(f.out)];
      if (!ok || !touch(f)) break;
      written.push_back(f.out);
      note_reads(f);
    }
    return j;
  }

  // One loop nest computing every step of `group` (elementwise steps over the
  // same index space), each stored to its own buffer.
  // `after`: the index of the first step after the group; a temp no later
  // step reads stays in registers.
  void elementwise(const std::vector<const Step*>& group, int after = -1) {
    std::vector<Step> steps;
    for (const Step* g : group) {
      steps.push_back(*g);
      flatten(steps.back());
    }
    const Shape shape = steps[0].shape;
    const bool batched = steps[0].batched;
    const int64_t numel = shape.numel();
    // Fully flat over the batch too: one loop over n * numel.
    bool whole = batched && shape.rank() == 1;
    for (const Step& s : steps)
      for (const Expr& e : s.exprs)
        if (e.kind == Expr::Kind::Load && whole)
          whole = (e.access.strides[0] == 1 && e.access.batch_stride == numel) ||
                  (e.access.strides[0] == 0 && e.access.batch_stride == 0);
    if (whole) {
      for (Step& s : steps)
        for (Expr& e : s.exprs)
          if (e.kind == Expr::Kind::Load) e.access.batch_stride = 0;
      loop(b_.CreateMul(n_, i64(numel)), [&](Value* i) {
        for (const Step& s : steps) keep(s.out, eval(s, s.root, nullptr, {i}), after, i);
        local_.clear();
      });
      return;
    }
    batch_loop_or_none(batched, [&](Value* batch) {
      loops(shape.dims(), [&](const std::vector<Value*>& idx) {
        for (const Step& s : steps) {
          const Buffer& out = p_.buffers[static_cast<size_t>(s.out)];
          const Access out_access{s.out, out.batched ? numel : 0, row_major(shape)};
          keep(s.out, eval(s, s.root, batch, idx), after, offset(out_access, batch, idx));
        }
        local_.clear();
      });
    });
  }

  // A fused loop's result: available to the rest of the iteration, and stored
  // unless it is a temp no step after the group reads.
  void keep(int buf, Value* v, int after, Value* offset) {
    local_[buf] = v;
    const Buffer& b = p_.buffers[static_cast<size_t>(buf)];
    if (after < 0 || b.kind != BufKind::Temp || last_read_[static_cast<size_t>(buf)] >= after) store(v, buf, offset);
  }

  // --- GEMM steps ------------------------------------------------------------------

  Value* dim(const Dim& d) { return d.times_n ? b_.CreateMul(n_, i64(d.value)) : i64(d.value); }

  Value* at(const Matrix& x, Value* batch, Value* r, Value* c) {
    Value* off = b_.CreateAdd(b_.CreateMul(r, i64(x.row_stride)), b_.CreateMul(c, i64(x.col_stride)));
    if (batch && x.batch_stride) off = b_.CreateAdd(off, b_.CreateMul(batch, i64(x.batch_stride)));
    return off;
  }

  bool initializes_gemm(size_t i) const { return codegen::initializes_gemm(p_, i); }

  // The init step's loop (before a GEMM path that does not take it in),
  // computing `sum` too.
  void init_loops(const Step& s, const Step* init, const Step* sum) {
    if (!init) return;
    if (!sum) return elementwise({init});
    rows_with_sum({init}, sum, dim(s.m), nullptr, 0, fp(1),
                  [&](Value* r0, Value* r1, Value*, const RowSum& rs) { init_rows(*init, s, r0, r1, rs); });
  }

  // `init`: the step writing C's initial value (initializes_gemm): the plain
  // loops compute it row by row, just before the row's updates (C's row
  // then stays in cache); the function paths run its loop first. `sum`: a
  // sum over the same matrix that init's loop computes (sum_fuses_into_init).
  void gemm(const Step& s, const Step* init = nullptr, const Step* sum = nullptr) {
    Value* M = dim(s.m);
    Value* K = dim(s.kdim);
    Value* alpha = fp(s.alpha);
    if (s.alpha_over_n) alpha = b_.CreateFDiv(alpha, b_.CreateSIToFP(n_, t_));
    if (s.alpha_times_rate) {
      for (size_t i = 0; i < p_.buffers.size(); ++i)
        if (p_.buffers[i].kind == BufKind::Rate) alpha = b_.CreateFMul(alpha, load(static_cast<int>(i), i64(0)));
    }
    batch_loop_or_none(s.gemm_batched, [&](Value* batch) {
      if (s.scratch < 0) {
        plain_gemm(s, batch, M, K, alpha, init, sum);
        epilogue_loops(s, M);
        return;
      }
      gemm_call(s, batch, M, K, alpha, init, sum);
    });
  }

  // The least work (multiply-adds) worth splitting a product across
  // threads: the target's (target.h). A gradient kernel's is larger: there,
  // what another core computed in the forward pass (activations, the
  // weights it read) is read and written again by this one, and small
  // splits cost more than they save. Except on a weight of more than
  // split_weight_elems (it and its gradient overflow one core's L2): every
  // split on it takes the same rows on the same thread, so each core keeps
  // its rows in its own L2, and at a small batch the memory-bound work on
  // it is worth more than its multiply-adds count.
  int64_t min_split_work(int64_t weight_elems) const {
    return split_min_work(choice_, gradient_kernel_, weight_elems);
  }

  // Rows for at least two tasks (chunks of 32 rows, as gemm_task splits).
  static bool row_split_pays(int64_t rows) { return rows > kGemmMaxNR; }

  // A GEMM's plain loops: an unbatched product whose rows are many (a
  // weight's rank-k update at a small batch: W += a outer(delta, x)) runs
  // its rows on the threads (rows_on_threads).
  void plain_gemm(const Step& s, Value* batch, Value* M, Value* K, Value* alpha, const Step* init,
                  const Step* sum) {
    // On the threads only when even one sample's update is worth a split
    // (the wide model's 4096 x 4096 at batch 1), and has rows for two
    // tasks: each such product costs its own function to compile.
    const bool split = !batch && plain_splits(s);
    Value* work = split ? b_.CreateMul(b_.CreateMul(M, dim(s.n)), K) : nullptr;
    rows_with_sum({&s, init}, sum, M, work, min_split_work(gemm_weight_elems(s)), alpha,
                  [&](Value* r0, Value* r1, Value* a, const RowSum& rs) { gemm_loops(s, batch, r0, r1, a, init, rs); });
  }

  // Whether the plain loops of an unbatched C split its rows across the
  // threads: when even one sample's update is worth a split (the wide
  // model's 4096 x 4096 at batch 1), and it has rows for two tasks.
  bool plain_splits(const Step& s) const {
    return !s.m.times_n && row_split_pays(s.m.value) && s.m.value * s.n.value >= min_split_work(gemm_weight_elems(s));
  }

  // Both operands of a GEMM run along k: the plain loops are dot products.
  static bool dot_form(const Step& s) { return s.a.col_stride == 1 && s.b.row_stride == 1 && s.b.col_stride != 1; }

  // A sum computed in the loop initializing a GEMM's C (sum_fuses_into_init):
  // each row's sum adds into the partial of its block of kGemmMaxNR rows
  // (`partials`), and the partials add in block order: the same bits
  // however the rows split across threads. No step: no sum.
  struct RowSum {
    const Step* step = nullptr;
    Value* partials = nullptr;
  };

  // body(r0, r1, alpha, sum) over rows [0, M) of `steps` (null entries
  // skipped) and `sum`'s partials: on the threads (rows_on_threads) when
  // `work` is given, else one call. The sum's blocks are zeroed before the
  // rows run, and its total stored after.
  void rows_with_sum(const std::vector<const Step*>& steps, const Step* sum, Value* M, Value* work, int64_t min_work,
                     Value* alpha,
                     const std::function<void(Value*, Value*, Value*, const RowSum&)>& body) {
    std::vector<const Step*> used;
    for (const Step* st : steps)
      if (st) used.push_back(st);
    if (sum) used.push_back(sum);
    const int64_t blocks = sum ? (sum->shape[0] + kGemmMaxNR - 1) / kGemmMaxNR : 1;
    auto rows = [&](Value* r0, Value* r1, Value* a, Value* part) {
      const RowSum rs{sum, sum ? part : nullptr};
      if (sum) {
        // A task's rows are whole blocks; an empty task (r0 = r1) has none.
        Value* first = b_.CreateSDiv(r0, i64(kGemmMaxNR));
        Value* count = b_.CreateSelect(b_.CreateICmpSLT(r0, r1), b_.CreateSub(ceil_div(r1, kGemmMaxNR), first), i64(0));
        // A few blocks: a scalar loop (vectorized, its masked scatters were
        // 8 % of the MLP's kernel code).
        loop0(count, [&](Value* k) { b_.CreateStore(fp(0), partial_at(part, b_.CreateAdd(first, k))); }, true);
      }
      body(r0, r1, a, rs);
    };
    Value* partials = nullptr;
    if (work) {
      partials = rows_on_threads(used, M, work, min_work, alpha, blocks, rows);
    } else {
      partials = slot(llvm::ArrayType::get(t_, static_cast<uint64_t>(blocks * partial_stride())));
      rows(i64(0), M, alpha, partials);
    }
    if (sum) store(sum_blocks(partials, blocks), sum->out, i64(0));
  }

  // Block b's partial sum: one a cache line (partial_stride elements
  // apart), so threads adding into their own blocks' partials, once a row,
  // never write a line another thread writes (they did: the MNIST MLP's
  // gradient at batch 16 took 146-161 us on 2 threads, 107-129 on 1).
  int64_t partial_stride() const { return 64 / elem_bytes(); }
  Value* partial_at(Value* partials, Value* block) {
    return b_.CreateInBoundsGEP(t_, partials, b_.CreateMul(block, i64(partial_stride())));
  }

  // partials[0] + partials[1] + ... in order.
  Value* sum_blocks(Value* partials, int64_t blocks) {
    llvm::AllocaInst* total = slot(t_);
    b_.CreateStore(fp(0), total);
    loop(blocks, [&](Value* i) {
      Value* p = b_.CreateLoad(t_, partial_at(partials, i));
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(t_, total), p), total);
    }, true);
    return b_.CreateLoad(t_, total);
  }

  // body(r0, r1, alpha, partials) over rows [0, M) of `steps`: with a
  // runner and at least `min_work` of `work`, as tasks on its
  // threads, task t of T taking the rows gemm_task takes when it splits
  // rows (chunks a multiple of 32, at most kGemmMaxTasks), so a thread
  // touches the same rows of C here and in the GEMM function; else one
  // call. The body is emitted in an internal function of (arguments, t)
  // whose buffers, n, M and alpha come in a struct; it may write values of
  // its rows into the array `partials` of `slots` partials (partial_at),
  // which is returned.
  Value* rows_on_threads(const std::vector<const Step*>& steps, Value* M, Value* work, int64_t min_work, Value* alpha,
                         int64_t slots,
                         const std::function<void(Value*, Value*, Value*, Value*)>& body) {
    const std::vector<int> bufs = step_buffers(steps);
    std::vector<llvm::Type*> fields(bufs.size(), ptr_);
    for (llvm::Type* t : {static_cast<llvm::Type*>(i64_), static_cast<llvm::Type*>(i64_),
                          static_cast<llvm::Type*>(i64_), t_,
                          static_cast<llvm::Type*>(llvm::ArrayType::get(t_, static_cast<uint64_t>(slots * partial_stride())))})
      fields.push_back(t);  // n, M, tasks, alpha, the partials
    auto* st = llvm::StructType::get(c_, fields);
    const unsigned nf = static_cast<unsigned>(bufs.size());
    auto* fn = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(c_), {ptr_, i64_}, false),
                                      llvm::Function::InternalLinkage, f_->getName() + ".rows", m_);
    set_attributes(fn);
    fn->addFnAttr(llvm::Attribute::NoInline);
    // Sized for code, not speed: its loops stream rows of a weight from
    // memory, so LLVM's speed-only transforms (unrolling, the loops
    // unswitched on k > 1) add code without time. The MNIST MLP's gradient
    // rows at batch 1 compile to 123 instructions instead of 256, and the
    // kernels run as fast (alternating runs in bench/RESULTS.md, "A third
    // session").
    fn->addFnAttr(llvm::Attribute::OptimizeForSize);
    {
      FunctionState saved = enter(fn);
      Value* arg = fn->getArg(0);
      auto field = [&](unsigned i) { return b_.CreateLoad(st->getElementType(i), b_.CreateStructGEP(st, arg, i)); };
      bind(saved, bufs, [&](size_t i) { return field(static_cast<unsigned>(i)); }, "nabla.rows");
      n_ = field(nf);
      par_ = llvm::ConstantPointerNull::get(ptr_);
      Value *rows = field(nf + 1), *tasks = field(nf + 2), *a = field(nf + 3);
      Value* chunk = task_chunk(rows, tasks);
      Value* r0 = min(b_.CreateMul(fn->getArg(1), chunk), rows);
      body(r0, min(b_.CreateAdd(r0, chunk), rows), a, b_.CreateStructGEP(st, arg, nf + 4));
      leave(std::move(saved));
    }
    llvm::AllocaInst* args = slot(st);
    for (unsigned i = 0; i < nf; ++i) b_.CreateStore(base_[static_cast<size_t>(bufs[i])], b_.CreateStructGEP(st, args, i));
    b_.CreateStore(n_, b_.CreateStructGEP(st, args, nf));
    b_.CreateStore(M, b_.CreateStructGEP(st, args, nf + 1));
    b_.CreateStore(alpha, b_.CreateStructGEP(st, args, nf + 3));
    Value* tasks_at = b_.CreateStructGEP(st, args, nf + 2);
    branch(b_.CreateAnd(b_.CreateIsNotNull(par_), b_.CreateICmpSGE(work, i64(min_work))), [&] {
      Value* tasks = runner_tasks(par_);
      b_.CreateStore(tasks, tasks_at);
      run_tasks(par_, tasks, fn, args);
    }, [&] {
      b_.CreateStore(i64(1), tasks_at);
      b_.CreateCall(fn, {args, i64(0)});
    });
    return b_.CreateStructGEP(st, args, nf + 4);
  }

  // A sum over a whole unbatched matrix of many rows (a weight's squared
  // Frobenius norm in the loss, where no init of the weight's gradient
  // takes it in: sums-into-inits): its rows on the threads as a GEMM on
  // the same matrix splits them (rows_on_threads), so no thread reads rows
  // another one keeps (read on one thread, the MNIST MLP's step on two
  // threads was slower than on one: 225 against 183 us); each row's terms
  // add into its block's partial (RowSum), as in an init's loop. Else the
  // plain reduction.
  void reduce_step(const Step& s) {
    const bool all = std::all_of(s.reduced.begin(), s.reduced.end(), [](bool r) { return r; });
    if (s.batched || !all || s.op != Op::Sum || s.shape.rank() != 2 || !row_split_pays(s.shape[0]) ||
        !row_sum_fits(s.shape[0]) || s.shape.numel() < (1 << 16))
      return reduce(s);
    // Split when the products on a matrix of this size split (x W^T and
    // the weight's gradient or update: n * its elements of work), so the
    // rows stay where those keep them; at batch 1 they do not.
    rows_with_sum({}, &s, i64(s.shape[0]), b_.CreateMul(n_, i64(s.shape.numel())), min_split_work(s.shape.numel()),
                  fp(1),
                  [&](Value* r0, Value* r1, Value*, const RowSum& rs) {
                    loop0(b_.CreateSub(r1, r0), [&](Value* t) {
                      row_sum(rs, b_.CreateAdd(r0, t), i64(s.shape[1]), [](Value*) {});
                    });
                  });
  }

  // A GEMM with packing space: the support module's function (blocked, or dot
  // products), or the plain loops when the rows or k are few (at run time).
  void gemm_call(const Step& s, Value* batch, Value* M, Value* K, Value* alpha, const Step* init, const Step* sum) {
    auto base = [&](const Matrix& x) {
      Value* off = batch && x.batch_stride ? b_.CreateMul(batch, i64(x.batch_stride)) : i64(0);
      return b_.CreateInBoundsGEP(t_, base_[static_cast<size_t>(x.buf)], off);
    };
    // The paths and their thresholds are the target's (target.h, gemm_path).
    // Both operands run along k (x W^T): below dot_blocked_min_rows rows,
    // dot-product tiles on the operands as they are beat packing W on every
    // call (from dot_min_k: a tile's closing sums across lanes must amortize).
    const bool along_k =
        dot_tiles(choice_, s.a.col_stride == 1 && s.b.row_stride == 1 && !s.kdim.times_n, s.kdim.value);
    auto* blocked = llvm::BasicBlock::Create(c_, "gemm.blocked", f_);
    auto* plain = llvm::BasicBlock::Create(c_, "gemm.plain", f_);
    auto* join = llvm::BasicBlock::Create(c_, "gemm.end", f_);
    // A product over few k (a weight gradient at a batch of a few samples)
    // is a memory-bound rank-k update: plain loops, no packing.
    const int64_t min_rows = along_k ? choice_.dot_blocked_min_rows : choice_.blocked_min_rows;
    b_.CreateCondBr(b_.CreateAnd(b_.CreateICmpSGE(M, i64(min_rows)), b_.CreateICmpSGE(K, i64(choice_.blocked_min_k))),
                    blocked, plain);
    Value* null = llvm::ConstantPointerNull::get(ptr_);
    // The call's arguments (gemm_run_function), for one call or for the tasks.
    auto run = [&](int64_t kind) {
      std::vector<Value*> a = {i64(kind), base(s.a), i64(s.a.row_stride), i64(s.a.col_stride), base(s.b),
                               i64(s.b.row_stride), i64(s.b.col_stride), base(s.c), i64(s.c.row_stride),
                               i64(s.c.col_stride), M, i64(s.n.value), K, alpha, b_.getInt1(s.accumulate),
                               s.scratch >= 0 ? base_[static_cast<size_t>(s.scratch)] : null,
                               s.bias >= 0 ? base_[static_cast<size_t>(s.bias)] : null, b_.getInt1(s.relu),
                               s.mask >= 0 ? base_[static_cast<size_t>(s.mask)] : null,
                               b_.getInt1(gemm_splits_rows(s))};
      a.push_back(par_);
      a.push_back(i64(min_split_work(gemm_weight_elems(s))));
      b_.CreateCall(gemm_run_function(m_, dtype_, target_), a);
    };
    if (along_k) {
      b_.SetInsertPoint(plain);
      init_loops(s, init, sum);
      run(1);
      epilogue_loops(s, M);
      b_.CreateBr(join);
      plain = nullptr;
    }
    b_.SetInsertPoint(blocked);
    if (init && !batch && gemm_splits_rows(s) && row_split_pays(s.m.value)) {
      // C's initial value on the threads that then update the same rows.
      Value* work = b_.CreateMul(b_.CreateMul(M, dim(s.n)), K);
      rows_with_sum({&s, init}, sum, M, work, min_split_work(gemm_weight_elems(s)), alpha,
                    [&](Value* r0, Value* r1, Value*, const RowSum& rs) { init_rows(*init, s, r0, r1, rs); });
    } else {
      init_loops(s, init, sum);
    }
    run(0);
    b_.CreateBr(join);
    if (plain) {
      b_.SetInsertPoint(plain);
      // A product written whole (no initial value, no accumulation: the
      // backward pass's delta W), rows contiguous: the support object's
      // row loops, the kernel's own code being a call.
      if (!init && !s.accumulate && !batch && !dot_form(s) && s.b.col_stride == 1 && s.c.col_stride == 1 &&
          !plain_splits(s)) {
        b_.CreateCall(gemm_rows_function(m_, dtype_, target_),
                      {base(s.a), i64(s.a.row_stride), i64(s.a.col_stride), base(s.b), i64(s.b.row_stride), base(s.c),
                       i64(s.c.row_stride), M, i64(s.n.value), K, alpha});
      } else {
        plain_gemm(s, batch, M, K, alpha, init, sum);
      }
      epilogue_loops(s, M);
      b_.CreateBr(join);
    }
    b_.SetInsertPoint(join);
  }

  // The epilogue of a GEMM taking a path without one (fuse_gemm_epilogues
  // only gives one to unbatched products with C row-major): C = relu?(C + bias).
  void epilogue_loops(const Step& s, Value* M) {
    if (s.bias < 0 && !s.relu && s.mask < 0) return;
    loop0(M, [&](Value* i) {
      loop(s.n.value, [&](Value* j) {
        Value* c_at = b_.CreateAdd(b_.CreateMul(i, i64(s.c.row_stride)), j);
        Value* v = load(s.c.buf, c_at);
        if (s.bias >= 0) v = b_.CreateFAdd(v, load(s.bias, j));
        if (s.relu) v = maximum(v, fp(0));
        if (s.mask >= 0) v = mask_value(v, load(s.mask, c_at));
        store(v, s.c.buf, c_at);
      });
    });
  }

  // Rows [r0, r1) of C's initial value (the step `init` writes C unbatched).
  void init_rows(const Step& init, const Step& s, Value* r0, Value* r1, const RowSum& sum) {
    loop0(b_.CreateSub(r1, r0), [&](Value* t) { init_row(init, s, b_.CreateAdd(r0, t), sum); });
  }

  // Row i of C's initial value; the sum's terms of the row (read before
  // the row is stored: init may write the matrix the sum reads) add into
  // its block's partial. `then(j, v)`: what to store instead of the
  // initial value v at column j (the update of a single sample).
  using Then = std::function<Value*(Value*, Value*)>;
  void init_row(const Step& init, const Step& s, Value* i, const RowSum& sum, const Then& then = nullptr) {
    row_sum(sum, i, dim(s.n), [&](Value* j) {
      Value* v = eval(init, init.root, nullptr, {i, j});
      store(then ? then(j, v) : v, s.c.buf, at(s.c, nullptr, i, j));
      local_.clear();
    });
  }

  // A loop over the `cols` columns of row i calling each(j); with a sum,
  // its term at (i, j) first (read before each(j) may store over what it
  // reads), the row's terms then added into the row's block's partial.
  void row_sum(const RowSum& sum, Value* i, Value* cols, const std::function<void(Value*)>& each) {
    llvm::AllocaInst* acc = sum.step ? slot(t_) : nullptr;
    if (acc) b_.CreateStore(fp(0), acc);
    loop(cols, [&](Value* j) {
      if (acc) {
        Value* term = eval(*sum.step, sum.step->root, nullptr, {i, j});
        local_.clear();
        b_.CreateStore(combine(Op::Sum, b_.CreateLoad(t_, acc), term), acc);
      }
      each(j);
    });
    if (!acc) return;
    Value* part = partial_at(sum.partials, b_.CreateSDiv(i, i64(kGemmMaxNR)));
    b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(t_, part), b_.CreateLoad(t_, acc)), part);
  }

  // Rows [r0, r1) of C (+)= alpha A B as plain loops: dot products when
  // both operands run along k, else rows of C updated by a * (row of B).
  void gemm_loops(const Step& s, Value* batch, Value* r0, Value* r1, Value* alpha, const Step* init,
                  const RowSum& sum) {
    const Matrix &A = s.a, &B = s.b, &C = s.c;
    Value* N = dim(s.n);
    Value* K = dim(s.kdim);
    const bool dot = dot_form(s);
    NABLA_ASSERT(s.kdim.value >= 1, "a GEMM over no k");
    llvm::AllocaInst* acc = slot(t_);
    // C += alpha A B on C's own values (an SGD step's update of a weight
    // with no decay): a row of A that is all zeros (a ReLU unit inactive on
    // every sample of the batch has a delta of exactly 0) adds only zeros
    // to its row of C when alpha and B are finite, so that row is neither
    // read nor written. The values are those of the full update (a -0 in
    // C keeps its sign where adding +0 would make it +0); the wide model's
    // step at batch 1 touches about half of W1's rows.
    Value* skip_zero_rows = !dot && !init && s.accumulate ? finite_operands(B, batch, K, N, alpha) : nullptr;
    loop0(b_.CreateSub(r1, r0), [&](Value* row) {
      Value* i = b_.CreateAdd(r0, row);
      if (skip_zero_rows) {
        branch(b_.CreateAnd(skip_zero_rows, zero_row(A, batch, i, K)), [] {}, [&] { update_row(s, batch, i, K, alpha, init, sum); });
        return;
      }
      if (dot) {
        if (init) init_row(*init, s, i, sum);  // row i of C's initial value (unbatched: batch is null)
        loop(N, [&](Value* j) {
          b_.CreateStore(fp(0), acc);
          loop(K, [&](Value* k) {
            Value* prod = contract(b_.CreateFMul(load(A.buf, at(A, batch, i, k)), load(B.buf, at(B, batch, k, j))));
            Value* total = combine(Op::Sum, b_.CreateLoad(t_, acc), prod);
            contract(total)->setHasAllowReassoc(true);
            b_.CreateStore(total, acc);
          });
          Value* c_at = at(C, batch, i, j);
          Value* r = b_.CreateFMul(alpha, b_.CreateLoad(t_, acc));
          store(s.accumulate ? b_.CreateFAdd(load(C.buf, c_at), r) : r, C.buf, c_at);
        });
        return;
      }
      update_row(s, batch, i, K, alpha, init, sum);
    });
  }

  // True when alpha and every element of X's rows x cols are finite.
  Value* finite_operands(const Matrix& X, Value* batch, Value* rows, Value* cols, Value* alpha) {
    auto finite = [&](Value* v) {
      return b_.CreateFCmpOLT(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, v), fp(INFINITY));
    };
    llvm::AllocaInst* ok = slot(b_.getInt1Ty());
    b_.CreateStore(finite(alpha), ok);
    loop(rows, [&](Value* r) {
      loop(cols, [&](Value* c) {
        Value* fin = finite(load(X.buf, at(X, batch, r, c)));
        b_.CreateStore(b_.CreateAnd(b_.CreateLoad(b_.getInt1Ty(), ok), fin), ok);
      });
    });
    return b_.CreateLoad(b_.getInt1Ty(), ok);
  }

  // True when row i of X (its `cols` elements) is all zeros (+0 or -0).
  Value* zero_row(const Matrix& X, Value* batch, Value* i, Value* cols) {
    llvm::AllocaInst* zero = slot(b_.getInt1Ty());
    b_.CreateStore(b_.getTrue(), zero);
    loop(cols, [&](Value* k) {
      Value* z = b_.CreateFCmpOEQ(load(X.buf, at(X, batch, i, k)), fp(0));
      b_.CreateStore(b_.CreateAnd(b_.CreateLoad(b_.getInt1Ty(), zero), z), zero);
    }, true);
    return b_.CreateLoad(b_.getInt1Ty(), zero);
  }

  // Row i of C in plain rank-k loops (not dot products): its initial
  // value (init's, zero, or C's own) plus the first k's product, stored
  // once; then the other k's products added to it. At k = 1 (a weight's
  // gradient or update at batch 1) that is one pass over the row, not two
  // (init's or zeros' store, then a load and a store): the same bits, each
  // product added to the same value. Gradient kernel of the MLP
  // 784-256-256-10 at batch 1: 44 -> 36 us; its SGD step 35 -> 29 us.
  void update_row(const Step& s, Value* batch, Value* i, Value* K, Value* alpha, const Step* init,
                  const RowSum& sum) {
    const Matrix &A = s.a, &B = s.b, &C = s.c;
    Value* N = dim(s.n);
    auto coef = [&](Value* k) { return b_.CreateFMul(alpha, load(A.buf, at(A, batch, i, k))); };
    auto b = [&](Value* k, Value* j) { return load(B.buf, at(B, batch, k, j)); };
    Value* a0 = coef(i64(0));
    auto plus_first = [&](Value* j, Value* v) { return plus_product(v, a0, b(i64(0), j)); };
    if (init) {
      init_row(*init, s, i, sum, plus_first);
    } else {
      loop(N, [&](Value* j) {
        Value* c_at = at(C, batch, i, j);
        store(plus_first(j, s.accumulate ? load(C.buf, c_at) : fp(0)), C.buf, c_at);
      });
    }
    add_later_products(K, N, coef, b, C.buf, [&](Value* j) { return at(C, batch, i, j); });
  }

  Value* par_ = nullptr;  // the kernel's parallel runner (null: one thread)
  bool gradient_kernel_ = false, sgd_kernel_ = false;
  std::vector<size_t> region_;  // per buffer: its memory region (temps sharing memory share one)
  std::vector<int> last_read_;  // per buffer: the last step reading it (-1: none)
  std::map<std::string, llvm::Function*> shared_units_;  // by unit_signature (outline)
};

}  // namespace

void emit_kernel(llvm::Module& module, const Program& program, const EmitTarget& target, const std::string& name,
                 bool gradient, bool sgd, KernelPiece piece) {
  KernelEmitter(module, program, target).emit_kernel(name, gradient, sgd, piece);
}

void emit_workspace_function(llvm::Module& module, const Program& program, const EmitTarget& target,
                             const std::string& name) {
  KernelEmitter(module, program, target).emit_workspace_function(name);
}

}  // namespace nabla::codegen
