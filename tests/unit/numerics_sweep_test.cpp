// The NaN/Inf sweep (docs/numerics.md): every activation, loss and stable
// form the simplifier produces, compiled through the model pipeline (lower,
// simplify, differentiate, simplify) into forward and gradient kernels, f32
// and f64, and evaluated over [-1e4, 1e4] with the kinks and the points where
// exp, tanh and erf saturate or underflow. Asserted: wherever the function's
// value (or derivative) is finite in the element type, the kernel's is finite,
// and within a bound per element type of an independent long-double
// reference. Each test prints its table of worst errors (the one in
// docs/numerics.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "driver/gradient.h"
#include "driver/kernels.h"
#include "codegen/kernels.h"
#include "frontend/lower.h"
#include "ir/interpret.h"
#include "test_util.h"

namespace nabla {
namespace {

using Ld = long double;
using codegen::KernelSpec;
using ir::Node;

// The bound on the error measure (|kernel - reference| / max(1, |reference|)),
// in machine epsilons of the element type, for every function, forward and
// gradient (docs/numerics.md: the measured worst is 8 eps in f32, 15 in f64;
// swish's gradient has its own bound, below).
constexpr double kBoundEps = 32;
// The long-double references against the f64 interpreter on the unsimplified
// program, where evaluating the definitions literally in f64 is accurate.
constexpr double kReferenceCheck = 1e-9;
constexpr double kModerate = 16;

// ---------------------------------------------------------------------------
// The points.

// The abscissae, ascending: 20 a decade over 1e-4..1e4, a 0.25 step over
// [-20, 20], tiny values (f32 and f64 subnormals), the kinks (0, +-1, +-2)
// and their neighbours, and where exp(x) overflows or underflows in f32
// (88.72, 87.34, 103.28, the inline exp's clamps 89 and 104) and f64 (709.78,
// 708.40, 744.44), where tanh rounds to 1 (9.01 f32, 19.06 f64), erf to 1
// (5.5, 8.3) and exp(-x^2/2) underflows (14.4, 38.6): both signs, and 0.
std::vector<double> sweep_points() {
  std::vector<double> mags = {1e-310, 1e-40, 1e-30, 1e-20, 1e-12, 1e-8, 0x1p-20};
  for (int k = -80; k <= 80; ++k) mags.push_back(std::pow(10.0, k / 20.0));
  for (int k = 1; k <= 80; ++k) mags.push_back(0.25 * k);
  for (double kink : {1.0, 2.0})
    for (double d : {-0x1p-20, 0x1p-20}) mags.push_back(kink + d);
  for (double s : {5.5, 8.3, 9.0, 9.01, 9.1, 14.4, 18.7, 19.0, 19.1, 38.6, 87.3, 87.34, 88.0, 88.72, 88.73, 89.0,
                   103.2, 103.28, 103.3, 104.0, 104.5, 708.39, 708.4, 709.78, 709.79, 744.4, 744.5, 745.1, 746.0,
                   9999.0, 1e4})
    mags.push_back(s);
  std::vector<double> points{0.0};
  for (double m : mags) {
    points.push_back(m);
    points.push_back(-m);
  }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  return points;
}

// Rows of three logits from each point t: [t, -t, 0] (a spread of 2t,
// [1e4, -1e4, 0] among them), [t, t, 0] (a tie), [t, t + 1, t - 1] (a small
// spread at a large magnitude) and [t, t, t].
std::vector<std::vector<double>> sweep_rows() {
  std::vector<std::vector<double>> rows;
  for (double t : sweep_points())
    for (auto row : {std::vector<double>{t, -t, 0}, {t, t, 0}, {t, t + 1, t - 1}, {t, t, t}}) rows.push_back(row);
  return rows;
}

// ---------------------------------------------------------------------------
// Long-double references, written from the definitions with the usual stable
// identities (log1p, expm1, erfc): long double's range (e^+-11356) holds
// e^+-1e4, and its 64-bit significand is 2^11 times finer than f64's.

Ld sigmoid(Ld x) {
  const Ld e = expl(-fabsl(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}
Ld dsigmoid(Ld x) {  // s (1 - s), without the cancellation
  const Ld e = expl(-fabsl(x));
  return e / ((1 + e) * (1 + e));
}
Ld softplus(Ld x) { return fmaxl(x, 0) + log1pl(expl(-fabsl(x))); }
Ld big_phi(Ld x) { return erfcl(-x / sqrtl(2)) / 2; }  // P(X <= x), X standard normal
Ld small_phi(Ld x) { return expl(-x * x / 2) / sqrtl(2 * std::numbers::pi_v<Ld>); }

// f, df/dx and df/dg of an elementwise function of x and a second argument
// g (a parameter such as gamma or beta, or a label y).
struct Scalar {
  Ld f = 0, dx = 0, dg = 0;
};
using ScalarFn = Scalar (*)(Ld x, Ld g);

Scalar ref_sigmoid(Ld x, Ld) { return {sigmoid(x), dsigmoid(x)}; }
Scalar ref_tanh(Ld x, Ld) { return {tanhl(x), 4 * dsigmoid(2 * x)}; }  // 1 - tanh^2 = 4 s(2x) (1 - s(2x))
Scalar ref_hard_sigmoid(Ld x, Ld) { return {fmaxl(fminl(x / 4 + 0.5L, 1), 0), x > -2 && x < 2 ? 0.25L : 0}; }
Scalar ref_hard_tanh(Ld x, Ld) { return {fmaxl(fminl(x, 1), -1), x > -1 && x < 1 ? 1.0L : 0}; }
Scalar ref_relu(Ld x, Ld) { return {fmaxl(x, 0), x > 0 ? 1.0L : 0}; }
Scalar ref_leaky_relu(Ld x, Ld) { return {x > 0 ? x : 0.01L * x, x > 0 ? 1 : 0.01L}; }
Scalar ref_prelu(Ld x, Ld g) { return {x > 0 ? x : g * x, x > 0 ? 1 : g, x > 0 ? 0 : x}; }
Scalar ref_elu(Ld x, Ld g) { return {x > 0 ? x : g * expm1l(x), x > 0 ? 1 : g * expl(x), x > 0 ? 0 : expm1l(x)}; }
Scalar ref_softplus(Ld x, Ld) { return {softplus(x), sigmoid(x)}; }
Scalar ref_swish(Ld x, Ld b) {
  return {x * sigmoid(b * x), sigmoid(b * x) + b * x * dsigmoid(b * x), x * x * dsigmoid(b * x)};
}
Scalar ref_gelu(Ld x, Ld) { return {x * big_phi(x), big_phi(x) + x * small_phi(x)}; }
Scalar ref_gelu_tanh(Ld x, Ld) {  // 0.5 x (1 + tanh(u)) = x s(2u); 1 - tanh(u)^2 = 4 s'(2u)
  const Ld c = sqrtl(2 / std::numbers::pi_v<Ld>), u = c * (x + 0.044715L * x * x * x);
  return {x * sigmoid(2 * u), sigmoid(2 * u) + 2 * x * dsigmoid(2 * u) * c * (1 + 3 * 0.044715L * x * x)};
}
Scalar ref_gelu_sigmoid(Ld x, Ld) {
  return {x * sigmoid(1.702L * x), sigmoid(1.702L * x) + 1.702L * x * dsigmoid(1.702L * x)};
}
Scalar ref_log_sigmoid(Ld x, Ld) { return {-softplus(-x), sigmoid(-x)}; }
Scalar ref_log_one_minus_sigmoid(Ld x, Ld) { return {-softplus(x), -sigmoid(x)}; }
// The losses of one logit z and label y: (1 - y) softplus(z) + y softplus(-z)
// (two non-negative terms: no cancellation); (y - z)^2.
Scalar ref_bce(Ld z, Ld y) { return {(1 - y) * softplus(z) + y * softplus(-z), sigmoid(z) - y}; }
Scalar ref_mse(Ld z, Ld y) { return {(y - z) * (y - z), 2 * (z - y)}; }

// ---------------------------------------------------------------------------
// Cases: a model, its calls, its reference.

using Values = std::map<std::string, std::vector<double>>;  // by var name: one call's arguments

// The reference results of one call, by output name and by param name.
struct Expected {
  std::map<std::string, std::vector<Ld>> outputs, gradients;
  std::optional<Ld> loss;  // when the loss is the function itself (not a sum over the points)
};

struct Case {
  std::string name;     // a row of the table
  std::string model;    // .nn text; its param `w` holds the points
  std::vector<Values> calls;  // one kernel call each (n = 1)
  std::function<Expected(const Values&)> reference;
  int group = 1;  // elements of w a point is made of (the size of a row)
  double gradient_bound_eps = kBoundEps;
};

// `c` with a looser bound on its gradient (documented in docs/numerics.md).
Case with_gradient_bound(Case c, double eps) {
  c.gradient_bound_eps = eps;
  return c;
}

// f(z), z = w * x, over every point in one call: the output f, the loss
// sum(f), so d/dw is f' at each point (x = 1). With `second`, f takes the
// param g (= *second at every point) as its second argument.
Case elementwise(const std::string& name, const std::string& expr, ScalarFn fn, std::optional<double> second = {}) {
  const std::vector<double> points = sweep_points();
  const std::string n = std::to_string(points.size());
  Case c;
  c.name = name;
  c.model = "input x : []\nparam w : [" + n + "]\n" + (second ? "param g : [" + n + "]\n" : "") +
            "z = w * x\noutput f = " + expr + "\nloss sum(" + expr + ")\n";
  Values v{{"x", {1.0}}, {"w", points}};
  if (second) v["g"] = std::vector<double>(points.size(), *second);
  c.calls = {v};
  c.reference = [fn, second](const Values& at) {
    Expected e;
    const auto& w = at.at("w");
    for (size_t i = 0; i < w.size(); ++i) {
      const Scalar s = fn(w[i], second ? at.at("g")[i] : 0);
      e.outputs["f"].push_back(s.f);
      e.gradients["w"].push_back(s.dx);
      if (second) e.gradients["g"].push_back(s.dg);
    }
    return e;
  };
  return c;
}

// Binary cross-entropy of sigmoid(z) against labels 0, 1 and 0.25 at every
// point: the loss (a sum over the elements, so d/dw is the term's derivative);
// the output is the elementwise term, with an input t holding the labels
// (an output cannot read a label).
Case binary_cross_entropy_case() {
  std::vector<double> z, y;
  for (double label : {0.0, 1.0, 0.25})
    for (double p : sweep_points()) {
      z.push_back(p);
      y.push_back(label);
    }
  const std::string n = std::to_string(z.size());
  Case c;
  c.name = "binary_cross_entropy(y, sigmoid(z))";
  c.model = "input x : []\ninput t : [" + n + "]\nlabel y : [" + n + "]\nparam w : [" + n +
            "]\nz = w * x\noutput f = -(t * log(sigmoid(z)) + (1 - t) * log(1 - sigmoid(z)))\n"
            "loss binary_cross_entropy(y, sigmoid(z))\n";
  c.calls = {Values{{"x", {1.0}}, {"t", y}, {"y", y}, {"w", z}}};
  c.reference = [](const Values& at) {
    Expected e;
    for (size_t i = 0; i < at.at("w").size(); ++i) {
      const Scalar s = ref_bce(at.at("w")[i], at.at("y")[i]);
      e.outputs["f"].push_back(s.f);
      e.gradients["w"].push_back(s.dx);
    }
    return e;
  };
  return c;
}

// mse(y, z) of a scalar prediction (the mean over one element), one call per
// point and label (0 and 0.5): the loss is the function itself.
Case mse_case() {
  Case c;
  c.name = "mse(y, z)";
  c.model = "input x : []\ninput t : []\nlabel y : []\nparam w : []\nz = w * x\n"
            "output f = (t - z)^2\nloss mse(y, z)\n";
  for (double label : {0.0, 0.5})
    for (double p : sweep_points()) c.calls.push_back(Values{{"x", {1.0}}, {"t", {label}}, {"y", {label}}, {"w", {p}}});
  c.reference = [](const Values& at) {
    Expected e;
    const Scalar s = ref_mse(at.at("w")[0], at.at("y")[0]);
    e.outputs["f"] = {s.f};
    e.gradients["w"] = {s.dx};
    e.loss = s.f;
    return e;
  };
  return c;
}

// Maxout over groups of two: (p_i, p_j) for a fixed permutation j of the
// points, every fifth group a tie (p_i, p_i). The gradient goes to the first
// maximum of each group.
Case maxout_case() {
  const std::vector<double> p = sweep_points();
  std::vector<double> w;
  for (size_t i = 0; i < p.size(); ++i) {
    w.push_back(p[i]);
    w.push_back(i % 5 == 0 ? p[i] : p[(i * 7 + 3) % p.size()]);
  }
  Case c;
  c.name = "maxout(z, 2)";
  c.group = 2;
  c.model = "input x : []\nparam w : [" + std::to_string(w.size()) +
            "]\nz = w * x\noutput f = maxout(z, 2)\nloss sum(maxout(z, 2))\n";
  c.calls = {Values{{"x", {1.0}}, {"w", w}}};
  c.reference = [](const Values& at) {
    Expected e;
    const auto& v = at.at("w");
    for (size_t i = 0; i + 1 < v.size(); i += 2) {
      const bool first = v[i] >= v[i + 1];
      e.outputs["f"].push_back(first ? v[i] : v[i + 1]);
      e.gradients["w"].push_back(first ? 1 : 0);
      e.gradients["w"].push_back(first ? 0 : 1);
    }
    return e;
  };
  return c;
}

// One row's softmax quantities, in long double.
struct RowRef {
  Ld lse = 0;
  std::vector<Ld> log_softmax, softmax;
};
RowRef row_ref(const double* z, size_t k) {
  Ld m = -INFINITY, sum = 0;
  for (size_t j = 0; j < k; ++j) m = fmaxl(m, z[j]);
  for (size_t j = 0; j < k; ++j) sum += expl(static_cast<Ld>(z[j]) - m);
  RowRef r;
  r.lse = m + logl(sum);
  for (size_t j = 0; j < k; ++j) {
    r.log_softmax.push_back((static_cast<Ld>(z[j]) - m) - logl(sum));
    r.softmax.push_back(expl(r.log_softmax.back()));
  }
  return r;
}

// What a softmax-family case computes: its output and the loss
// sum(c * output) (or sum(output)), per row.
enum class RowFn { Softmax, LogSoftmax, Logsumexp };

// The output and the gradient of the loss for one row: softmax s with loss
// sum(c s): s_j (c_j - sum c s); log_softmax with sum(c l): c_j - s_j sum c;
// logsumexp with sum(lse): s_j.
void row_expected(RowFn fn, const RowRef& r, const double* c, size_t k, Expected& e) {
  Ld cs = 0, csum = 0;
  for (size_t j = 0; j < k; ++j) {
    cs += c[j] * r.softmax[j];
    csum += c[j];
  }
  if (fn == RowFn::Logsumexp) e.outputs["f"].push_back(r.lse);
  for (size_t j = 0; j < k; ++j) {
    if (fn == RowFn::Softmax) {
      e.outputs["f"].push_back(r.softmax[j]);
      e.gradients["w"].push_back(r.softmax[j] * (c[j] - cs));
    } else if (fn == RowFn::LogSoftmax) {
      e.outputs["f"].push_back(r.log_softmax[j]);
      e.gradients["w"].push_back(c[j] - r.softmax[j] * csum);
    } else {
      e.gradients["w"].push_back(r.softmax[j]);
    }
  }
}

// The weights of the loss sum(c * f(z)), by row: one-hot, and a spread one.
std::vector<double> row_weights(size_t rows) {
  const double patterns[3][3] = {{1, 0, 0}, {0, 1, 0}, {0.25, 0.25, 0.5}};
  std::vector<double> c;
  for (size_t r = 0; r < rows; ++r) c.insert(c.end(), patterns[r % 3], patterns[r % 3] + 3);
  return c;
}

// A softmax-family function along the rows of z = w * x ([rows, 3]), every
// row in one call; `expr` and `loss` spell it (the stable forms spell it in
// the form the simplifier rewrites).
Case rows_case(const std::string& name, const std::string& expr, const std::string& loss, RowFn fn) {
  const auto rows = sweep_rows();
  std::vector<double> w;
  for (const auto& row : rows) w.insert(w.end(), row.begin(), row.end());
  const std::string shape = "[" + std::to_string(rows.size()) + ", 3]";
  Case c;
  c.name = name;
  c.group = 3;
  c.model = "input x : []\nlabel c : " + shape + "\nparam w : " + shape + "\nz = w * x\noutput f = " + expr +
            "\nloss " + loss + "\n";
  c.calls = {Values{{"x", {1.0}}, {"c", row_weights(rows.size())}, {"w", w}}};
  c.reference = [fn](const Values& at) {
    Expected e;
    const auto& v = at.at("w");
    for (size_t r = 0; r * 3 < v.size(); ++r) row_expected(fn, row_ref(&v[r * 3], 3), &at.at("c")[r * 3], 3, e);
    return e;
  };
  return c;
}

// cross_entropy(y, softmax(z)) as models write it: y a distribution label
// (so the error term is softmax(z) - y), one call per row, the loss the
// function itself. Labels by row: one-hot at 0, 1, 2, and a soft one.
Case cross_entropy_case() {
  const double labels[4][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0.25, 0.25, 0.5}};
  Case c;
  c.name = "cross_entropy(y, softmax(z))";
  c.group = 3;
  c.model = "input x : []\ninput t : [3]\nlabel y : [3] distribution\nparam w : [3]\nz = w * x\n"
            "output f = cross_entropy(t, softmax(z))\nloss cross_entropy(y, softmax(z))\n";
  const auto rows = sweep_rows();
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::vector<double> y(labels[r % 4], labels[r % 4] + 3);
    c.calls.push_back(Values{{"x", {1.0}}, {"t", y}, {"y", y}, {"w", rows[r]}});
  }
  c.reference = [](const Values& at) {
    const RowRef r = row_ref(at.at("w").data(), 3);
    Expected e;
    Ld ce = 0;
    for (size_t j = 0; j < 3; ++j) {
      ce -= at.at("y")[j] * r.log_softmax[j];
      e.gradients["w"].push_back(r.softmax[j] - at.at("y")[j]);
    }
    e.outputs["f"] = {ce};
    e.loss = ce;
    return e;
  };
  return c;
}

// ---------------------------------------------------------------------------
// Running a case.

// The worst error of one quantity (a kind of value of one case in one
// element type), and where.
struct Worst {
  double error = 0;
  std::string where;
};

struct Measured {
  Worst forward, gradient;
  int64_t values = 0, nonfinite = 0;  // compared; non-finite where the reference is finite
};

// A private kernel cache for the test (the GEMM support object is compiled
// once per element type, not once per case), removed when the suite ends.
class NumericsSweep : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    cache_dir_ = std::filesystem::temp_directory_path() / ("nabla-sweep-" + std::to_string(::getpid()));
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(cache_dir_); }
  static std::string cache_dir_;
};
std::string NumericsSweep::cache_dir_;

