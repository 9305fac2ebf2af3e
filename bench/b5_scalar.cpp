// B5 of ../shared/baselines, done the nabla way: the expression
//   f(x; w, b) = 1 / (exp(-(w*x + b)) + 1)
// is parsed, differentiated symbolically (df/dw, df/db, simplified: nabla
// recognizes sigmoid and writes f (1 - f) x), and the three as one JIT-compiled
// forward kernel over N = 1e6 float32 points (x ~ N(0, 3), w = 0.7, b = -0.3),
// one thread. Prints one JSON line with the time per call and the largest
// absolute error against a float64 reference, as the baseline programs do.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>
#include <vector>

#include "driver/load.h"
#include "codegen/kernels.h"
#include "frontend/lower.h"
#include "ir/differentiate.h"
#include "ir/simplify.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

int main() {
  const char* text = "1/(exp(-(w*x+b))+1)";
  auto loaded = driver::load_expression(text);
  if (!loaded.value) {
    std::cerr << loaded.rendered;
    return 1;
  }
  ir::Context ctx(ir::DType::F32);
  std::map<std::string, const ir::Node*> vars{{"x", ctx.var(ir::VarKind::Input, 0, "x", {})},
                                              {"w", ctx.var(ir::VarKind::Param, 0, "w", {})},
                                              {"b", ctx.var(ir::VarKind::Param, 1, "b", {})}};
  const ir::Node* f = ir::simplify(ctx, lower_expression(loaded.value->expr, ctx, &vars).root);
  const std::vector<const ir::Node*> wrt{vars["w"], vars["b"]};
  const std::vector<const ir::Node*> g = ir::simplify(ctx, ir::gradient(ctx, f, wrt));
  codegen::KernelSpec spec;
  spec.inputs = {vars["x"]};
  spec.params = {vars["w"], vars["b"]};
  spec.outputs = {{"f", f}, {"dfdw", g[0]}, {"dfdb", g[1]}};
  codegen::KernelOptions options;
  options.grad = false;
  options.use_cache = false;
  if (std::getenv("B5_PROGRAM")) std::cerr << codegen::build_program(spec, codegen::KernelKind::Forward, ir::DType::F32).str();
  std::string error;
  auto k = codegen::compile_kernels(spec, ir::DType::F32, options, &error);
  if (!k) {
    std::cerr << error << "\n";
    return 1;
  }
  const int64_t n = 1000000;
  std::vector<float> x(n), f_out(n), dw_out(n), db_out(n);  // as the baseline allocates them
  std::mt19937 gen(0);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& v : x) v = nd(gen);
  const float w = 0.7f, b = -0.3f;
  const void* in[] = {x.data()};
  const void* par[] = {&w, &b};
  void* outs[] = {f_out.data(), dw_out.data(), db_out.data()};
  std::vector<char> ws(static_cast<size_t>(k->forward_workspace(n)) + 64);
  void* space = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  auto call = [&] { k->forward(in, par, outs, n, space); };
  for (int i = 0; i < 5; ++i) call();
  std::vector<double> t;
  const auto start = Clock::now();
  while (t.size() < 20 || std::chrono::duration<double>(Clock::now() - start).count() < 1.0) {
    const auto t0 = Clock::now();
    call();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double fi = 1.0 / (std::exp(-(0.7 * static_cast<double>(x[i]) + -0.3)) + 1.0), gi = fi * (1 - fi);
    err = std::max({err, std::fabs(fi - f_out[i]), std::fabs(gi * x[i] - dw_out[i]), std::fabs(gi - db_out[i])});
  }
  std::printf("{\"bench\": \"B5\", \"impl\": \"nabla\", \"threads\": 1, \"n\": %lld, \"median_us\": %.3f, "
              "\"min_us\": %.3f, \"reps\": %zu, \"ns_per_point\": %.4f, \"max_abs_err_vs_f64\": %.3g}\n",
              static_cast<long long>(n), t[t.size() / 2] * 1e6, t.front() * 1e6, t.size(),
              t[t.size() / 2] * 1e9 / static_cast<double>(n), err);
  return 0;
}
