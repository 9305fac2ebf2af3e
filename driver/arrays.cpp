#include "driver/arrays.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "driver/error.h"
#include "driver/kernels.h"

namespace nabla::driver {

ir::Tensor sample_tensor(const runtime::Array& a, int64_t i, const Shape& shape) {
  ir::Tensor t = ir::Tensor::zeros(shape);
  const size_t n = t.data.size(), at = static_cast<size_t>(i) * n;
  for (size_t k = 0; k < n; ++k) t.data[k] = a.at(at + k);
  return t;
}

runtime::InitKind init_kind(InitSpecDecl::Kind k) {
  using K = InitSpecDecl::Kind;
  using R = runtime::InitKind;
  switch (k) {
    case K::Zeros: return R::Zeros;
    case K::Ones: return R::Ones;
    case K::Const: return R::Const;
    case K::Uniform: return R::Uniform;
    case K::Normal: return R::Normal;
    case K::XavierUniform: return R::XavierUniform;
    case K::XavierNormal: return R::XavierNormal;
    case K::HeUniform: return R::HeUniform;
    case K::HeNormal: return R::HeNormal;
  }
  return R::Zeros;
}

namespace {

// Throws Error when `p`'s init could give a value the element type cannot
// hold (const(1e39) in f32, uniform(-1e308, 1e308), whose width overflows,
// normal(0, 1e308)): init never writes an infinity. A normal draw is
// within 10 standard deviations of its mean (the chance of more is 1e-23).
void check_init_range(const ParamDecl& p, runtime::DType dtype) {
  const double largest = dtype == runtime::DType::F32 ? std::numeric_limits<float>::max()
                                                      : std::numeric_limits<double>::max();
  const char* type = dtype == runtime::DType::F32 ? "f32" : "f64";
  auto fits = [&](double v) { return std::isfinite(v) && std::fabs(v) <= largest; };
  const double a = p.init.a, b = p.init.b;
  std::string what;
  switch (p.init.kind) {
    case InitSpecDecl::Kind::Const:
      if (!fits(a)) what = "its value is beyond the largest " + std::string(type);
      break;
    case InitSpecDecl::Kind::Uniform:
      if (!fits(a) || !fits(b) || !std::isfinite(b - a))
        what = "its bounds, or the width between them, are beyond the largest " + std::string(type);
      break;
    case InitSpecDecl::Kind::Normal:
      if (!fits(std::fabs(a) + 10 * b)) what = "its draws can be beyond the largest " + std::string(type);
      break;
    default: break;
  }
  if (!what.empty()) throw Error("the init of param '" + p.name + "' gives values " + type + " cannot hold: " + what);
}

}  // namespace

runtime::ArrayMap initial_params(const CheckedModel& model, uint64_t seed, runtime::DType dtype) {
  std::vector<runtime::ParamInit> inits;
  for (const ParamDecl& p : model.params) {
    check_init_range(p, dtype);
    inits.push_back({p.name, p.shape.dims(), init_kind(p.init.kind), p.init.a, p.init.b});
  }
  return runtime::initialize(inits, seed, dtype);
}

runtime::ArrayMap params_from(const runtime::ArrayMap& given, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype) {
  runtime::ArrayMap params;
  int64_t none = -1;
  for (const ir::Node* p : m.params)
    params[p->name()] = require(given, file, p->name(), p->shape().dims(), false, &none)
                            .as(dtype, array_label(p->name(), file));
  return params;
}

namespace {

// batch_data's work: `convert(name, array, label)` gives the checked array
// `name` in the kernels' element type.
template <typename Convert>
runtime::TrainData batch_data_with(const runtime::ArrayMap& arrays, const std::string& file, const LoweredModel& m,
                                   runtime::DType dtype, bool labels, std::vector<runtime::Array>& storage,
                                   Convert convert) {
  runtime::TrainData d;
  int64_t n = -1;
  storage.clear();
  storage.reserve(m.inputs.size() + m.labels.size());
  for (const ir::Node* v : m.inputs) {
    const runtime::Array& a = require(arrays, file, v->name(), v->shape().dims(), true, &n);
    storage.push_back(convert(v->name(), a, array_label(v->name(), file)));
    d.input_names.push_back(v->name());
  }
  for (size_t i = 0; labels && i < m.labels.size(); ++i) {
    const ir::Node* v = m.labels[i];
    const runtime::Array& a = require(arrays, file, v->name(), v->shape().dims(), true, &n);
    if (m.label_distribution[i]) check_distribution(a, v->name(), v->shape().numel(), n, dtype, file);
    storage.push_back(convert(v->name(), a, array_label(v->name(), file)));
    d.label_names.push_back(v->name());
  }
  for (size_t i = 0; i < d.input_names.size(); ++i) d.inputs.push_back(&storage[i]);
  for (size_t i = 0; i < d.label_names.size(); ++i) d.labels.push_back(&storage[d.input_names.size() + i]);
  d.n = n;
  if (n <= 0) throw runtime::NpzError("'" + file + "' holds no samples");
  return d;
}

}  // namespace

runtime::TrainData batch_data(const runtime::ArrayMap& arrays, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype, bool labels, std::vector<runtime::Array>& storage) {
  return batch_data_with(arrays, file, m, dtype, labels, storage,
                         [&](const std::string&, const runtime::Array& a, const std::string& label) {
                           return a.as(dtype, label);
                         });
}

runtime::TrainData batch_data(runtime::ArrayMap&& arrays, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype, bool labels, std::vector<runtime::Array>& storage) {
  return batch_data_with(arrays, file, m, dtype, labels, storage,
                         [&](const std::string& name, const runtime::Array& a,
                             const std::string& label) -> runtime::Array {
                           if (a.dtype == dtype) return std::move(arrays.at(name));  // names are distinct
                           return a.as(dtype, label);
                         });
}

bool is_shard_pattern(const std::string& data) { return data.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> shard_files(const std::string& pattern, int rank, int size) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> all;
  for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) all.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (all.empty()) throw runtime::NpzError("no file matches '" + pattern + "'");
  std::sort(all.begin(), all.end());
  std::vector<std::string> mine;
  for (size_t i = 0; i < all.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(size)) == rank) mine.push_back(all[i]);
  return mine;
}

