// The floor of "gradient / forward" at batch 1 for the MLP 784-256-256-10
// with ReLU, softmax cross-entropy and a Frobenius term (bench/models/
// mlp_784_256_256_10.nn), written by hand with AVX-512 intrinsics, outside
// nabla: what a gradient that must read every weight after the backward
// pass (for lambda W) and write a gradient as large as the weights costs
// against a forward pass that reads the weights once.
//
// It times, one sample, best of 30 rounds:
//   forward      W1 x, W2 h1, W3 h2, softmax: 1.07 MB of weights read once;
//   gradient     the textbook order: forward, delta3, dW3, delta2, delta1
//                (W2^T delta2), then dW1 and dW2, each row lambda W + delta x;
//   reordered    the decay of W1's inactive rows (z1 <= 0, where delta1 is 0)
//                written in the forward pass while the row is in L1, dW2
//                fused with the backward product W2^T delta2 (W2 read once
//                for both): fewer bytes read;
//   no stores    the textbook gradient computed but not stored (a lower
//                bound for any gradient that reads W twice, not a gradient).
// The gradients of the two orders are compared element by element.
//
// Build and run (x86-64 with AVX-512): the build makes build/gradient_floor
// where the compiler can target AVX-512; it refuses to run on a CPU without.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int kIn = 784, kHidden = 256, kOut = 10;
constexpr float kLambda = 1e-4f;

float* aligned(int n) {
  return static_cast<float*>(std::aligned_alloc(64, (static_cast<size_t>(n) * 4 + 63) / 64 * 64));
}

struct Net {
  float *w1 = aligned(kHidden * kIn), *w2 = aligned(kHidden * kHidden), *w3 = aligned(kOut * kHidden);
  float *b1 = aligned(kHidden), *b2 = aligned(kHidden), *b3 = aligned(16);
  float *g1 = aligned(kHidden * kIn), *g2 = aligned(kHidden * kHidden), *g3 = aligned(kOut * kHidden);
  float *x = aligned(kIn), *y = aligned(16);
  alignas(64) float z1[kHidden], h1[kHidden], z2[kHidden], h2[kHidden], d2[kHidden], d1[kHidden];
  float z3[16], p[16], d3[16];
  bool store = true;  // false: the "no stores" bound
};

float lanes_sum(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  float s = 0;
  for (float e : l) s += e;
  return s;
}

// Rows are multiples of 16 floats (784, 256), 64-byte aligned.
float dot(const float* a, const float* b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  int k = 0;
  for (; k + 32 <= n; k += 32) {
    s0 = _mm512_fmadd_ps(_mm512_load_ps(a + k), _mm512_load_ps(b + k), s0);
    s1 = _mm512_fmadd_ps(_mm512_load_ps(a + k + 16), _mm512_load_ps(b + k + 16), s1);
  }
  if (k < n) s0 = _mm512_fmadd_ps(_mm512_load_ps(a + k), _mm512_load_ps(b + k), s0);
  return lanes_sum(_mm512_add_ps(s0, s1));
}

// g = lambda w + d v over one row of n (a multiple of 16); returns sum w^2.
float decay_row(Net& net, float* g, const float* w, float d, const float* v, int n) {
  const __m512 l = _mm512_set1_ps(kLambda), dv = _mm512_set1_ps(d);
  __m512 s = _mm512_setzero_ps(), unused = s;
  for (int k = 0; k < n; k += 16) {
    const __m512 wv = _mm512_load_ps(w + k);
    s = _mm512_fmadd_ps(wv, wv, s);
    const __m512 o = _mm512_fmadd_ps(dv, _mm512_load_ps(v + k), _mm512_mul_ps(l, wv));
    if (net.store) _mm512_store_ps(g + k, o);
    else unused = _mm512_add_ps(unused, o);
  }
  return lanes_sum(s) + (net.store ? 0.0f : 1e-30f * lanes_sum(unused));
}

// The forward pass; with decay_inactive, W1's rows with z1 <= 0 get their
// gradient (lambda W1) at once. Returns the squared norms summed so far.
float forward(Net& n, bool decay_inactive) {
  float norm = 0;
  for (int i = 0; i < kHidden; ++i) {
    n.z1[i] = dot(n.w1 + i * kIn, n.x, kIn) + n.b1[i];
    n.h1[i] = std::max(n.z1[i], 0.0f);
    if (decay_inactive && n.z1[i] <= 0) norm += decay_row(n, n.g1 + i * kIn, n.w1 + i * kIn, 0.0f, n.x, kIn);
  }
  for (int i = 0; i < kHidden; ++i) {
    n.z2[i] = dot(n.w2 + i * kHidden, n.h1, kHidden) + n.b2[i];
    n.h2[i] = std::max(n.z2[i], 0.0f);
  }
  float m = -INFINITY, s = 0;
  for (int i = 0; i < kOut; ++i) m = std::max(m, n.z3[i] = dot(n.w3 + i * kHidden, n.h2, kHidden) + n.b3[i]);
  for (int i = 0; i < kOut; ++i) s += n.p[i] = std::exp(n.z3[i] - m);
  for (int i = 0; i < kOut; ++i) n.p[i] /= s;
  return norm;
}

