// Whether a _par kernel call runs its large products on the thread pool or
// on the calling thread alone, decided by timing both on this machine, now.
//
// Both ways compute the same bits (a _par kernel gives the plain kernel's
// values on any number of tasks, a null runner included), so the choice
// changes the time of a call and nothing else. Whether the split pays
// depends on more than the CPU's properties the kernels are compiled from:
// on a 2-vCPU virtual machine the same MNIST step at batch 32 took 108 us on
// two threads against 168 on one in one hour, and 172 against 168 in the
// next, the threads' data moving slowly between the cores (bench/RESULTS.md,
// issue 14). So the executor measures, and measures again.
//
// The protocol, per call site and batch size:
//   - a trial of a mode is kBlock calls in that mode; the first is not
//     counted (the weights' rows move into the caches that mode uses), the
//     others' median is the mode's time;
//   - the first two trials: the pool, then the caller alone; the faster is
//     kept (the pool on a tie);
//   - every kKeep calls after that, one trial of the other mode, against
//     the median of the last kBlock - 1 calls of the kept one; the faster
//     is kept.
// At most kBlock of every kKeep + kBlock calls run in the slower mode.
#pragma once

#include <array>
#include <cstdint>

namespace nabla::runtime {

class PoolChoice {
public:
  static constexpr int kBlock = 6;
  static constexpr int64_t kKeep = 250;

  // Whether the next call should use the pool.
  bool use_pool() const { return trial_ >= 0 ? trial_ == 1 : kept_pool_; }
  // The call just made: the mode use_pool() said, and its duration.
  void record(double seconds);
  // The mode kept between trials (for tests and reports).
  bool kept_pool() const { return kept_pool_; }

private:
  static double median(std::array<double, kBlock - 1> v);

  int trial_ = 1;          // the mode on trial (1 the pool, 0 alone), or -1 between trials
  int in_trial_ = 0;       // calls made in this trial
  bool first_round_ = true;
  bool kept_pool_ = true;
  double pool_time_ = 0;   // the first round's pool median
  std::array<double, kBlock - 1> trial_times_{};
  std::array<double, kBlock - 1> recent_{};  // the kept mode's last calls, a ring
  int recent_count_ = 0;
  int64_t since_trial_ = 0;
};

}  // namespace nabla::runtime
