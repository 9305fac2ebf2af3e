// Forward vs reverse mode for an R^N -> R loss (the chapter's §4.4): the
// gradient of L(w) = sum(tanh(A @ w)) + sum(w * w) / 2 with respect to w in
// R^N, both ways, compiled by nabla and timed as N grows.
//   reverse: one gradient kernel call (ir::gradient), cost ~ one evaluation;
//   forward: N directional derivatives (ir::jvp along each basis vector), one
//            forward kernel call over a batch of the N directions, cost ~ N
//            evaluations.
// Prints a table (N, reverse, forward, forward / reverse) and checks that the
// two gradients agree.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "codegen/kernels.h"
#include "ir/differentiate.h"
#include "ir/simplify.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

template <typename F>
double best_of(F&& f) {
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

int main() {
  std::printf("%8s  %14s  %14s  %10s  %s\n", "N", "reverse", "forward", "fwd / rev", "max |difference|");
  for (int64_t n : {16, 64, 256, 1024}) {
    ir::Context c;
    const ir::Node* w = c.var(ir::VarKind::Param, 0, "w", {n});
    const ir::Node* a = c.var(ir::VarKind::Param, 1, "A", {n, n});
    const ir::Node* v = c.var(ir::VarKind::Input, 0, "v", {n});
    const ir::Node* loss = c.add(c.make(ir::Op::Sum, {c.unary(ir::Op::Tanh, c.make(ir::Op::MatMul, {a, w}))}),
                                 c.mul(c.constant(0.5), c.make(ir::Op::Sum, {c.mul(w, w)})));
    codegen::KernelSpec rev;
    rev.params = {w, a};
    rev.loss = loss;
    const std::vector<const ir::Node*> wrt{w};
    rev.gradients = {ir::simplify(c, ir::gradient(c, loss, wrt))[0], c.broadcast_to(c.constant(0), {n, n})};
    codegen::KernelSpec fwd;
    fwd.inputs = {v};
    fwd.params = {w, a};
    fwd.outputs = {{"jvp", ir::simplify(c, ir::jvp(c, loss, {{w, v}}))}};
    codegen::KernelOptions ro, fo;
    ro.forward = false;
    ro.use_cache = fo.use_cache = false;
    fo.grad = false;
    std::string error;
    auto kr = codegen::compile_kernels(rev, ir::DType::F64, ro, &error);
    auto kf = codegen::compile_kernels(fwd, ir::DType::F64, fo, &error);
    if (!kr || !kf) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> wv(static_cast<size_t>(n)), av(static_cast<size_t>(n * n)), basis(static_cast<size_t>(n * n), 0);
    for (double& x : wv) x = u(rng);
    for (double& x : av) x = u(rng) / std::sqrt(static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) basis[static_cast<size_t>(i * n + i)] = 1;
    const void* par[] = {wv.data(), av.data()};
    std::vector<double> g(static_cast<size_t>(n)), ga(static_cast<size_t>(n * n)), jv(static_cast<size_t>(n));
    double l = 0;
    void* grads[] = {g.data(), ga.data()};
    std::vector<char> wsr(static_cast<size_t>(kr->grad_workspace(1)) + 64), wsf(static_cast<size_t>(kf->forward_workspace(n)) + 64);
    auto aligned = [](std::vector<char>& b) {
      return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(b.data()) + 63) / 64 * 64);
    };
    const void* in[] = {basis.data()};
    void* outs[] = {jv.data()};
    const double tr = best_of([&] { kr->grad(nullptr, nullptr, par, &l, grads, 1, aligned(wsr)); });
    const double tf = best_of([&] { kf->forward(in, par, outs, n, aligned(wsf)); });
    double diff = 0;
    for (int64_t i = 0; i < n; ++i) diff = std::max(diff, std::fabs(g[static_cast<size_t>(i)] - jv[static_cast<size_t>(i)]));
    std::printf("%8lld  %11.2f us  %11.2f us  %9.1fx  %.2g\n", static_cast<long long>(n), tr * 1e6, tf * 1e6, tf / tr,
                diff);
  }
  return 0;
}