float gradient(Net& n, bool reordered) {
  float norm = forward(n, reordered);
  for (int i = 0; i < kOut; ++i) n.d3[i] = n.p[i] - n.y[i];
  for (int i = 0; i < kOut; ++i) norm += decay_row(n, n.g3 + i * kHidden, n.w3 + i * kHidden, n.d3[i], n.h2, kHidden);
  for (int j = 0; j < kHidden; ++j) {
    float s = 0;
    for (int i = 0; i < kOut; ++i) s += n.w3[i * kHidden + j] * n.d3[i];
    n.d2[j] = n.z2[j] > 0 ? s : 0;
  }
  // delta1 = W2^T delta2, row by row of W2 (with dW2's rows when reordered).
  __m512 acc[kHidden / 16];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (int i = 0; i < kHidden; ++i) {
    const float* w = n.w2 + i * kHidden;
    const __m512 d = _mm512_set1_ps(n.d2[i]);
    for (int v = 0; v < kHidden / 16; ++v) acc[v] = _mm512_fmadd_ps(d, _mm512_load_ps(w + 16 * v), acc[v]);
    if (reordered) norm += decay_row(n, n.g2 + i * kHidden, w, n.d2[i], n.h1, kHidden);
  }
  for (int v = 0; v < kHidden / 16; ++v) _mm512_storeu_ps(n.d1 + 16 * v, acc[v]);
  for (int j = 0; j < kHidden; ++j)
    if (n.z1[j] <= 0) n.d1[j] = 0;
  for (int i = 0; i < kHidden; ++i)
    if (!reordered || n.z1[i] > 0) norm += decay_row(n, n.g1 + i * kIn, n.w1 + i * kIn, n.d1[i], n.x, kIn);
  if (!reordered)
    for (int i = 0; i < kHidden; ++i) norm += decay_row(n, n.g2 + i * kHidden, n.w2 + i * kHidden, n.d2[i], n.h1, kHidden);
  return norm;
}

template <typename F>
double best_us(F&& f) {
  double best = 1e30;
  for (int round = 0; round < 30; ++round) {
    const int calls = 2000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) f();
    best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  return best;
}

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "gradient_floor: this CPU has no AVX-512\n");
    return 1;
  }
  Net n;
  std::srand(1);
  auto fill = [](float* a, int count, float scale) {
    for (int i = 0; i < count; ++i) a[i] = (static_cast<float>(std::rand()) / RAND_MAX - 0.5f) * scale;
  };
  fill(n.w1, kHidden * kIn, 0.1f);
  fill(n.w2, kHidden * kHidden, 0.15f);
  fill(n.w3, kOut * kHidden, 0.15f);
  std::fill(n.b1, n.b1 + kHidden, 0.0f);
  std::fill(n.b2, n.b2 + kHidden, 0.0f);
  std::fill(n.b3, n.b3 + 16, 0.0f);
  for (int i = 0; i < 16; ++i) n.y[i] = i == 3;
  for (int i = 0; i < kIn; ++i) n.x[i] = static_cast<float>(i % 13) / 13.0f;

  // The two orders give the same gradient.
  gradient(n, false);
  const std::vector<float> g1(n.g1, n.g1 + kHidden * kIn), g2(n.g2, n.g2 + kHidden * kHidden);
  std::fill(n.g1, n.g1 + kHidden * kIn, NAN);
  std::fill(n.g2, n.g2 + kHidden * kHidden, NAN);
  gradient(n, true);
  for (int i = 0; i < kHidden * kIn; ++i)
    if (!(std::fabs(n.g1[i] - g1[static_cast<size_t>(i)]) <= 1e-6f)) {
      std::fprintf(stderr, "gradient_floor: dW1[%d] differs: %g against %g\n", i, n.g1[i], g1[static_cast<size_t>(i)]);
      return 1;
    }
  for (int i = 0; i < kHidden * kHidden; ++i)
    if (!(std::fabs(n.g2[i] - g2[static_cast<size_t>(i)]) <= 1e-6f)) {
      std::fprintf(stderr, "gradient_floor: dW2[%d] differs\n", i);
      return 1;
    }
  int active = 0;
  for (float z : n.z1) active += z > 0;

  volatile float sink = 0;
  const double fwd = best_us([&] { sink = sink + forward(n, false); });
  const double grad = best_us([&] { sink = sink + gradient(n, false); });
  const double reordered = best_us([&] { sink = sink + gradient(n, true); });
  n.store = false;
  const double bound = best_us([&] { sink = sink + gradient(n, false); });
  std::printf("{\"active_units\": %d, \"forward_us\": %.2f, \"gradient_us\": %.2f, \"gradient_ratio\": %.2f, "
              "\"reordered_us\": %.2f, \"reordered_ratio\": %.2f, \"no_stores_us\": %.2f, \"no_stores_ratio\": %.2f}\n",
              active, fwd, grad, grad / fwd, reordered, reordered / fwd, bound, bound / fwd);
  return 0;
}
