#include "runtime/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

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
  std::vector<std::vector<char>> buffers_;
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
template <typename T>
void update(Optimizer opt, const TrainConfig& c, int64_t step, T* p, const T* g, T* m, T* v, int64_t n) {
  const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.weight_decay);
  switch (opt) {
    case Optimizer::Sgd:
      for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
      return;
    case Optimizer::Momentum: {
      const T mu = static_cast<T>(c.momentum);
      for (int64_t i = 0; i < n; ++i) {
        m[i] = mu * m[i] + g[i] + wd * p[i];
        p[i] -= lr * m[i];
      }
      return;
    }
    case Optimizer::Adam: {
      const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2), eps = static_cast<T>(c.eps);
      const T c1 = static_cast<T>(1 - std::pow(c.beta1, static_cast<double>(step)));
      const T c2 = static_cast<T>(1 - std::pow(c.beta2, static_cast<double>(step)));
      for (int64_t i = 0; i < n; ++i) {
        const T gi = g[i] + wd * p[i];
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
                    bool loss) {
  EpochStats st;
  if (data.n <= 0) return st;
  const DType t = params.begin()->second.dtype;
  const int eb = elem_bytes(t);
  std::vector<const void*> par;
  for (const std::string& name : model.param_names) par.push_back(bytes_of(params.at(name)));
  std::vector<std::vector<char>> grads(model.param_sizes.size());
  std::vector<void*> gp;
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i].resize(static_cast<size_t>(model.param_sizes[i] * eb));
    gp.push_back(grads[i].data());
  }
  std::vector<std::vector<char>> outs(model.output_sizes.size());
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<int64_t> idx(static_cast<size_t>(batch));
  Gather in, lab;
  for (int64_t first = 0; first < data.n; first += batch) {
    const int64_t count = std::min(batch, data.n - first);
    std::iota(idx.begin(), idx.begin() + count, first);
    in.fill(data.inputs, model.input_sizes, idx.data(), count);
    lab.fill(data.labels, model.label_sizes, idx.data(), count);
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
      const int64_t k = model.output_sizes[static_cast<size_t>(model.accuracy_output)];
      const char* pred = outs[static_cast<size_t>(model.accuracy_output)].data();
      const char* truth = static_cast<const char*>(lab.pointers()[static_cast<size_t>(model.accuracy_label)]);
      for (int64_t s = 0; s < count; ++s) correct += argmax(pred, t, s * k, k) == argmax(truth, t, s * k, k);
    }
  }
  st.loss = loss_sum / static_cast<double>(data.n);
  if (model.accuracy_output >= 0) st.accuracy = static_cast<double>(correct) / static_cast<double>(data.n);
  return st;
}

namespace {

// One training run: the params' buffers, the gradients and optimizer state,
// the shuffled order, and what has been saved.
class Trainer {
public:
  Trainer(const TrainModel& model, const TrainConfig& c, const TrainData& data, const TrainData* val,
          ArrayMap& params, const TrainCallbacks& callbacks)
      : model_(model), c_(c), data_(data), val_(val), params_(params), callbacks_(callbacks),
        t_(params.begin()->second.dtype), np_(model.param_names.size()),
        // The fused SGD kernel does the textbook update in one call.
        fused_(c.optimizer == Optimizer::Sgd && c.weight_decay == 0 && !c.grad_norms),
        steps_per_epoch_((data.n + c.batch - 1) / c.batch) {
    for (const std::string& name : model.param_names) {
      par_.push_back(bytes_of(params.at(name)));
      cpar_.push_back(par_.back());
    }
    grads_.resize(np_);
    m_.resize(np_);
    v_.resize(np_);
    for (size_t i = 0; i < np_; ++i) {
      const size_t bytes = static_cast<size_t>(model.param_sizes[i] * elem_bytes(t_));
      grads_[i].resize(bytes);
      gp_.push_back(grads_[i].data());
      if (c.optimizer != Optimizer::Sgd) m_[i].assign(bytes, 0);
      if (c.optimizer == Optimizer::Adam) v_[i].assign(bytes, 0);
    }
    order_.resize(static_cast<size_t>(data.n));
    std::iota(order_.begin(), order_.end(), int64_t{0});
  }

  TrainResult run() {
    for (int epoch = 1; epoch <= c_.epochs; ++epoch) {
      result_.epoch = epoch;
      if (!run_epoch(epoch)) return result_;
    }
    return result_;
  }

private:
  // One epoch, its figures reported and its params saved; false when
  // training ends here (result_ says why).
  bool run_epoch(int epoch) {
    const auto t0 = Clock::now();
    std::mt19937_64 rng(c_.seed * 1000003 + static_cast<uint64_t>(epoch));
    std::shuffle(order_.begin(), order_.end(), rng);
    double loss_sum = 0;
    std::vector<double> norms(np_, 0);
    int64_t done = 0;
    for (int64_t b = 0; b < steps_per_epoch_; ++b) {
      const int64_t first = b * c_.batch, count = std::min(c_.batch, data_.n - first);
      double loss = 0;
      if (!step(epoch, first, count, norms, &loss)) return false;
      loss_sum += loss * static_cast<double>(count);
      done += count;
      if (callbacks_.on_step)
        callbacks_.on_step(
            {epoch, c_.epochs, result_.steps, done, data_.n, loss_sum / static_cast<double>(done), seconds_since(t0)});
      if (callbacks_.should_stop && callbacks_.should_stop()) {
        result_.status = TrainStatus::Stopped;
        result_.save_error = save();
        return false;
      }
    }
    if (fused_) {  // the fused kernel's gradients are not kept: check what they made
      for (size_t i = 0; i < np_; ++i)
        if (!finite(par_[i], model_.param_sizes[i], t_))
          return fail(TrainStatus::NonFinite, "epoch " + std::to_string(epoch) + ": '" + model_.param_names[i] +
                                                  "' is not finite (a non-finite gradient); stopped. Last saved "
                                                  "parameters: " + saved_);
    }
    const EpochStats st = stats(epoch, loss_sum, norms, seconds_since(t0));
    const bool go_on = !callbacks_.on_epoch || callbacks_.on_epoch(st);
    if (std::string error = save(); !error.empty()) return fail(TrainStatus::SaveFailed, error);
    if (!go_on && epoch < c_.epochs) {
      result_.status = TrainStatus::Stopped;
      return false;
    }
    return true;
  }

