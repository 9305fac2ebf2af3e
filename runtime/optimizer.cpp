#include "runtime/optimizer.h"

namespace nabla::runtime {
namespace {

template <typename T>
void sgd(T* __restrict p, const T* __restrict g, int64_t n, T lr) {
  for (int64_t i = 0; i < n; ++i) p[i] -= lr * g[i];
}

}  // namespace

void sgd_update(float* p, const float* g, int64_t n, float lr) { sgd(p, g, n, lr); }
void sgd_update(double* p, const double* g, int64_t n, double lr) { sgd(p, g, n, lr); }

}  // namespace nabla::runtime