template <typename T>
double rounded(double v) {
  return static_cast<double>(static_cast<T>(v));
}

// The call's values as the kernel sees them (rounded to T).
template <typename T>
Values round_values(const Values& v) {
  Values out = v;
  for (auto& [name, values] : out)
    for (double& d : values) d = rounded<T>(d);
  return out;
}

// Pointers to the values of `vars`, converted to T.
template <typename T>
struct Arrays {
  std::vector<std::vector<T>> data;
  std::vector<const void*> ptrs;
  Arrays(const std::vector<const Node*>& vars, const Values& v) {
    for (const Node* var : vars) {
      const auto& values = v.at(var->name());
      EXPECT_EQ(static_cast<int64_t>(values.size()), var->shape().numel()) << var->name();
      data.emplace_back(values.begin(), values.end());
    }
    for (const auto& d : data) ptrs.push_back(d.data());
  }
};

// What the kernels computed for one call (n = 1).
struct KernelResults {
  std::vector<std::vector<double>> outputs, gradients;  // spec order
  double loss = 0;
};

template <typename T>
KernelResults call_kernels(const codegen::CompiledKernels& k, const KernelSpec& spec, const Values& v) {
  Arrays<T> in(spec.inputs, v), lab(spec.labels, v), par(spec.params, v);
  std::vector<std::vector<T>> out, grad;
  std::vector<void*> out_ptrs, grad_ptrs;
  for (const auto& o : spec.outputs) out.emplace_back(static_cast<size_t>(o.second->shape().numel()));
  for (const Node* p : spec.params) grad.emplace_back(static_cast<size_t>(p->shape().numel()));
  for (auto& o : out) out_ptrs.push_back(o.data());
  for (auto& g : grad) grad_ptrs.push_back(g.data());
  std::vector<char> ws(static_cast<size_t>(std::max(k.forward_workspace(1), k.grad_workspace(1))) + 64);
  void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) / 64 * 64);
  k.forward(in.ptrs.data(), par.ptrs.data(), out_ptrs.data(), 1, aligned);
  T loss = 0;
  k.grad(in.ptrs.data(), lab.ptrs.data(), par.ptrs.data(), &loss, grad_ptrs.data(), 1, aligned);
  KernelResults r;
  for (const auto& o : out) r.outputs.emplace_back(o.begin(), o.end());
  for (const auto& g : grad) r.gradients.emplace_back(g.begin(), g.end());
  r.loss = loss;
  return r;
}

