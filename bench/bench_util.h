// Timing with the methodology of ../shared/baselines (bench_common.hpp,
// bench_util.py), so figures compare side by side: warm-up for >= 0.1 s and
// >= 3 calls, iterations per repetition calibrated to ~0.1 s, 7 repetitions,
// the median / min / max of the per-call time reported.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

namespace nabla::bench {

struct Timing {
  double median_s, min_s, max_s;
  long iterations;  // per repetition
};

inline double env_or(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : fallback;
}

template <typename F>
Timing measure(F&& fn) {
  using clock = std::chrono::steady_clock;
  const double target = env_or("BENCH_TARGET_S", 0.1), warmup = env_or("BENCH_WARMUP_S", 0.1);
  const int reps = static_cast<int>(env_or("BENCH_REPS", 7));
  auto seconds = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
  long calls = 0;
  const auto w0 = clock::now();
  while (calls < 3 || seconds(clock::now() - w0) < warmup) {
    fn();
    ++calls;
  }
  const double per_call = seconds(clock::now() - w0) / static_cast<double>(calls);
  const long iters = std::max(1L, static_cast<long>(target / std::max(per_call, 1e-9)));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i) fn();
    t.push_back(seconds(clock::now() - t0) / static_cast<double>(iters));
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), t.back(), iters};
}

}  // namespace nabla::bench
