// The kernel program's canonical text, and build_program: the passes that
// make a program from a KernelSpec, run in order from one list.
#include "codegen/program.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "codegen/batching.h"
#include "codegen/fuse_epilogues.h"
#include "codegen/plan_buffers.h"

namespace nabla::codegen {
namespace {

const char* kind_name(BufKind k) {
  switch (k) {
    case BufKind::Input: return "input";
    case BufKind::Label: return "label";
    case BufKind::Param: return "param";
    case BufKind::Output: return "output";
    case BufKind::Loss: return "loss";
    case BufKind::Grad: return "grad";
    case BufKind::Temp: return "temp";
    case BufKind::Rate: return "rate";
  }
  return "?";
}

std::string access_str(const Access& a) {
  std::string s = "%" + std::to_string(a.buf) + "<" + std::to_string(a.batch_stride);
  for (int64_t st : a.strides) s += "," + std::to_string(st);
  return s + ">";
}

// Every digit a double needs (the text is the cache key's).
std::string number_str(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string expr_str(const Step& s, int e) {
  const Expr& x = s.exprs[static_cast<size_t>(e)];
  switch (x.kind) {
    case Expr::Kind::Const: return number_str(x.value);
    case Expr::Kind::Load: return access_str(x.access);
    case Expr::Kind::Apply: {
      std::string r = std::string(ir::op_name(x.op)) + "(";
      for (size_t i = 0; i < x.args.size(); ++i) r += (i ? ", " : "") + expr_str(s, x.args[i]);
      return r + ")";
    }
  }
  return "?";
}

std::string matrix_str(const Matrix& m) {
  return "%" + std::to_string(m.buf) + "<" + std::to_string(m.batch_stride) + "," +
         std::to_string(m.row_stride) + "," + std::to_string(m.col_stride) + ">";
}

std::string dim_str(const Dim& d) { return std::to_string(d.value) + (d.times_n ? "n" : ""); }

}  // namespace

std::vector<int64_t> row_major(const Shape& s) {
  std::vector<int64_t> strides(static_cast<size_t>(s.rank()));
  int64_t step = 1;
  for (int d = s.rank() - 1; d >= 0; --d) {
    strides[static_cast<size_t>(d)] = step;
    step *= s[d];
  }
  return strides;
}

std::string step_str(const Step& s) {
  std::ostringstream out;
  out << "%" << s.out << " <- ";
  switch (s.kind) {
    case StepKind::Elementwise:
      out << "map" << (s.batched ? "[n]" : "") << s.shape.str() << " " << expr_str(s, s.root);
      break;
    case StepKind::Reduce: {
      out << "reduce " << ir::op_name(s.op) << (s.batched ? " [n]" : " ") << s.shape.str() << " axes";
      for (size_t d = 0; d < s.reduced.size(); ++d)
        if (s.reduced[d]) out << " " << d;
      out << " " << expr_str(s, s.root);
      break;
    }
    case StepKind::BatchMean:
      out << "batch_mean " << s.shape.str() << " " << expr_str(s, s.root);
      break;
    case StepKind::Softmax:
    case StepKind::Special:
      out << ir::op_name(s.op) << (s.batched ? " [n]" : " ") << s.shape.str() << " axis " << s.axis
          << " k " << s.k << " " << access_str(s.in);
      break;
    case StepKind::Gemm:
      out << "gemm" << (s.gemm_batched ? "[n]" : "") << " m " << dim_str(s.m) << " n "
          << dim_str(s.n) << " k " << dim_str(s.kdim) << " " << matrix_str(s.a) << " "
          << matrix_str(s.b) << " " << matrix_str(s.c) << " alpha " << number_str(s.alpha)
          << (s.alpha_over_n ? "/n" : "") << (s.alpha_times_rate ? " rate" : "")
          << (s.accumulate ? " accumulate" : "")
          << (s.scratch >= 0 ? " blocked %" + std::to_string(s.scratch) : "")
          << (s.bias >= 0 ? " bias %" + std::to_string(s.bias) : "") << (s.relu ? " relu" : "")
          << (s.mask >= 0 ? " mask %" + std::to_string(s.mask) : "");
      break;
  }
  return out.str();
}

std::string Program::str() const {
  std::ostringstream out;
  out << "dtype " << ir::dtype_name(dtype) << " workspace " << workspace_fixed << " + "
      << workspace_batched << "n\n";
  for (size_t i = 0; i < buffers.size(); ++i) {
    const Buffer& b = buffers[i];
    out << "%" << i << " = " << kind_name(b.kind) << " " << b.index << " " << b.name << " "
        << (b.batched ? "[n]" : "") << b.shape.str();
    if (b.kind == BufKind::Temp) out << " @" << b.offset;
    out << "\n";
  }
  for (const Step& s : steps) out << step_str(s) << "\n";
  return out.str();
}

bool initializes_gemm(const Program& p, size_t i) {
  if (i + 1 >= p.steps.size()) return false;
  const Step &init = p.steps[i], &g = p.steps[i + 1];
  if (init.kind != StepKind::Elementwise || init.batched || g.kind != StepKind::Gemm || !g.accumulate ||
      g.gemm_batched || g.c.buf != init.out || g.m.times_n || g.n.times_n || g.c.col_stride != 1 ||
      g.c.row_stride != g.n.value || init.shape != Shape{g.m.value, g.n.value} || g.a.buf == init.out ||
      g.b.buf == init.out)
    return false;
  const std::vector<int64_t> rm = row_major(init.shape);
  for (const Expr& e : init.exprs)
    if (e.kind == Expr::Kind::Load && e.access.buf == init.out && e.access.strides != rm) return false;
  return true;
}

bool sum_fuses_into_init(const Program& p, size_t i) {
  if (!initializes_gemm(p, i + 1)) return false;
  const Step &sum = p.steps[i], &init = p.steps[i + 1], &g = p.steps[i + 2];
  if (sum.kind != StepKind::Reduce || sum.op != ir::Op::Sum || sum.batched || sum.shape != init.shape ||
      !row_sum_fits(sum.shape[0]) || std::find(sum.reduced.begin(), sum.reduced.end(), false) != sum.reduced.end())
    return false;
  const std::vector<int64_t> rm = row_major(sum.shape);
  for (const Expr& e : sum.exprs) {
    if (e.kind != Expr::Kind::Load) continue;
    const bool scalar = std::all_of(e.access.strides.begin(), e.access.strides.end(), [](int64_t s) { return s == 0; });
    const Buffer& b = p.buffers[static_cast<size_t>(e.access.buf)];
    if (b.batched || e.access.batch_stride != 0 || e.access.buf == sum.out) return false;
    if (!(e.access.strides == rm && b.shape == sum.shape) && !(scalar && e.access.buf != init.out)) return false;
  }
  bool reads_sum = false;
  for (const Step* s : {&init, &g}) for_each_read(*s, [&](int buf) { reads_sum = reads_sum || buf == sum.out; });
  return !reads_sum && sum.out != init.out;
}

namespace {

// SgdStep: true when no step reads a param after the step that first writes
// it, other than the GEMM of its own fused update (which accumulates onto it).
bool updates_are_safe(const Program& p) {
  // One pass over the steps (a pass per param took time quadratic in the
  // model: 4,000 params, 0.3 s of 0.8 to lower).
  const size_t nb = p.buffers.size();
  std::vector<bool> written(nb, false);
  std::vector<int> reads(nb, 0);  // by the current step
  std::vector<int> touched;
  auto param = [&](int buf) { return buf >= 0 && p.buffers[static_cast<size_t>(buf)].kind == BufKind::Param; };
  for (const Step& s : p.steps) {
    touched.clear();
    auto count = [&](int buf, int by) {
      if (!param(buf)) return;
      if (reads[static_cast<size_t>(buf)] == 0) touched.push_back(buf);
      reads[static_cast<size_t>(buf)] += by;
    };
    for_each_read(s, [&](int buf) { count(buf, 1); });
    if (s.accumulate) count(s.c.buf, -1);  // the fused update's GEMM, adding onto p
    bool safe = true;
    for (int buf : touched) {
      safe = safe && !(written[static_cast<size_t>(buf)] && reads[static_cast<size_t>(buf)] > 0);
      reads[static_cast<size_t>(buf)] = 0;
    }
    if (!safe) return false;
    if (param(s.out)) {
      if (written[static_cast<size_t>(s.out)] && s.kind != StepKind::Gemm) return false;
      written[static_cast<size_t>(s.out)] = true;
    }
  }
  return true;
}

// --- the passes -----------------------------------------------------------------

// What build_program was asked for: the first pass builds the program from it.
struct Request {
  const KernelSpec& spec;
  KernelKind kind;
  bool in_place;  // SgdStep: updates fused into GEMMs
};

struct Pass {
  const char* name;
  void (*run)(Program& p, const Request& r);
};

// build_program's passes, in order (`nabla compile --emit program
// --after-each-pass` prints the program after each): batching builds the steps, the GEMM epilogue passes
// rewrite them, buffer planning places the temps.
const Pass kPasses[] = {
    {"batching", [](Program& p, const Request& r) { p = batch_program(r.spec, r.kind, p.dtype, r.in_place); }},
    {"relu-grad-from-output", [](Program& p, const Request&) { relu_grad_from_output(p); }},
    {"inline-temps", [](Program& p, const Request&) { inline_temps(p); }},
    {"gemm-epilogues", [](Program& p, const Request&) { fuse_gemm_epilogues(p); }},
    {"sums-into-inits", [](Program& p, const Request&) { sums_into_inits(p); }},
    {"plan-buffers", [](Program& p, const Request&) { plan_buffers(p); }},
};

Program run_passes(const Request& r, ir::DType dtype, PassTrace* trace) {
  Program p;
  p.dtype = dtype;
  if (trace) trace->clear();
  for (const Pass& pass : kPasses) {
    pass.run(p, r);
    if (trace) trace->emplace_back(pass.name, p.str());
  }
  return p;
}

}  // namespace

Program build_program(const KernelSpec& spec, KernelKind kind, ir::DType dtype, PassTrace* trace) {
  Program p = run_passes({spec, kind, true}, dtype, trace);
  // A param read after its fused update has written it: every update moves to the end.
  if (kind == KernelKind::SgdStep && !updates_are_safe(p)) return run_passes({spec, kind, false}, dtype, trace);
  return p;
}

}  // namespace nabla::codegen