// The error measure: relative where |reference| >= 1, absolute below.
double error_of(double got, Ld want) {
  return static_cast<double>(fabsl(static_cast<Ld>(got) - want) / fmaxl(1, fabsl(want)));
}

// The points of w that element `e` of a quantity with `size` elements
// depends on (its group), for messages and the table.
std::string where_of(const Case& c, const Values& v, size_t e, size_t size) {
  const auto& w = v.at("w");
  const size_t first = e * w.size() / size / static_cast<size_t>(c.group) * static_cast<size_t>(c.group);
  std::string s = c.group > 1 ? "(" : "";
  for (size_t j = first; j < first + static_cast<size_t>(c.group) && j < w.size(); ++j) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6g", j > first ? ", " : "", w[j]);
    s += buf;
  }
  return c.group > 1 ? s + ")" : s;
}

// Compares one quantity with its reference: a failure where the reference
// is finite in T and the kernel's value is not; the worst error otherwise.
template <typename T>
void compare(const Case& c, const Values& v, const std::string& what, const std::vector<double>& got,
             const std::vector<Ld>& want, Worst& worst, Measured& m) {
  ASSERT_EQ(got.size(), want.size()) << c.name << " " << what;
  for (size_t e = 0; e < got.size(); ++e) {
    if (!std::isfinite(static_cast<T>(want[e]))) continue;
    ++m.values;
    if (!std::isfinite(got[e])) {
      if (++m.nonfinite <= 10)
        ADD_FAILURE() << c.name << " (" << (sizeof(T) == 4 ? "f32" : "f64") << "): " << what << "[" << e << "] at "
                      << where_of(c, v, e, got.size()) << " is " << got[e] << ", expected "
                      << static_cast<double>(want[e]);
      continue;
    }
    const double err = error_of(got[e], want[e]);
    if (err > worst.error || worst.where.empty()) worst = {err, where_of(c, v, e, got.size())};
  }
}

