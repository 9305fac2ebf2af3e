#include "runtime/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>

#include "runtime/aligned.h"
#include "runtime/optimizer.h"

namespace nabla::runtime {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int elem_bytes(DType t) { return t == DType::F32 ? 4 : 8; }

const char* bytes_of(const Array& a) { return static_cast<const char*>(a.bytes()); }
char* bytes_of(Array& a) { return static_cast<char*>(a.bytes()); }

double value_at(const char* base, DType t, int64_t i) {
  return t == DType::F32 ? reinterpret_cast<const float*>(base)[i] : reinterpret_cast<const double*>(base)[i];
}

// Contiguous copies of the samples `idx` of each array (a minibatch).
class Gather {
public:
  void fill(const std::vector<const Array*>& arrays, const std::vector<int64_t>& sizes, const int64_t* idx,
            int64_t count) {
    buffers_.resize(arrays.size());
    pointers_.assign(arrays.size(), nullptr);
    for (size_t a = 0; a < arrays.size(); ++a) {
      const int eb = elem_bytes(arrays[a]->dtype);
      const size_t row = static_cast<size_t>(sizes[a] * eb);
      buffers_[a].resize(row * static_cast<size_t>(count));
      const char* src = bytes_of(*arrays[a]);
      for (int64_t s = 0; s < count; ++s)
        std::memcpy(buffers_[a].data() + row * static_cast<size_t>(s), src + row * static_cast<size_t>(idx[s]), row);
      pointers_[a] = buffers_[a].data();
    }
  }
  const std::vector<const void*>& pointers() const { return pointers_; }

private:
  std::vector<AlignedVector<char>> buffers_;
  std::vector<const void*> pointers_;
};

template <typename T>
bool all_finite(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

bool finite(const void* p, int64_t n, DType t) {
  return t == DType::F32 ? all_finite(static_cast<const float*>(p), n) : all_finite(static_cast<const double*>(p), n);
}

template <typename T>
double norm(const T* p, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  return std::sqrt(s);
}

// The optimizers' updates of one param from its mean gradient g.
// `scale` times g is the mean gradient (1 on one process; across processes
// g is a sum, scaled here rather than in a pass of its own).
template <typename T>
void update(Optimizer opt, const TrainConfig& c, int64_t step, T* p, const T* g, T scale, T* m, T* v, int64_t n) {
  const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.weight_decay);
  switch (opt) {
    case Optimizer::Sgd:
      for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] * scale + wd * p[i]);
      return;
    case Optimizer::Momentum: {
      const T mu = static_cast<T>(c.momentum);
      for (int64_t i = 0; i < n; ++i) {
        m[i] = mu * m[i] + g[i] * scale + wd * p[i];
        p[i] -= lr * m[i];
      }
      return;
    }
    case Optimizer::Adam: {
      const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2), eps = static_cast<T>(c.eps);
      const T c1 = static_cast<T>(1 - std::pow(c.beta1, static_cast<double>(step)));
      const T c2 = static_cast<T>(1 - std::pow(c.beta2, static_cast<double>(step)));
      for (int64_t i = 0; i < n; ++i) {
        const T gi = g[i] * scale + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
      }
      return;
    }
  }
}


// Index of the largest of `k` values at `base` (first on ties).
int64_t argmax(const char* base, DType t, int64_t at, int64_t k) {
  int64_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (value_at(base, t, at + j) > value_at(base, t, at + best)) best = j;
  return best;
}

}  // namespace

