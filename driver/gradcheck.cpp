#include "driver/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_map>

#include "driver/arrays.h"
#include "driver/error.h"
#include "driver/kernels.h"
#include "frontend/lower.h"
#include "ir/interpret.h"

namespace nabla::driver {
namespace {

using runtime::Array;
using runtime::ArrayMap;
using runtime::DType;
using Values = std::unordered_map<const ir::Node*, ir::Tensor>;

// Why a non-finite value given to gradcheck is refused.
const char* const kNeedsFinite = "the gradient is checked at finite values only";

// One map of values per sample: the first `data_count` of `data`'s samples
// (its size in *in_data), or `count` random ones.
std::vector<Values> samples_of(const LoweredModel& m, const std::vector<const ir::Node*>& per_sample,
                               const ArrayMap* data, const std::string& data_file, int count, int64_t data_count,
                               size_t* in_data, std::mt19937_64& rng) {
  std::vector<Values> samples;
  if (data) {
    int64_t n = -1;
    std::vector<const Array*> arrays;
    for (const ir::Node* v : per_sample) {
      arrays.push_back(&require(*data, data_file, v->name(), v->shape().dims(), true, &n));
      arrays.back()->check_finite(array_label(v->name(), data_file), kNeedsFinite);
      // The same label checks as grad and train: a distribution sums to one.
      const size_t index = static_cast<size_t>(v->var_index());
      if (v->var_kind() == ir::VarKind::Label && m.label_distribution[index])
        check_distribution(*arrays.back(), v->name(), v->shape().numel(), n, DType::F64, data_file);
    }
    *in_data = static_cast<size_t>(std::max<int64_t>(n, 0));
    n = std::min(n, data_count);
    check_batch_memory("'" + data_file + "' in f64", n, elements_per_sample(per_sample), 8);
    for (int64_t i = 0; i < n; ++i) {
      samples.emplace_back();
      for (size_t k = 0; k < per_sample.size(); ++k)
        samples.back()[per_sample[k]] = sample_tensor(*arrays[k], i, per_sample[k]->shape());
    }
    return samples;
  }
  std::uniform_real_distribution<double> unit(0, 1);
  for (int i = 0; i < count; ++i) {
    samples.emplace_back();
    for (const ir::Node* v : per_sample) {
      ir::Tensor t = ir::Tensor::zeros(v->shape());
      const bool label = v->var_kind() == ir::VarKind::Label;
      double total = 0;
      for (double& d : t.data) total += (d = label ? unit(rng) : 2 * unit(rng) - 1);
      const size_t index = static_cast<size_t>(v->var_index());
      if (label && index < m.label_distribution.size() && m.label_distribution[index])
        for (double& d : t.data) d /= total;
      samples.back()[v] = t;
    }
  }
  return samples;
}

// The compiled gradient (the f64 gradient kernel, as `nabla grad` runs it)
// over the samples as one batch.
std::vector<std::vector<double>> compiled_gradient(ir::Context& ctx, const LoweredModel& m,
                                                   const std::vector<const ir::Node*>& per_sample,
                                                   const std::vector<Values>& samples, const Values& values,
                                                   const GradcheckOptions& o) {
  const int64_t n = static_cast<int64_t>(samples.size());
  ArrayMap batch, params;
  for (const ir::Node* v : per_sample) {
    std::vector<int64_t> shape = v->shape().dims();
    shape.insert(shape.begin(), n);
    Array a = Array::zeros(shape, DType::F64);
    const size_t k = static_cast<size_t>(v->shape().numel());
    for (size_t s = 0; s < samples.size(); ++s)
      std::copy(samples[s].at(v).data.begin(), samples[s].at(v).data.end(), a.f64.begin() + static_cast<long>(s * k));
    batch[v->name()] = std::move(a);
  }
  for (const ir::Node* p : m.params) {
    Array a = Array::zeros(p->shape().dims(), DType::F64);
    a.f64.assign(values.at(p).data.begin(), values.at(p).data.end());
    params[p->name()] = std::move(a);
  }
  CompileOptions co;
  co.dtype = DType::F64;
  co.forward = false;
  co.threads = o.threads;
  co.use_cache = o.use_cache;
  co.cache_dir = o.cache_dir;
  ModelKernels kernels = compile_model_kernels(ctx, m, co);
  const ArrayMap g = kernels.grad(params, batch, n);
  std::vector<std::vector<double>> grad;
  for (const ir::Node* p : m.params) {
    const auto& v = g.at(p->name()).f64;
    grad.emplace_back(v.begin(), v.end());
  }
  return grad;
}

}  // namespace

GradcheckResult gradcheck(const LoadedModel& loaded, const ArrayMap* given, const std::string& params_file,
                          const ArrayMap* data, const std::string& data_file, const GradcheckOptions& o) {
  if (!loaded.model.loss) throw Error("'" + loaded.file->name() + "' has no loss: there is no gradient to check");
  ir::Context ctx;
  LoweredModel m = lower_model(loaded.model, ctx);
  std::mt19937_64 rng(o.seed);
  // Params.
  const ArrayMap params = given ? *given : initial_params(loaded.model, o.seed, DType::F64);
  Values values;
  int64_t none = -1;
  for (const ir::Node* p : m.params) {
    const Array& a =
        require(params, given ? params_file : "(initialized)", p->name(), p->shape().dims(), false, &none);
    if (given) a.check_finite(array_label(p->name(), params_file), kNeedsFinite);
    values[p] = sample_tensor(a, 0, p->shape());
  }
  std::vector<const ir::Node*> per_sample(m.inputs);
  per_sample.insert(per_sample.end(), m.labels.begin(), m.labels.end());
  size_t in_data = 0;
  const std::vector<Values> samples =
      samples_of(m, per_sample, data, data_file, o.samples, o.data_samples, &in_data, rng);
  if (samples.empty())
    throw Error(data ? "'" + data_file + "' holds no samples to check the gradient on"
                     : std::string("no samples to check the gradient on"));
  const std::vector<std::vector<double>> grad = compiled_gradient(ctx, m, per_sample, samples, values, o);

  const ir::Node* loss = m.loss;
  check_interpreter_memory("the f64 loss of the gradient check", std::span<const ir::Node* const>(&loss, 1));
  auto mean_loss = [&] {
    double total = 0;
    for (const Values& s : samples)
      total += ir::interpret(std::span<const ir::Node* const>(&loss, 1), [&](const ir::Node* v) {
                 if (v->var_kind() == ir::VarKind::Const) return ir::Tensor::scalar(v->value());
                 auto it = s.find(v);
                 return it != s.end() ? it->second : values.at(v);
               })[0].item();
    return total / static_cast<double>(samples.size());
  };
  GradcheckResult r;
  r.tolerance = o.tolerance;
  r.samples = samples.size();
  r.data_samples = in_data;
  for (size_t k = 0; k < m.params.size(); ++k) {
    ir::Tensor& theta = values[m.params[k]];
    const size_t size = theta.data.size();
    std::vector<size_t> picks;
    if (size <= static_cast<size_t>(o.elements)) {
      for (size_t e = 0; e < size; ++e) picks.push_back(e);
    } else {
      std::uniform_int_distribution<size_t> any(0, size - 1);
      for (int e = 0; e < o.elements; ++e) picks.push_back(any(rng));
    }
    ParamCheck check{m.params[k]->name(), 0, picks.size(), size};
    for (size_t e : picks) {
      const double x0 = theta.data[e], h = 1e-5 * std::max(1.0, std::fabs(x0));
      theta.data[e] = x0 + h;
      const double up = mean_loss();
      theta.data[e] = x0 - h;
      const double down = mean_loss();
      theta.data[e] = x0;
      const double fd = (up - down) / (2 * h), g = grad[k][e];
      // Relative to the larger of the two, and to at least 1e-3: below that
      // the differences' own rounding (~1e-11) would dominate.
      const double rel = std::fabs(g - fd) / std::max({std::fabs(g), std::fabs(fd), 1e-3});
      check.worst = std::max(check.worst, std::isnan(rel) ? INFINITY : rel);
    }
    r.worst = std::max(r.worst, check.worst);
    r.params.push_back(std::move(check));
  }
  r.passed = r.worst <= o.tolerance;
  return r;
}

}  // namespace nabla::driver
