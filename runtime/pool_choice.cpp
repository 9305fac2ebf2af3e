#include "runtime/pool_choice.h"

#include <algorithm>

namespace nabla::runtime {

double PoolChoice::median(std::array<double, kBlock - 1> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void PoolChoice::record(double seconds) {
  if (trial_ < 0) {  // the kept mode: remember its last calls; trial the other mode now and then
    recent_[static_cast<size_t>(recent_count_ % (kBlock - 1))] = seconds;
    ++recent_count_;
    if (++since_trial_ >= kKeep && recent_count_ >= kBlock - 1) {
      trial_ = kept_pool_ ? 0 : 1;
      in_trial_ = 0;
    }
    return;
  }
  if (in_trial_ > 0) trial_times_[static_cast<size_t>(in_trial_ - 1)] = seconds;  // the first is not counted
  if (++in_trial_ < kBlock) return;
  const double t = median(trial_times_);
  if (first_round_) {
    if (trial_ == 1) {  // the pool timed; now the caller alone
      pool_time_ = t;
      trial_ = 0;
      in_trial_ = 0;
      return;
    }
    kept_pool_ = pool_time_ <= t;
    first_round_ = false;
  } else if (t < median(recent_)) {
    kept_pool_ = trial_ == 1;
  }
  trial_ = -1;
  since_trial_ = 0;
  recent_count_ = 0;
}

}  // namespace nabla::runtime