// The kernels of `c` in T over every call, against the reference.
template <typename T>
Measured sweep(const Case& c, const std::string& cache_dir) {
  const ir::DType dt = sizeof(T) == 4 ? ir::DType::F32 : ir::DType::F64;
  Measured m;
  auto checked = test::check(c.model);
  EXPECT_EQ(checked.error_count, 0) << c.name << ":\n" << checked.errors;
  if (checked.error_count) return m;
  ir::Context ctx(dt);
  const LoweredModel lowered = lower_model(checked.model, ctx);
  const KernelSpec spec = driver::kernel_spec(ctx, lowered, true, true);
  codegen::KernelOptions options;
  options.cache_dir = cache_dir;
  std::string error;
  auto k = codegen::compile_kernels(spec, dt, options, &error);
  EXPECT_TRUE(k) << c.name << ": " << error;
  if (!k) return m;
  for (const Values& call : c.calls) {
    const Values v = round_values<T>(call);
    const Expected e = c.reference(v);
    const KernelResults r = call_kernels<T>(*k, spec, v);
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      compare<T>(c, v, spec.outputs[i].first, r.outputs[i], e.outputs.at(spec.outputs[i].first), m.forward, m);
    for (size_t i = 0; i < spec.params.size(); ++i)
      compare<T>(c, v, "d/d" + spec.params[i]->name(), r.gradients[i], e.gradients.at(spec.params[i]->name()),
                 m.gradient, m);
    EXPECT_TRUE(std::isfinite(r.loss)) << c.name << ": loss " << r.loss;
    if (e.loss) compare<T>(c, v, "loss", {r.loss}, {*e.loss}, m.forward, m);
  }
  return m;
}