EpochStats evaluate(const TrainModel& model, const TrainData& data, const ArrayMap& params, int64_t batch,
                    bool loss, int64_t begin, int64_t end) {
  EpochStats st;
  if (end < 0) end = data.n;
  if (end <= begin) return st;
  const DType t = params.begin()->second.dtype;
  const int eb = elem_bytes(t);
  std::vector<const void*> par;
  for (const std::string& name : model.param_names) par.push_back(bytes_of(params.at(name)));
  // The gradient kernel's gradients (the loss without an evaluation kernel).
  std::vector<AlignedVector<char>> grads(loss && !model.eval ? model.param_sizes.size() : 0);
  std::vector<void*> gp;
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i].resize(static_cast<size_t>(model.param_sizes[i] * eb));
    gp.push_back(grads[i].data());
  }
  std::vector<AlignedVector<char>> outs(model.output_sizes.size());
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<int64_t> idx(static_cast<size_t>(batch));
  Gather in, lab;
  // The accuracy output's buffer for `count` samples; after the call, the
  // samples whose argmax is the label's.
  const size_t acc = static_cast<size_t>(std::max(model.accuracy_output, 0));
  const int64_t classes = model.accuracy_output >= 0 ? model.output_sizes[acc] : 0;
  auto prediction_buffer = [&](int64_t count) {
    outs[acc].resize(static_cast<size_t>(classes * count * eb));
    return static_cast<void*>(outs[acc].data());
  };
  auto count_correct = [&](int64_t count) {
    const char* truth = static_cast<const char*>(lab.pointers()[static_cast<size_t>(model.accuracy_label)]);
    for (int64_t s = 0; s < count; ++s)
      correct += argmax(outs[acc].data(), t, s * classes, classes) == argmax(truth, t, s * classes, classes);
  };
  // With the evaluation kernel: its arguments (the inputs, then the
  // labels) and outputs (the accuracy output, then each sample's loss).
  const bool one_pass = loss && model.eval;
  AlignedVector<char> losses;
  std::vector<const void*> eval_in;
  for (int64_t first = begin; first < end; first += batch) {
    const int64_t count = std::min(batch, end - first);
    std::iota(idx.begin(), idx.begin() + count, first);
    in.fill(data.inputs, model.input_sizes, idx.data(), count);
    lab.fill(data.labels, model.label_sizes, idx.data(), count);
    if (one_pass) {
      std::vector<void*> op;
      if (model.accuracy_output >= 0) op.push_back(prediction_buffer(count));
      losses.resize(static_cast<size_t>(count * eb));
      op.push_back(losses.data());
      eval_in = in.pointers();
      eval_in.insert(eval_in.end(), lab.pointers().begin(), lab.pointers().end());
      model.eval->forward(eval_in, par, op, count);
      for (int64_t s = 0; s < count; ++s) loss_sum += value_at(losses.data(), t, s);
      if (model.accuracy_output >= 0) count_correct(count);
      continue;
    }
    if (loss) {
      double loss_slot = 0;
      model.executor->grad(in.pointers(), lab.pointers(), par, &loss_slot, gp, count);
      loss_sum += value_at(reinterpret_cast<const char*>(&loss_slot), t, 0) * static_cast<double>(count);
    }
    if (model.accuracy_output >= 0) {
      std::vector<void*> op;
      for (size_t o = 0; o < outs.size(); ++o) {
        outs[o].resize(static_cast<size_t>(model.output_sizes[o] * count * eb));
        op.push_back(outs[o].data());
      }
      model.executor->forward(in.pointers(), par, op, count);
      count_correct(count);
    }
  }
  st.samples = end - begin;
  st.loss = loss_sum / static_cast<double>(st.samples);
  if (model.accuracy_output >= 0) st.accuracy = static_cast<double>(correct) / static_cast<double>(st.samples);
  return st;
}

