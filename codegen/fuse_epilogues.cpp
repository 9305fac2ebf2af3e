// GEMM epilogues: relu' read from relu's output, single-reader temps computed
// inside their reader, and bias, relu and mask moved into the GEMM; sums
// moved into the loop initializing a GEMM's C.
#include "codegen/fuse_epilogues.h"

#include <algorithm>
#include <iterator>

namespace nabla::codegen {
namespace {

using ir::Op;

// The steps reading buffer `buf` (each once per read: for_each_read).
std::vector<size_t> readers(const Program& p, int buf) {
  std::vector<size_t> r;
  for (size_t i = 0; i < p.steps.size(); ++i)
    for_each_read(p.steps[i], [&](int b) {
      if (b == buf) r.push_back(i);
    });
  return r;
}

size_t writers(const Program& p, int buf) {
  size_t w = 0;
  for (const Step& s : p.steps) w += s.out == buf;
  return w;
}

bool is_temp(const Program& p, int buf) {
  return buf >= 0 && p.buffers[static_cast<size_t>(buf)].kind == BufKind::Temp;
}

// `a` reads, over `s`'s index space, each element of its buffer at that
// same index (the buffer laid out row-major over the space).
bool identity_access(const Program& p, const Step& s, const Access& a) {
  const Buffer& b = p.buffers[static_cast<size_t>(a.buf)];
  return b.shape == s.shape && b.batched == s.batched && a.strides == row_major(s.shape) &&
         a.batch_stride == (b.batched ? s.shape.numel() : 0);
}

const Expr& expr(const Step& s, int e) { return s.exprs[static_cast<size_t>(e)]; }

// relu?(G + b) or relu(G), b an unbatched vector along the step's axis.
bool bias_relu_pattern(const Program& p, const Step& s, int* g, int* bias, bool* relu) {
  int e = s.root;
  *relu = expr(s, e).kind == Expr::Kind::Apply && expr(s, e).op == Op::Relu;
  if (*relu) e = expr(s, e).args[0];
  *g = e;
  if (expr(s, e).kind == Expr::Kind::Apply && expr(s, e).op == Op::Add) {
    const Expr &x = expr(s, expr(s, e).args[0]), &y = expr(s, expr(s, e).args[1]);
    auto is_bias = [&](const Expr& v) {
      return v.kind == Expr::Kind::Load && v.access.batch_stride == 0 && v.access.strides == std::vector<int64_t>{1} &&
             !p.buffers[static_cast<size_t>(v.access.buf)].batched;
    };
    if (is_bias(y)) *g = expr(s, e).args[0], *bias = y.access.buf;
    else if (is_bias(x)) *g = expr(s, e).args[1], *bias = x.access.buf;
    else return false;
    return true;
  }
  return *relu;
}

// Mul(Gt(X, 0), G) either way round, X read at the step's own index (the
// backward pass's relu': delta = (h > 0) * (delta' W)).
bool mask_pattern(const Program& p, const Step& s, int* g, int* mask) {
  const Expr& root = expr(s, s.root);
  if (root.kind != Expr::Kind::Apply || root.op != Op::Mul) return false;
  for (int side = 0; side < 2; ++side) {
    const Expr& gt = expr(s, root.args[static_cast<size_t>(side)]);
    if (gt.kind != Expr::Kind::Apply || gt.op != Op::Gt) continue;
    const Expr &x = expr(s, gt.args[0]), &zero = expr(s, gt.args[1]);
    if (x.kind != Expr::Kind::Load || !identity_access(p, s, x.access) || zero.kind != Expr::Kind::Const ||
        zero.value != 0)
      continue;
    *g = root.args[static_cast<size_t>(1 - side)];
    *mask = x.access.buf;
    return true;
  }
  return false;
}

// The GEMM step before step `r` that writes `gbuf` as an unbatched product
// over the batch's rows, C row-major with the step's columns, whose result
// an epilogue can finish; steps.size() when there is none.
size_t epilogue_gemm(const Program& p, size_t r, int gbuf) {
  const auto& steps = p.steps;
  const Step& s = steps[r];
  size_t gi = 0;
  while (gi < r && steps[gi].out != gbuf) ++gi;
  const Step& gemm = steps[gi];
  if (gi == r || gemm.kind != StepKind::Gemm || gemm.gemm_batched || gemm.accumulate || gemm.c.col_stride != 1 ||
      !gemm.m.times_n || gemm.m.value != 1 || gemm.n.times_n || gemm.n.value != s.shape[0] ||
      gemm.c.row_stride != s.shape[0] || gemm.c.buf != gbuf)
    return steps.size();
  return gi;
}

// Whether step `s` writes buffer `buf` (a GEMM writes its C).
bool writes(const Step& s, int buf) { return buf >= 0 && (s.out == buf || (s.kind == StepKind::Gemm && s.c.buf == buf)); }

bool reads(const Step& s, int buf) {
  bool r = false;
  for_each_read(s, [&](int b) { r = r || b == buf; });
  return r;
}

// Whether step `a` may run after step `b` that now follows it (or before
// `b` that now precedes it): neither writes what the other reads or writes.
bool commute(const Step& a, const Step& b) {
  bool ok = true;
  auto check = [&](const Step& x, const Step& y) {
    for_each_read(x, [&](int buf) { ok = ok && !writes(y, buf); });
    for (int w : {x.out, x.kind == StepKind::Gemm ? x.c.buf : -1}) ok = ok && (w < 0 || !writes(y, w));
  };
  check(a, b);
  check(b, a);
  return ok;
}

// The order that puts sum step r just before init step q (initializes_gemm)
// and the steps between that use its value (directly or through each
// other) just after q's GEMM, keeping every other step's place; empty when
// a moved step does not commute with a step it moves past.
std::vector<size_t> sum_into_init_order(const Program& p, size_t r, size_t q) {
  const auto& steps = p.steps;
  std::vector<size_t> dependent, stay;
  std::vector<int> values{steps[r].out};
  for (size_t j = r + 1; j < q; ++j) {
    bool uses = false;
    for (int v : values) uses = uses || reads(steps[j], v);
    if (uses) {
      dependent.push_back(j);
      values.push_back(steps[j].out);
    } else {
      stay.push_back(j);
    }
  }
  // The sum moves past the steps that stay; the dependents past those
  // after them, the init and the GEMM.
  for (size_t j : stay)
    if (!commute(steps[r], steps[j])) return {};
  for (size_t d : dependent) {
    for (size_t j = d + 1; j <= q + 1; ++j)
      if (std::find(dependent.begin(), dependent.end(), j) == dependent.end() && !commute(steps[d], steps[j])) return {};
  }
  std::vector<size_t> order;
  for (size_t j = 0; j < r; ++j) order.push_back(j);
  order.insert(order.end(), stay.begin(), stay.end());
  for (size_t j : {r, q, q + 1}) order.push_back(j);
  order.insert(order.end(), dependent.begin(), dependent.end());
  for (size_t j = q + 2; j < steps.size(); ++j) order.push_back(j);
  return order;
}

}  // namespace

void sums_into_inits(Program& p) {
  for (size_t r = 0; r < p.steps.size(); ++r) {
    if (p.steps[r].kind != StepKind::Reduce || sum_fuses_into_init(p, r)) continue;
    for (size_t q = r + 1; q + 1 < p.steps.size(); ++q) {
      // Only into an init reading what the sum reads (W's own decay): a
      // pass saved, not one moved.
      bool shared = false;
      for_each_read(p.steps[r], [&](int buf) { shared = shared || reads(p.steps[q], buf); });
      if (!shared || !initializes_gemm(p, q)) continue;
      std::vector<size_t> order = sum_into_init_order(p, r, q);
      if (order.empty()) continue;
      Program moved = p;
      for (size_t j = 0; j < order.size(); ++j) moved.steps[j] = p.steps[order[j]];
      const size_t at = static_cast<size_t>(std::find(order.begin(), order.end(), r) - order.begin());
      if (!sum_fuses_into_init(moved, at)) continue;
      p = std::move(moved);
      --r;  // the step now at r is one that stayed
      break;
    }
  }
}

void relu_grad_from_output(Program& p) {
  auto& steps = p.steps;
  for (size_t r = 0; r < steps.size(); ++r) {
    const Step& s = steps[r];
    if (s.kind != StepKind::Elementwise) continue;
    const Expr& root = expr(s, s.root);
    if (root.kind != Expr::Kind::Apply || root.op != Op::Relu) continue;
    const Expr& z = expr(s, root.args[0]);
    if (z.kind != Expr::Kind::Load || !identity_access(p, s, z.access) || !is_temp(p, z.access.buf)) continue;
    const Buffer& out = p.buffers[static_cast<size_t>(s.out)];
    if (out.shape != s.shape || out.batched != s.batched || writers(p, s.out) != 1) continue;
    const int zbuf = z.access.buf, rbuf = s.out;
    for (size_t j = r + 1; j < steps.size(); ++j)
      for (Expr& e : steps[j].exprs) {
        if (e.kind != Expr::Kind::Apply || e.op != Op::Gt) continue;
        Expr& lhs = steps[j].exprs[static_cast<size_t>(e.args[0])];
        const Expr& rhs = steps[j].exprs[static_cast<size_t>(e.args[1])];
        if (lhs.kind == Expr::Kind::Load && lhs.access.buf == zbuf && rhs.kind == Expr::Kind::Const && rhs.value == 0)
          lhs.access.buf = rbuf;
      }
  }
}

void inline_temps(Program& p) {
  auto& steps = p.steps;
  const size_t nsteps = steps.size();
  // Who writes and reads each buffer, counted once and kept up to date as
  // temps move into their readers: recounting per temp cost time quadratic
  // in the steps (4,000 terms in one sum: 1.2 s of 1.5 to lower).
  std::vector<std::vector<size_t>> writers(p.buffers.size());  // ascending
  std::vector<int64_t> reads(p.buffers.size(), 0);
  std::vector<size_t> reader(p.buffers.size(), nsteps);  // the last step reading it
  std::vector<std::vector<int>> reads_of(nsteps);  // the distinct buffers each step reads, sorted
  for (size_t i = 0; i < nsteps; ++i) {
    if (steps[i].out >= 0) writers[static_cast<size_t>(steps[i].out)].push_back(i);
    for_each_read(steps[i], [&](int b) {
      ++reads[static_cast<size_t>(b)];
      reader[static_cast<size_t>(b)] = i;
      reads_of[i].push_back(b);
    });
    std::sort(reads_of[i].begin(), reads_of[i].end());
    reads_of[i].erase(std::unique(reads_of[i].begin(), reads_of[i].end()), reads_of[i].end());
  }
  std::vector<bool> inlined(nsteps, false);
  for (size_t t = 0; t < nsteps; ++t) {
    const Step& producer = steps[t];
    const int out = producer.out;
    if (producer.kind != StepKind::Elementwise || !is_temp(p, out)) continue;
    const size_t o = static_cast<size_t>(out);
    if (writers[o].size() != 1 || reads[o] != 1 || reader[o] <= t) continue;
    const size_t u = reader[o];
    Step& user = steps[u];
    if (user.kind != StepKind::Elementwise || user.shape != producer.shape || user.batched != producer.batched)
      continue;
    // One loop body stays of a size LLVM compiles in time linear in it.
    if (user.exprs.size() + producer.exprs.size() > kMaxFusedExprs) continue;
    int at = -1;
    for (size_t e = 0; e < user.exprs.size(); ++e)
      if (user.exprs[e].kind == Expr::Kind::Load && user.exprs[e].access.buf == out) at = static_cast<int>(e);
    if (at < 0 || !identity_access(p, user, user.exprs[static_cast<size_t>(at)].access)) continue;
    // Nothing between (that is still a step) writes what the producer reads.
    bool safe = true;
    for_each_read(producer, [&](int buf) {
      const auto& w = writers[static_cast<size_t>(buf)];
      for (auto it = std::upper_bound(w.begin(), w.end(), t); safe && it != w.end() && *it < u; ++it)
        safe = inlined[*it];
    });
    if (!safe) continue;
    // And the loop reads at most kMaxLoopBuffers buffers.
    std::vector<int> merged;
    std::set_union(reads_of[u].begin(), reads_of[u].end(), reads_of[t].begin(), reads_of[t].end(),
                   std::back_inserter(merged));
    merged.erase(std::remove(merged.begin(), merged.end(), out), merged.end());  // no longer read
    if (merged.size() > kMaxLoopBuffers) continue;
    // Append the producer's tree; its root replaces the load. The user now
    // reads what the producer read (the root's copy, when it is a load, is
    // a second read), and no longer reads the temp.
    for_each_read(producer, [&](int buf) {
      reader[static_cast<size_t>(buf)] = std::max(reader[static_cast<size_t>(buf)], u);
    });
    const Expr& root = producer.exprs[static_cast<size_t>(producer.root)];
    if (root.kind == Expr::Kind::Load) ++reads[static_cast<size_t>(root.access.buf)];
    reads[o] = 0;
    const int base = static_cast<int>(user.exprs.size());
    for (Expr e : producer.exprs) {
      for (int& a : e.args) a += base;
      user.exprs.push_back(std::move(e));
    }
    user.exprs[static_cast<size_t>(at)] = user.exprs[static_cast<size_t>(base + producer.root)];
    reads_of[u] = std::move(merged);
    inlined[t] = true;
  }
  size_t kept = 0;
  for (size_t i = 0; i < nsteps; ++i) {
    if (inlined[i]) continue;
    if (kept != i) steps[kept] = std::move(steps[i]);  // (a vector moved onto itself empties)
    ++kept;
  }
  steps.resize(kept);
}

void fuse_gemm_epilogues(Program& p) {
  auto& steps = p.steps;
  for (size_t r = 0; r < steps.size(); ++r) {
    const Step& s = steps[r];
    if (s.kind != StepKind::Elementwise || !s.batched || s.shape.rank() != 1) continue;
    int g = -1, bias = -1, mask = -1;
    bool relu = false;
    if (!bias_relu_pattern(p, s, &g, &bias, &relu)) {
      bias = -1;
      relu = false;
      if (!mask_pattern(p, s, &g, &mask)) continue;
    }
    const Expr& ge = expr(s, g);
    if (ge.kind != Expr::Kind::Load || !identity_access(p, s, ge.access) || !is_temp(p, ge.access.buf)) continue;
    const int gbuf = ge.access.buf;
    if (writers(p, gbuf) != 1 || readers(p, gbuf).size() != 1 || writers(p, s.out) != 1) continue;
    const size_t gi = epilogue_gemm(p, r, gbuf);
    if (gi == steps.size()) continue;
    bool safe = true;  // nothing between the two writes what the epilogue reads, or the result
    for (size_t j = gi + 1; j < r; ++j)
      safe = safe && steps[j].out != bias && steps[j].out != mask && steps[j].out != s.out;
    if (!safe) continue;
    Step& gemm = steps[gi];
    gemm.out = gemm.c.buf = s.out;
    gemm.bias = bias;
    gemm.relu = relu;
    gemm.mask = mask;
    steps.erase(steps.begin() + static_cast<std::ptrdiff_t>(r));
    --r;
  }
}

}  // namespace nabla::codegen