runtime::TrainData shard_data(const std::vector<std::string>& files, const LoweredModel& m, runtime::DType dtype,
                              std::vector<runtime::Array>& storage) {
  storage.clear();
  runtime::TrainData d;
  for (const ir::Node* v : m.inputs) d.input_names.push_back(v->name());
  for (const ir::Node* v : m.labels) d.label_names.push_back(v->name());
  std::vector<const ir::Node*> vars(m.inputs.begin(), m.inputs.end());
  vars.insert(vars.end(), m.labels.begin(), m.labels.end());
  for (const ir::Node* v : vars) {  // empty arrays, the samples appended below
    runtime::Array a;
    a.dtype = dtype;
    a.shape = v->shape().dims();
    a.shape.insert(a.shape.begin(), 0);
    storage.push_back(std::move(a));
  }
  for (const std::string& f : files) {
    std::vector<runtime::Array> one;
    const runtime::TrainData part = batch_data(runtime::read_npz(f), f, m, dtype, true, one);
    for (size_t j = 0; j < storage.size(); ++j) {
      storage[j].shape[0] += part.n;
      storage[j].f32.insert(storage[j].f32.end(), one[j].f32.begin(), one[j].f32.end());
      storage[j].f64.insert(storage[j].f64.end(), one[j].f64.begin(), one[j].f64.end());
    }
    d.n += part.n;
  }
  for (size_t i = 0; i < m.inputs.size(); ++i) d.inputs.push_back(&storage[i]);
  for (size_t i = 0; i < m.labels.size(); ++i) d.labels.push_back(&storage[m.inputs.size() + i]);
  return d;
}

int64_t check_arrays(const LoweredModel& m, const runtime::ArrayMap& params, const std::string& params_file,
                     const runtime::ArrayMap& data, const std::string& data_file, bool labels,
                     runtime::DType dtype) {
  int64_t none = -1;
  for (const ir::Node* p : m.params)
    require(params, params_file, p->name(), p->shape().dims(), false, &none)
        .check_fits(dtype, array_label(p->name(), params_file));
  int64_t n = -1;
  for (const ir::Node* v : m.inputs)
    require(data, data_file, v->name(), v->shape().dims(), true, &n)
        .check_fits(dtype, array_label(v->name(), data_file));
  for (size_t i = 0; labels && i < m.labels.size(); ++i) {
    const ir::Node* v = m.labels[i];
    const runtime::Array& a = require(data, data_file, v->name(), v->shape().dims(), true, &n);
    a.check_fits(dtype, array_label(v->name(), data_file));
    if (m.label_distribution[i]) check_distribution(a, v->name(), v->shape().numel(), n, dtype, data_file);
  }
  if (n <= 0)
    throw runtime::NpzError("'" + data_file +
                            "' holds no samples (the model needs its inputs with a batch axis first)");
  return n;
}

void require_finite(const runtime::TrainData& d, const std::string& file) {
  for (size_t i = 0; i < d.inputs.size(); ++i)
    d.inputs[i]->check_finite(array_label(d.input_names[i], file), "validation needs finite data");
  for (size_t i = 0; i < d.labels.size(); ++i)
    d.labels[i]->check_finite(array_label(d.label_names[i], file), "validation needs finite data");
}

}  // namespace nabla::driver