namespace {

// One training run: the params' buffers, the gradients and optimizer state,
// the shuffled order, and what has been saved. With a communicator
// (TrainConfig::comm), one process of a data-parallel job: the gradients of
// all params lie in one flat buffer, followed by the step's loss, sample
// count and stop vote, and one allreduce per step sums them.
class Trainer {
public:
  Trainer(const TrainModel& model, const TrainConfig& c, const TrainData& data, const TrainData* val,
          ArrayMap& params, const TrainCallbacks& callbacks)
      : model_(model), c_(c), data_(data), val_(val), params_(params), callbacks_(callbacks),
        t_(params.begin()->second.dtype), np_(model.param_names.size()), comm_(c.comm),
        // The fused SGD kernel does the textbook update in one call; across
        // processes the gradient must be summed between the two.
        fused_(c.optimizer == Optimizer::Sgd && c.weight_decay == 0 && !c.grad_norms && !c.comm),
        local_batch_(c.comm ? c.batch / c.comm->size() : c.batch) {
    // Shards take batch / size samples a step each; a batch of the one data
    // set is sliced as it falls (slice()), whatever its size.
    if (comm_ && c.sharded && (c.batch % comm_->size() != 0 || local_batch_ < 1))
      throw std::invalid_argument("the global batch (" + std::to_string(c.batch) + ") must be a multiple of the " +
                                  std::to_string(comm_->size()) + " processes");
    for (const std::string& name : model.param_names) {
      par_.push_back(bytes_of(params.at(name)));
      cpar_.push_back(par_.back());
    }
    m_.resize(np_);
    v_.resize(np_);
    const int eb = elem_bytes(t_);
    total_ = 0;
    for (size_t i = 0; i < np_; ++i) {
      // Each gradient starts on a cache line (runtime/aligned.h); the gaps
      // stay zero, which the sums over the whole vector leave as they are.
      total_ = line_aligned(total_, eb);
      offsets_.push_back(total_);
      total_ += model.param_sizes[i];
      const size_t bytes = static_cast<size_t>(model.param_sizes[i] * eb);
      if (c.optimizer != Optimizer::Sgd) m_[i].assign(bytes, 0);
      if (c.optimizer == Optimizer::Adam) v_[i].assign(bytes, 0);
    }
    flat_.assign(static_cast<size_t>((total_ + kExtra) * eb), 0);
    for (size_t i = 0; i < np_; ++i) gp_.push_back(flat_.data() + offsets_[i] * eb);
    order_.resize(static_cast<size_t>(data.n));
    std::iota(order_.begin(), order_.end(), int64_t{0});
    samples_ = data.n;
    steps_per_epoch_ = c.sharded && comm_ ? (data.n + local_batch_ - 1) / local_batch_ : (data.n + c.batch - 1) / c.batch;
    if (comm_ && c.sharded) {  // every process takes as many steps as the one with the most samples
      double v[2] = {static_cast<double>(steps_per_epoch_), static_cast<double>(data.n)};
      comm_->allreduce(&v[0], 1, DType::F64, ReduceOp::Max);
      comm_->allreduce(&v[1], 1, DType::F64, ReduceOp::Sum);
      steps_per_epoch_ = static_cast<int64_t>(v[0]);
      samples_ = static_cast<int64_t>(v[1]);
    }
  }

  TrainResult run() {
    if (comm_)  // every process starts from rank 0's params
      for (size_t i = 0; i < np_; ++i) comm_->broadcast(par_[i], model_.param_sizes[i] * elem_bytes(t_), 0);
    // Params that are not finite to begin with are the input's fault, said
    // as such (the first step's loss would be NaN, blamed on overflow).
    for (size_t i = 0; i < np_; ++i)
      if (!finite(par_[i], model_.param_sizes[i], t_)) {
        fail(TrainStatus::NonFinite, "the initial parameters are not finite: '" + model_.param_names[i] +
                                         "' holds NaN or infinity; nothing was trained");
        return result_;
      }
    for (int epoch = 1; epoch <= c_.epochs; ++epoch) {
      result_.epoch = epoch;
      if (!run_epoch(epoch)) return result_;
    }
    return result_;
  }

private:
  // After the gradients in the flat buffer: the loss (times the samples),
  // the samples, the stop vote.
  static constexpr int64_t kExtra = 3;

  // The samples of step b this process computes, order_[lo, hi), and the
  // step's samples on all processes (-1: unknown, with shards).
  struct Slice {
    int64_t lo = 0, hi = 0, global = -1;
  };
  Slice slice(int64_t b) const {
    if (!comm_) {
      const int64_t first = b * c_.batch, last = std::min(first + c_.batch, data_.n);
      return {first, last, last - first};
    }
    if (c_.sharded) {
      const int64_t first = b * local_batch_;
      return {std::min(first, data_.n), std::min(first + local_batch_, data_.n), -1};
    }
    const int64_t first = b * c_.batch, count = std::min(c_.batch, data_.n - first);
    const int64_t r = comm_->rank(), n = comm_->size();
    return {first + count * r / n, first + count * (r + 1) / n, count};
  }