  // One minibatch (samples order_[first, first + count)): the fused step, or
  // the gradient and the optimizer's update. The batch's loss to *loss;
  // false when something stopped being finite.
  bool step(int epoch, int64_t first, int64_t count, std::vector<double>& norms, double* loss) {
    in_.fill(data_.inputs, model_.input_sizes, order_.data() + first, count);
    lab_.fill(data_.labels, model_.label_sizes, order_.data() + first, count);
    const int64_t step = ++result_.steps;
    const std::string where = "step " + std::to_string(step) + " (epoch " + std::to_string(epoch) + ")";
    double loss_slot = 0;
    if (fused_) {
      model_.executor->sgd_step(in_.pointers(), lab_.pointers(), par_, &loss_slot, c_.lr, count);
    } else {
      model_.executor->grad(in_.pointers(), lab_.pointers(), cpar_, &loss_slot, gp_, count);
      for (size_t i = 0; i < np_; ++i) {
        if (!finite(gp_[i], model_.param_sizes[i], t_))
          return fail(TrainStatus::NonFinite, where + ": the gradient of '" + model_.param_names[i] +
                                                  "' is not finite; stopped. Last saved parameters: " + saved_);
        if (c_.grad_norms)
          norms[i] += t_ == DType::F32 ? norm(static_cast<const float*>(gp_[i]), model_.param_sizes[i])
                                       : norm(static_cast<const double*>(gp_[i]), model_.param_sizes[i]);
        update_param(i, step);
      }
    }
    *loss = value_at(reinterpret_cast<const char*>(&loss_slot), t_, 0);
    if (std::isfinite(*loss)) return true;
    std::string culprit;
    for (size_t i = 0; i < np_ && culprit.empty(); ++i)
      if (!finite(par_[i], model_.param_sizes[i], t_))
        culprit = " ('" + model_.param_names[i] + "' is not finite: the update of the step before overflowed)";
    char value[32];
    std::snprintf(value, sizeof value, "%g", *loss);
    return fail(TrainStatus::NonFinite,
                where + ": the loss is " + value + culprit + "; stopped. Last saved parameters: " + saved_);
  }

  void update_param(size_t i, int64_t step) {
    if (t_ == DType::F32)
      update(c_.optimizer, c_, step, static_cast<float*>(par_[i]), static_cast<const float*>(gp_[i]),
             reinterpret_cast<float*>(m_[i].data()), reinterpret_cast<float*>(v_[i].data()), model_.param_sizes[i]);
    else
      update(c_.optimizer, c_, step, static_cast<double*>(par_[i]), static_cast<const double*>(gp_[i]),
             reinterpret_cast<double*>(m_[i].data()), reinterpret_cast<double*>(v_[i].data()), model_.param_sizes[i]);
  }

  // The epoch's figures: its loss, validation or training accuracy, norms.
  EpochStats stats(int epoch, double loss_sum, const std::vector<double>& norms, double seconds) const {
    EpochStats st;
    st.epoch = epoch;
    st.epochs = c_.epochs;
    st.samples = data_.n;
    st.steps = steps_per_epoch_;
    st.loss = loss_sum / static_cast<double>(data_.n);
    st.seconds = seconds;
    const int64_t batch = std::max<int64_t>(c_.batch, 256);
    if (val_) {
      const EpochStats e = evaluate(model_, *val_, params_, batch);
      st.val_loss = e.loss;
      st.val_accuracy = e.accuracy;
    } else if (model_.accuracy_output >= 0) {  // no validation set: accuracy on the training data
      st.accuracy = evaluate(model_, data_, params_, batch, false).accuracy;
    }
    if (c_.grad_norms)
      for (double n : norms) st.grad_norms.push_back(n / static_cast<double>(steps_per_epoch_));
    return st;
  }

  // "" when saved (or nothing to save), else why not.
  std::string save() {
    if (c_.out.empty()) return "";
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
  const bool fused_;
  const int64_t steps_per_epoch_;
  std::vector<void*> par_, gp_;
  std::vector<const void*> cpar_;
  std::vector<std::vector<char>> grads_, m_, v_;  // gradients, optimizer state
  std::vector<int64_t> order_;
  Gather in_, lab_;
  TrainResult result_;
  std::string saved_ = "(none yet)";
};

}  // namespace

TrainResult train(const TrainModel& model, const TrainConfig& c, const TrainData& data, const TrainData* val,
                  ArrayMap& params, const TrainCallbacks& callbacks) {
  return Trainer(model, c, data, val, params, callbacks).run();
}

}  // namespace nabla::runtime