// ---------------------------------------------------------------------------
// The references against the f64 interpreter on the unsimplified program.

ir::VarValues var_values(const Values& v) {
  return [&v](const Node* var) {
    ir::Tensor t = ir::Tensor::zeros(var->shape());
    t.data = v.at(var->name());
    return t;
  };
}

struct RawCheck {
  double worst = 0;  // reference vs interpreter, params clamped to [-kModerate, kModerate]
  // Over the sweep: values finite in f64 (outputs and gradients), and those
  // the raw program gives non-finite.
  int64_t values = 0, nonfinite = 0;
};

// The model's outputs, loss and gradients as lowered and differentiated,
// without the simplifier (its definitions evaluated literally in f64).
// Where every param is moderate, they agree with the long-double reference
// (which checks the references); over the whole sweep, they count the values
// the stable forms save.
RawCheck check_raw(const Case& c) {
  RawCheck out;
  auto checked = test::check(c.model);
  if (checked.error_count) return out;
  ir::Context ctx;
  const LoweredModel m = lower_model(checked.model, ctx);
  const driver::GradientProgram raw = driver::gradient_program(ctx, m, m.params, false);
  std::vector<const Node*> roots;
  for (const auto& o : m.outputs) roots.push_back(o.second);
  roots.insert(roots.end(), raw.gradients.begin(), raw.gradients.end());
  for (const Values& call : c.calls) {
    for (bool clamp : {true, false}) {
      Values v = call;
      for (const Node* p : m.params)
        for (double& d : v[p->name()]) d = clamp ? std::clamp(d, -kModerate, kModerate) : d;
      const Expected e = c.reference(v);
      const auto got = ir::interpret(roots, var_values(v));
      for (size_t r = 0; r < roots.size(); ++r) {
        const bool output = r < m.outputs.size();
        const auto& want =
            output ? e.outputs.at(m.outputs[r].first) : e.gradients.at(m.params[r - m.outputs.size()]->name());
        for (size_t i = 0; i < want.size(); ++i) {
          if (!std::isfinite(static_cast<double>(want[i]))) continue;
          const bool finite = std::isfinite(got[r].data[i]);
          if (!clamp) {
            ++out.values;
            out.nonfinite += finite ? 0 : 1;
          } else if (finite) {
            out.worst = std::max(out.worst, error_of(got[r].data[i], want[i]));
          }
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The table.

std::string cell(const Worst& w) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.1e (%s)", w.error, w.where.c_str());
  return buf;
}

// The bounds of one element type: the worst errors, in its epsilons.
void check_bounds(const Case& c, const Measured& m, const char* dtype, double eps) {
  EXPECT_LE(m.forward.error, kBoundEps * eps) << c.name << " forward " << dtype << " at " << m.forward.where;
  EXPECT_LE(m.gradient.error, c.gradient_bound_eps * eps) << c.name << " gradient " << dtype << " at "
                                                           << m.gradient.where;
}

// Sweeps every case in f32 and f64, checks the bounds and the references,
// and prints one markdown table row per case.
void sweep_all(const std::vector<Case>& cases, const std::string& cache_dir) {
  std::printf("\n| function | forward f32 | gradient f32 | forward f64 | gradient f64 | raw f64 non-finite |\n"
              "|---|---|---|---|---|---|\n");
  double reference_check = 0;
  for (const Case& c : cases) {
    const Measured f32 = sweep<float>(c, cache_dir), f64 = sweep<double>(c, cache_dir);
    const RawCheck raw = check_raw(c);
    EXPECT_GT(f32.values, 0) << c.name;
    EXPECT_EQ(f32.values, f64.values) << c.name << ": values finite in f64 but not in f32";
    check_bounds(c, f32, "f32", std::numeric_limits<float>::epsilon());
    check_bounds(c, f64, "f64", std::numeric_limits<double>::epsilon());
    EXPECT_LE(raw.worst, kReferenceCheck) << c.name << ": the long-double reference disagrees with the interpreter";
    reference_check = std::max(reference_check, raw.worst);
    std::printf("| `%s` | %s | %s | %s | %s | %lld of %lld |\n", c.name.c_str(), cell(f32.forward).c_str(),
                cell(f32.gradient).c_str(), cell(f64.forward).c_str(), cell(f64.gradient).c_str(),
                static_cast<long long>(raw.nonfinite), static_cast<long long>(raw.values));
  }
  std::printf("\nreferences vs the f64 interpreter on the unsimplified programs, params within +-%g: %.1e\n",
              kModerate, reference_check);
  std::fflush(stdout);
}

// Every elementwise activation of the language, f(w x), w at each point.
TEST_F(NumericsSweep, Activations) {
  sweep_all({elementwise("sigmoid", "sigmoid(z)", ref_sigmoid),
             elementwise("tanh", "tanh(z)", ref_tanh),
             elementwise("hard_sigmoid", "hard_sigmoid(z)", ref_hard_sigmoid),
             elementwise("hard_tanh", "hard_tanh(z)", ref_hard_tanh),
             elementwise("relu", "relu(z)", ref_relu),
             elementwise("leaky_relu", "leaky_relu(z)", ref_leaky_relu),
             elementwise("prelu(z, 0.25)", "prelu(z, g)", ref_prelu, 0.25),
             elementwise("elu(z, 0.5)", "elu(z, g)", ref_elu, 0.5),
             elementwise("softplus", "softplus(z)", ref_softplus),
             // d/dbeta = z^2 s (1 - s), 1 - s rounded at ulp(1) while s (1 - s)
             // is still above eps: an absolute error of z^2 eps / 2 up to z of
             // about -log(eps) (docs/numerics.md).
             with_gradient_bound(elementwise("swish(z, 1)", "swish(z, g)", ref_swish, 1.0), 1024),
             elementwise("gelu", "gelu(z)", ref_gelu),
             elementwise("gelu_tanh", "gelu_tanh(z)", ref_gelu_tanh),
             elementwise("gelu_sigmoid", "gelu_sigmoid(z)", ref_gelu_sigmoid),
             maxout_case()},
            cache_dir_);
}

// The forms the simplifier rewrites into stable ones, written as a
// textbook writes them.
TEST_F(NumericsSweep, StableForms) {
  sweep_all({elementwise("1 / (1 + exp(-z))", "1 / (1 + exp(-z))", ref_sigmoid),
             elementwise("exp(z) / (exp(z) + 1)", "exp(z) / (exp(z) + 1)", ref_sigmoid),
             elementwise("log(1 + exp(z))", "log(1 + exp(z))", ref_softplus),
             elementwise("log(sigmoid(z))", "log(sigmoid(z))", ref_log_sigmoid),
             elementwise("log(1 - sigmoid(z))", "log(1 - sigmoid(z))", ref_log_one_minus_sigmoid),
             elementwise("z * sigmoid(z)", "z * sigmoid(z)", [](Ld x, Ld) { return ref_swish(x, 1); }),
             rows_case("log(softmax(z))", "log(softmax(z))", "sum(c * log(softmax(z)))", RowFn::LogSoftmax),
             rows_case("exp(log_softmax(z))", "exp(log_softmax(z))", "sum(c * exp(log_softmax(z)))",
                       RowFn::Softmax)},
            cache_dir_);
}

// The losses, and softmax, log_softmax and logsumexp along rows of logits
// with spreads up to 2e4.
TEST_F(NumericsSweep, LossesAndSoftmax) {
  sweep_all({cross_entropy_case(), binary_cross_entropy_case(), mse_case(),
             rows_case("softmax(z)", "softmax(z)", "sum(c * softmax(z))", RowFn::Softmax),
             rows_case("log_softmax(z)", "log_softmax(z)", "sum(c * log_softmax(z))", RowFn::LogSoftmax),
             rows_case("logsumexp(z, axis=1)", "logsumexp(z, axis=1)", "sum(logsumexp(z, axis=1))",
                       RowFn::Logsumexp)},
            cache_dir_);
}

}  // namespace
}  // namespace nabla