  // One epoch, its figures reported and its params saved; false when
  // training ends here (result_ says why).
  bool run_epoch(int epoch) {
    const auto t0 = Clock::now();
    allreduce_seconds_ = 0;
    // The shuffle is the same on every process, but for shards.
    const uint64_t stream = c_.sharded && comm_ ? static_cast<uint64_t>(comm_->rank()) * 7919 : 0;
    std::mt19937_64 rng(c_.seed * 1000003 + static_cast<uint64_t>(epoch) + stream);
    std::shuffle(order_.begin(), order_.end(), rng);
    double loss_sum = 0;
    std::vector<double> norms(np_, 0);
    int64_t done = 0;
    for (int64_t b = 0; b < steps_per_epoch_; ++b) {
      const Slice share = slice(b);
      Step s;
      s.stop = comm_ && callbacks_.should_stop && callbacks_.should_stop();  // voted with the gradients
      if (!step(epoch, share, norms, s)) return false;
      loss_sum += s.loss * static_cast<double>(s.samples);
      done += s.samples;
      if (callbacks_.on_step)
        callbacks_.on_step(
            {epoch, c_.epochs, result_.steps, done, samples_, loss_sum / static_cast<double>(done), seconds_since(t0)});
      if (comm_ ? s.stop : callbacks_.should_stop && callbacks_.should_stop()) {
        result_.status = TrainStatus::Stopped;
        result_.save_error = save();
        return false;
      }
    }
    if (fused_) {  // the fused kernel's gradients are not kept: check what they made
      for (size_t i = 0; i < np_; ++i)
        if (!finite(par_[i], model_.param_sizes[i], t_))
          return fail(TrainStatus::NonFinite, "epoch " + std::to_string(epoch) + ": '" + model_.param_names[i] +
                                                  "' is not finite (a non-finite gradient); stopped" + last_saved());
    }
    const EpochStats st = stats(epoch, loss_sum, norms, seconds_since(t0));
    bool go_on = !callbacks_.on_epoch || callbacks_.on_epoch(st);
    std::string error = save();
    if (comm_) {  // every process ends where any asked to, or where rank 0 could not save
      double votes[2] = {go_on ? 0.0 : 1.0, error.empty() ? 0.0 : 1.0};
      comm_->allreduce(votes, 2, DType::F64, ReduceOp::Max);
      go_on = votes[0] == 0;
      if (votes[1] != 0 && error.empty()) error = "rank 0 could not save the parameters to " + c_.out;
    }
    if (!error.empty()) return fail(TrainStatus::SaveFailed, error);
    if (!go_on && epoch < c_.epochs) {
      result_.status = TrainStatus::Stopped;
      return false;
    }
    return true;
  }

  // What one step did: its loss (the mean over its samples, on every
  // process), its samples (on every process), and the stop vote (in: this
  // process's; out: any process's).
  struct Step {
    double loss = 0;
    int64_t samples = 0;
    bool stop = false;
  };

  // One minibatch (this process's samples order_[lo, hi)): the fused step,
  // or the gradient (summed across processes) and the optimizer's update.
  // False when something stopped being finite.
  bool step(int epoch, const Slice& share, std::vector<double>& norms, Step& s) {
    const int64_t lo = share.lo, count = share.hi - share.lo;
    if (count > 0) {
      in_.fill(data_.inputs, model_.input_sizes, order_.data() + lo, count);
      lab_.fill(data_.labels, model_.label_sizes, order_.data() + lo, count);
    }
    const int64_t step = ++result_.steps;
    const std::string where = "step " + std::to_string(step) + " (epoch " + std::to_string(epoch) + ")";
    double loss_slot = 0;
    s.samples = count;
    if (fused_) {
      model_.executor->sgd_step(in_.pointers(), lab_.pointers(), par_, &loss_slot, c_.lr, count);
      s.loss = value_at(reinterpret_cast<const char*>(&loss_slot), t_, 0);
    } else {
      if (count > 0) model_.executor->grad(in_.pointers(), lab_.pointers(), cpar_, &loss_slot, gp_, count);
      s.loss = count > 0 ? value_at(reinterpret_cast<const char*>(&loss_slot), t_, 0) : 0;
      if (comm_) reduce(s, count, share.global);
      if (s.samples == 0) return true;  // no process had a sample (shards of unequal sizes end so)
      for (size_t i = 0; i < np_; ++i) {
        if (!finite(gp_[i], model_.param_sizes[i], t_))
          return fail(TrainStatus::NonFinite, where + ": the gradient of '" + model_.param_names[i] +
                                                  "' is not finite" + why_not_finite(step, count) +
                                                  "; stopped" + last_saved());
        if (c_.grad_norms)
          norms[i] += scale_ * (t_ == DType::F32 ? norm(static_cast<const float*>(gp_[i]), model_.param_sizes[i])
                                                 : norm(static_cast<const double*>(gp_[i]), model_.param_sizes[i]));
        update_param(i, step);
      }
    }
    if (std::isfinite(s.loss)) return true;
    return fail(TrainStatus::NonFinite, where + ": the loss is " + loss_text(s.loss) + why_not_finite(step, count) +
                                            "; stopped" + last_saved());
  }

  // "nan" (whatever its sign bit), "inf", "-inf".
  static std::string loss_text(double loss) {
    if (std::isnan(loss)) return "nan";  // printf says "-nan" for some
    char value[32];
    std::snprintf(value, sizeof value, "%g", loss);
    return value;
  }

  // Why a step's loss is not finite, as far as can be told: the batch's
  // data (this process's `count` samples), the initial params (step 1), or
  // training that diverged (a param no longer finite: this step's update,
  // made with the non-finite gradient, or an earlier one).
  std::string why_not_finite(int64_t step, int64_t count) const {
    const std::vector<const void*> in = in_.pointers(), lab = lab_.pointers();
    for (size_t i = 0; i < in.size(); ++i)
      if (count > 0 && !finite(in[i], model_.input_sizes[i] * count, t_))
        return " (the batch's input '" + data_.input_names[i] + "' is not finite: the data, not the training)";
    for (size_t i = 0; i < lab.size(); ++i)
      if (count > 0 && !finite(lab[i], model_.label_sizes[i] * count, t_))
        return " (the batch's label '" + data_.label_names[i] + "' is not finite: the data, not the training)";
    if (step == 1) return " at the initial parameters (the model's values overflow on this batch)";
    for (size_t i = 0; i < np_; ++i)
      if (!finite(par_[i], model_.param_sizes[i], t_))
        return " ('" + model_.param_names[i] + "' is no longer finite: training diverged; a smaller learning rate "
               "may help)";
    return " (the params are finite: the model's values overflow on this batch)";
  }


  // The step's gradient and loss over every process's samples, by one
  // allreduce of the flat buffer: the sum of the processes' mean gradients
  // when their shares are equal (the mean is that over the processes), else
  // of their means weighted by their samples (over all the samples). The
  // division is left to the update (scale_).
  void reduce(Step& s, int64_t count, int64_t global) {
    if (t_ == DType::F32) reduce_as<float>(s, count, global);
    else reduce_as<double>(s, count, global);
  }
  template <typename T>
  void reduce_as(Step& s, int64_t count, int64_t global) {
    const int64_t procs = comm_->size();
    // Equal shares: the step's samples split evenly (every process knows
    // that from the same slice() arithmetic, without asking).
    const bool equal = global > 0 && global % procs == 0;
    T* g = reinterpret_cast<T*>(flat_.data());
    if (!equal) {  // (equal shares are never empty)
      const T w = static_cast<T>(count);
      for (int64_t i = 0; i < total_; ++i) g[i] = count > 0 ? g[i] * w : T(0);
    }
    g[total_] = static_cast<T>(s.loss) * static_cast<T>(count);
    g[total_ + 1] = static_cast<T>(count);
    g[total_ + 2] = s.stop ? T(1) : T(0);
    const auto t0 = Clock::now();
    comm_->allreduce(g, total_ + kExtra, t_, ReduceOp::Sum);
    allreduce_seconds_ += seconds_since(t0);
    const T all = g[total_ + 1];
    s.samples = static_cast<int64_t>(all);
    s.stop = g[total_ + 2] > 0;
    if (s.samples == 0) return;
    scale_ = equal && count > 0 ? 1.0 / static_cast<double>(procs) : 1.0 / static_cast<double>(all);
    s.loss = static_cast<double>(g[total_]) / static_cast<double>(all);
  }

  void update_param(size_t i, int64_t step) {
    if (t_ == DType::F32)
      update(c_.optimizer, c_, step, static_cast<float*>(par_[i]), static_cast<const float*>(gp_[i]),
             static_cast<float>(scale_), reinterpret_cast<float*>(m_[i].data()),
             reinterpret_cast<float*>(v_[i].data()), model_.param_sizes[i]);
    else
      update(c_.optimizer, c_, step, static_cast<double*>(par_[i]), static_cast<const double*>(gp_[i]), scale_,
             reinterpret_cast<double*>(m_[i].data()), reinterpret_cast<double*>(v_[i].data()),
             model_.param_sizes[i]);
  }

  // Loss and accuracy of `data`: across processes, each evaluates its part
  // (its slice; its own shards when `local`) and the sums are combined.
  EpochStats evaluate_all(const TrainData& data, bool loss, bool local) const {
    const int64_t batch = std::max<int64_t>(c_.batch, 256);
    if (!comm_) return evaluate(model_, data, params_, batch, loss);
    int64_t lo = 0, hi = data.n;
    if (!local) {
      lo = data.n * comm_->rank() / comm_->size();
      hi = data.n * (comm_->rank() + 1) / comm_->size();
    }
    EpochStats e = evaluate(model_, data, params_, batch, loss, lo, hi);
    const double n = static_cast<double>(hi - lo);
    double sums[3] = {hi > lo ? e.loss * n : 0, hi > lo && e.accuracy >= 0 ? e.accuracy * n : 0, n};
    comm_->allreduce(sums, 3, DType::F64, ReduceOp::Sum);
    e.loss = sums[0] / sums[2];
    e.accuracy = model_.accuracy_output >= 0 ? sums[1] / sums[2] : -1;
    return e;
  }

  // The epoch's figures: its loss, validation or training accuracy, norms.
  EpochStats stats(int epoch, double loss_sum, const std::vector<double>& norms, double seconds) const {
    EpochStats st;
    st.epoch = epoch;
    st.epochs = c_.epochs;
    st.samples = samples_;
    st.steps = steps_per_epoch_;
    st.loss = loss_sum / static_cast<double>(samples_);
    st.seconds = seconds;
    st.allreduce_seconds = allreduce_seconds_;
    if (val_) {
      const EpochStats e = evaluate_all(*val_, true, false);
      st.val_loss = e.loss;
      st.val_accuracy = e.accuracy;
    } else if (model_.accuracy_output >= 0) {  // no validation set: accuracy on the training data
      st.accuracy = evaluate_all(data_, false, c_.sharded).accuracy;
    }
    if (c_.grad_norms)
      for (double n : norms) st.grad_norms.push_back(n / static_cast<double>(steps_per_epoch_));
    return st;
  }

  // "" when saved (or nothing to save, or not rank 0), else why not.
  std::string save() {
    if (c_.out.empty()) return "";
    if (comm_ && comm_->rank() != 0) {
      saved_ = c_.out + " (by rank 0)";
      return "";
    }
    try {
      write_npz(c_.out, params_);
      saved_ = c_.out;
      return "";
    } catch (const std::runtime_error& e) {  // NpzError, OutputError
      return e.what();
    }
  }

  bool fail(TrainStatus status, std::string message) {
    result_.status = status;
    result_.message = std::move(message);
    return false;
  }

  const TrainModel& model_;
  const TrainConfig& c_;
  const TrainData& data_;
  const TrainData* val_;
  ArrayMap& params_;
  const TrainCallbacks& callbacks_;
  const DType t_;
  const size_t np_;
  const Comm* comm_;
  const bool fused_;
  const int64_t local_batch_;
  int64_t steps_per_epoch_ = 0, samples_ = 0, total_ = 0;
  double allreduce_seconds_ = 0;  // this epoch's
  double scale_ = 1;              // times the flat gradients: their mean (reduce)
  std::vector<void*> par_, gp_;
  std::vector<const void*> cpar_;
  std::vector<int64_t> offsets_;
  AlignedVector<char> flat_;               // the gradients (each 64-byte aligned), then kExtra slots
  std::vector<AlignedVector<char>> m_, v_;  // optimizer state
  std::vector<int64_t> order_;
  Gather in_, lab_;
  TrainResult result_;
  std::string saved_ = "(none yet)";
  // ". Last saved parameters: FILE" when training saves to a file (none
  // when a library caller trains in memory: its params are as they were).
  std::string last_saved() const { return c_.out.empty() ? "" : ". Last saved parameters: " + saved_; }
};

}  // namespace

TrainResult train(const TrainModel& model, const TrainConfig& c, const TrainData& data, const TrainData* val,
                  ArrayMap& params, const TrainCallbacks& callbacks) {
  return Trainer(model, c, data, val, params, callbacks).run();
}

}  // namespace nabla::runtime
