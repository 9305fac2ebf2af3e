#include "driver/nabla.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>

#include "codegen/compile_heap.h"
#include "driver/arrays.h"
#include "driver/artifacts.h"
#include "driver/expression.h"
#include "driver/gradient.h"
#include "driver/kernels.h"
#include "driver/load.h"
#include "driver/turns.h"
#include "frontend/lower.h"
#include "runtime/comm.h"
#include "runtime/output.h"

namespace nabla {

std::string version() { return NABLA_VERSION; }

bool use_huge_pages_for_compiling() { return codegen::use_huge_pages_for_compiling(); }

namespace {

// The learning rate's bounds, as the command's --lr has them.
void check_rate(double lr) {
  if (!(lr > 0 && lr <= 1e30)) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%g", lr);
    throw Error(std::string("the learning rate must be a positive number of at most 1e30, not ") + shown);
  }
}

std::vector<int64_t> dims(const Shape& s) { return s.dims(); }

// The `count` pointers at `p` as the executor takes them (parentheses, not
// braces: a braced list would be a vector of two pointers).
template <typename T>
std::vector<T*> span(T* const* p, size_t count) {
  return std::vector<T*>(p, p + count);
}

// `f()` on a thread with a large stack: the parser, sema, lowering and the
// passes over the DAG recurse over nesting, which the parser allows deeper
// than a default 8 MB stack holds (the command runs all its work this way).
// Only for work that walks a model, not for kernel calls (a thread each).
template <typename F>
auto on_large_stack(F&& f) {
  std::optional<decltype(f())> result;
  driver::with_large_stack([&] { result.emplace(f()); });
  return std::move(*result);
}

// The data of `arrays`, as the executor takes it.
std::vector<const void*> pointers(const std::vector<const Array*>& arrays) {
  std::vector<const void*> r;
  for (const Array* a : arrays) r.push_back(a->bytes());
  return r;
}

// Array checks throw runtime::NpzError (the command reports them as errors
// about its files); the library reports them as Error.
template <typename F>
auto checked(F&& f) {
  try {
    return f();
  } catch (const runtime::NpzError& e) {
    throw Error(e.what());
  }
}

}  // namespace

struct Model::Impl {
  driver::LoadedModel loaded;
  ModelOptions options;
  ir::Context ctx;
  LoweredModel lowered;
  std::string name;
  std::vector<Declaration> inputs, labels, params, outputs, consts;
  driver::Turns mutex{"this model"};  // kernel calls and the context take turns (survives fork: turns.h)
  std::optional<driver::ModelKernels> kernels, eval_kernels;
  runtime::TrainModel train_model;

  Impl(driver::LoadedModel l, const ModelOptions& o)
      : loaded(std::move(l)), options(o), ctx(o.dtype == DType::F64 ? ir::DType::F64 : ir::DType::F32) {
    lowered = lower_model(loaded.model, ctx);
    const CheckedModel& m = loaded.model;
    name = m.name.empty() ? std::filesystem::path(loaded.file->name()).stem().string() : m.name;
    for (const TensorDecl& d : m.inputs) inputs.push_back({d.name, dims(d.shape)});
    for (const LabelDecl& d : m.labels) labels.push_back({d.name, dims(d.shape), d.distribution});
    for (const ParamDecl& d : m.params) params.push_back({d.name, dims(d.shape)});
    for (const OutputDecl& d : m.outputs) outputs.push_back({d.name, dims(d.value->shape)});
    for (const ConstDecl& d : m.consts) consts.push_back({d.name, {}, false, d.value});
  }

  // The kernels, compiled on first use: forward (with outputs), gradient and
  // SGD step (with a loss). Call with `mutex` held.
  driver::ModelKernels& compiled() {
    if (!kernels) {
      const driver::CompileOptions co = compile_options();
      kernels = on_large_stack([&] { return driver::compile_model_kernels(ctx, lowered, co); });
      train_model = driver::train_model(lowered, *kernels);
    }
    return *kernels;
  }

  // The evaluation kernel of validation (driver::compile_eval_kernels), on
  // the first training with validation data, into train_model. Call with
  // `mutex` held, after compiled().
  void compile_eval() {
    if (eval_kernels) return;
    const driver::CompileOptions co = compile_options();
    eval_kernels = on_large_stack([&] { return driver::compile_eval_kernels(ctx, lowered, co, train_model); });
  }

  driver::CompileOptions compile_options() const {
    driver::CompileOptions co;
    co.dtype = options.dtype;
    co.forward = !lowered.outputs.empty();
    co.grad = lowered.loss != nullptr;
    co.sgd = co.grad && !lowered.params.empty();
    co.threads = options.threads;
    co.use_cache = options.use_cache;
    co.cache_dir = options.cache_dir;
    return co;
  }

  // The labels declared distributions, at `labels` (n samples), checked
  // as `nabla grad` and train check them: throws Error.
  void check_labels(const void* const* given, int64_t n) const {
    checked([&] {
      for (size_t i = 0; i < labels.size(); ++i) {
        const Declaration& d = labels[i];
        if (!d.distribution) continue;
        int64_t k = 1;
        for (int64_t s : d.shape) k *= s;
        driver::check_distribution(given[i], d.name, k, n, options.dtype);
      }
      return 0;
    });
  }

  void need_loss(const char* what) const {
    if (!lowered.loss) throw Error("model '" + name + "' has no loss: " + what);
  }

  // The caller's params checked against the model, each converted to the
  // kernels' type only once all are known to fit; their pointers.
  std::vector<void*> writable_params(ArrayMap& given) {
    checked([&] {
      int64_t none = -1;
      for (const ir::Node* p : lowered.params)
        driver::require(given, "params", p->name(), p->shape().dims(), false, &none)
            .check_fits(options.dtype, "param '" + p->name() + "'");
      return 0;
    });
    std::vector<void*> r;
    for (const ir::Node* p : lowered.params) {
      Array& a = given.at(p->name());
      if (a.dtype != options.dtype) a = a.as(options.dtype);
      r.push_back(a.bytes());
    }
    return r;
  }

  runtime::TrainData data_of(const ArrayMap& data, bool with_labels, std::vector<Array>& storage) {
    return checked([&] { return driver::batch_data(data, "data", lowered, options.dtype, with_labels, storage); });
  }

  // The mean loss and gradient (by name) of `data` at `params`.
  double gradient(const ArrayMap& given, const ArrayMap& data, ArrayMap* grads) {
    need_loss("there is no gradient to compute");
    const ArrayMap p = checked([&] { return driver::params_from(given, "params", lowered, options.dtype); });
    std::vector<Array> storage;
    const runtime::TrainData d = data_of(data, true, storage);
    std::lock_guard lock(mutex);
    driver::ModelKernels& k = compiled();
    ArrayMap out;
    std::vector<void*> gp;
    for (const ir::Node* v : lowered.params) {
      Array& a = out[v->name()] = Array::zeros(v->shape().dims(), options.dtype);
      gp.push_back(a.bytes());
    }
    std::vector<const void*> pp;
    for (const ir::Node* v : lowered.params) pp.push_back(p.at(v->name()).bytes());
    Array loss = Array::zeros({}, options.dtype);
    k.executor->grad(pointers(d.inputs), pointers(d.labels), pp, loss.bytes(), gp, d.n);
    if (grads)
      for (auto& [n, a] : out) (*grads)[n] = std::move(a);
    return loss.at(0);
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

namespace {

SemaOptions sema_options(const ModelOptions& o) {
  SemaOptions s;
  for (const auto& [name, value] : o.consts) {
    if (!std::isfinite(value)) throw Error("const '" + name + "' must be finite");
    s.overrides[name] = value;
  }
  return s;
}

}  // namespace

Model Model::load(const std::string& path, const ModelOptions& options) {
  return on_large_stack([&] {
    auto r = driver::load_model(path, sema_options(options));
    if (!r.value) throw Error(std::move(r.messages), r.rendered);
    return Model(std::make_unique<Impl>(std::move(*r.value), options));
  });
}

Model Model::parse(const std::string& text, const ModelOptions& options, const std::string& name) {
  return on_large_stack([&] {
    auto r = driver::load_model_text(name, text, sema_options(options));
    if (!r.value) throw Error(std::move(r.messages), r.rendered);
    return Model(std::make_unique<Impl>(std::move(*r.value), options));
  });
}

const std::string& Model::name() const { return impl_->name; }
const std::vector<Declaration>& Model::inputs() const { return impl_->inputs; }
const std::vector<Declaration>& Model::labels() const { return impl_->labels; }
const std::vector<Declaration>& Model::params() const { return impl_->params; }
const std::vector<Declaration>& Model::outputs() const { return impl_->outputs; }
const std::vector<Declaration>& Model::consts() const { return impl_->consts; }
bool Model::has_loss() const { return impl_->lowered.loss != nullptr; }
int64_t Model::parameter_count() const { return impl_->loaded.model.param_count(); }
DType Model::dtype() const { return impl_->options.dtype; }

std::string Model::gradient_program(const std::vector<std::string>& wrt, bool simplify,
                                    const std::string& format) const {
  impl_->need_loss("there is nothing to differentiate");
  if (format != "text" && format != "latex" && format != "dot" && format != "json")
    throw Error("format '" + format + "' is not one of text, latex, dot, json");
  std::lock_guard lock(impl_->mutex);
  const auto params = driver::params_named(impl_->lowered, wrt, impl_->loaded.file->name());
  return on_large_stack([&] { return driver::gradient_text(impl_->ctx, impl_->lowered, params, simplify, format); });
}

std::string Model::graph(bool grad) const {
  std::lock_guard lock(impl_->mutex);
  return on_large_stack([&] { return driver::graph_text(impl_->ctx, impl_->lowered, grad, impl_->loaded.file->name()); });
}

void Model::save_object(const std::string& path, const std::string& header_path, const std::string& prefix) const {
  const std::string file = impl_->loaded.file->name();
  driver::ArtifactRequest r;
  r.dtype = impl_->options.dtype == DType::F64 ? ir::DType::F64 : ir::DType::F32;
  r.model_name = impl_->name;
  r.prefix = prefix.empty() ? driver::c_identifier(impl_->name) : prefix;
  if (r.prefix != driver::c_identifier(r.prefix)) throw Error("prefix '" + r.prefix + "' is not a C identifier");
  std::lock_guard lock(impl_->mutex);
  runtime::check_output(path, {file});
  if (!header_path.empty()) {
    // Before anything is written (a new object file is not yet an input
    // the header's check could find).
    std::error_code e1, e2;
    const auto a = std::filesystem::weakly_canonical(path, e1), b = std::filesystem::weakly_canonical(header_path, e2);
    if (header_path == path || (!e1 && !e2 && a == b))
      throw Error("the header '" + header_path + "' and the object file '" + path + "' are the same file");
    runtime::check_output(header_path, {file, path});
  }
  const std::string object =
      on_large_stack([&] { return driver::compile_artifact(impl_->ctx, impl_->lowered, r, file); });
  std::string header;
  if (!header_path.empty()) {
    r.emit = "header";
    header = driver::compile_artifact(impl_->ctx, impl_->lowered, r, file);
  }
  runtime::write_output(path, object, {file});
  if (!header_path.empty()) runtime::write_output(header_path, header, {file, path});
}

ArrayMap Model::init(uint64_t seed) const {
  return driver::initial_params(impl_->loaded.model, seed, impl_->options.dtype);
}

ArrayMap Model::forward(const ArrayMap& params, const ArrayMap& data) {
  Impl& m = *impl_;
  if (m.lowered.outputs.empty()) throw Error("model '" + m.name + "' has no output: there is nothing to run");
  const ArrayMap p = checked([&] { return driver::params_from(params, "params", m.lowered, m.options.dtype); });
  std::vector<Array> storage;
  const runtime::TrainData d = m.data_of(data, false, storage);
  // The outputs, batch first, written by the forward kernel in place.
  std::vector<const ir::Node*> output_nodes;
  for (const auto& o : m.lowered.outputs) output_nodes.push_back(o.second);
  driver::check_batch_memory("the outputs", d.n, driver::elements_per_sample(output_nodes),
                             m.options.dtype == DType::F32 ? 4 : 8);
  ArrayMap result;
  std::vector<void*> op;
  for (const auto& [name, node] : m.lowered.outputs) {
    std::vector<int64_t> shape = node->shape().dims();
    shape.insert(shape.begin(), d.n);
    op.push_back((result[name] = Array::zeros(shape, m.options.dtype)).bytes());
  }
  std::vector<const void*> pp;
  for (const ir::Node* v : m.lowered.params) pp.push_back(p.at(v->name()).bytes());
  std::lock_guard lock(m.mutex);
  m.compiled().executor->forward(pointers(d.inputs), pp, op, d.n);
  return result;
}

double Model::loss(const ArrayMap& params, const ArrayMap& data) { return impl_->gradient(params, data, nullptr); }

double Model::grad(const ArrayMap& params, const ArrayMap& data, ArrayMap& grads) {
  return impl_->gradient(params, data, &grads);
}

double Model::step(ArrayMap& params, const ArrayMap& data, double lr) {
  Impl& m = *impl_;
  m.need_loss("there is nothing to train");
  check_rate(lr);
  std::vector<Array> storage;
  const runtime::TrainData d = m.data_of(data, true, storage);
  std::lock_guard lock(m.mutex);
  driver::ModelKernels& k = m.compiled();
  const std::vector<void*> pp = m.writable_params(params);
  Array loss = Array::zeros({}, m.options.dtype);
  k.executor->sgd_step(pointers(d.inputs), pointers(d.labels), pp, loss.bytes(), lr, d.n);
  return loss.at(0);
}

std::vector<EpochStats> Model::train(ArrayMap& params, const ArrayMap& data, const TrainConfig& config,
                                     const ArrayMap* val, const TrainCallbacks& callbacks) {
  Impl& m = *impl_;
  m.need_loss("there is nothing to train");
  if (m.lowered.params.empty()) throw Error("model '" + m.name + "' has no params: there is nothing to train");
  if (config.epochs < 1) throw Error("the number of epochs must be at least 1");
  if (config.batch < 1) throw Error("the batch size must be at least 1");
  check_rate(config.lr);
  if (!std::isfinite(config.weight_decay) || config.weight_decay < 0)
    throw Error("the weight decay must be a non-negative finite number");
  if (!(config.momentum >= 0 && config.momentum <= 1)) throw Error("the momentum coefficient must be in [0, 1]");
  ArrayMap p = checked([&] { return driver::params_from(params, "params", m.lowered, m.options.dtype); });
  std::vector<Array> storage, val_storage;
  const runtime::TrainData d = m.data_of(data, true, storage);
  std::optional<runtime::TrainData> v;
  if (val) v = checked([&] {
    runtime::TrainData checked_val = driver::batch_data(*val, "val", m.lowered, m.options.dtype, true, val_storage);
    driver::require_finite(checked_val, "val");
    return checked_val;
  });
  TrainConfig c = config;
  c.batch = std::min(c.batch, d.n);
  // Started by mpirun: one process of a data-parallel job (every process
  // holds the same data; docs/distributed.md).
  try {
    c.comm = runtime::world();
  } catch (const std::runtime_error& e) {
    throw Error(e.what());
  }
  if (c.comm && config.batch % c.comm->size() != 0)
    throw Error("the batch (" + std::to_string(config.batch) + ") is the global batch: it must be a multiple of the " +
                std::to_string(c.comm->size()) + " processes");
  c.sharded = false;
  std::vector<EpochStats> epochs;
  // What a failure leaves: only on_epoch writes `params` before the end.
  std::optional<ArrayMap> before;
  if (callbacks.on_epoch) before = params;
  std::unique_lock lock(m.mutex);
  TrainCallbacks cb = callbacks;
  cb.on_epoch = [&](const EpochStats& st) {
    epochs.push_back(st);
    if (!callbacks.on_epoch) return true;
    // The caller's params hold the epoch's values, and the model is free
    // while the callback runs (no kernel of the training is running), so
    // that it may evaluate them with this model.
    for (const auto& [name, a] : p) params[name] = a;
    bool go_on = true;
    {
      // Relocked without a throw, however the callback ends; a fork in it
      // while another thread called this model is an Error below.
      struct Unlocked {
        std::unique_lock<driver::Turns>& l;
        explicit Unlocked(std::unique_lock<driver::Turns>& held) : l(held) { l.unlock(); }
        ~Unlocked() {
          driver::Turns* t = l.mutex();
          t->relock();
          l = std::unique_lock<driver::Turns>(*t, std::adopt_lock);
        }
      } unlocked(lock);
      go_on = callbacks.on_epoch(st);
      // What the callback wrote into `params` trains on: copied into the
      // training's arrays in place (the training holds pointers into them).
      const ArrayMap now = checked([&] { return driver::params_from(params, "params", m.lowered, m.options.dtype); });
      for (auto& [name, a] : p)
        std::memcpy(a.bytes(), now.at(name).bytes(), static_cast<size_t>(a.size()) * (a.dtype == DType::F32 ? 4 : 8));
    }
    m.mutex.check_not_forked_busy();
    return go_on;
  };
  m.compiled();
  if (v) m.compile_eval();
  const runtime::TrainResult r = runtime::train(m.train_model, c, d, v ? &*v : nullptr, p, cb);
  if (r.status == runtime::TrainStatus::NonFinite) {
    if (before) params = std::move(*before);
    throw Error(r.message);
  }
  for (auto& [name, a] : p) params[name] = std::move(a);
  if (r.status == runtime::TrainStatus::SaveFailed) throw Error(r.message);
  if (!r.save_error.empty()) throw Error(r.save_error);
  return epochs;
}

GradcheckResult Model::gradcheck(const ArrayMap* params, const ArrayMap* data, const GradcheckOptions& options) const {
  impl_->need_loss("there is no gradient to check");
  GradcheckOptions o = options;
  o.threads = impl_->options.threads;
  o.use_cache = impl_->options.use_cache;
  o.cache_dir = impl_->options.cache_dir;
  return checked([&] {
    return on_large_stack([&] { return driver::gradcheck(impl_->loaded, params, "params", data, "data", o); });
  });
}

void Model::forward(const void* const* inputs, const void* const* params, void* const* outputs, int64_t n) {
  Impl& m = *impl_;
  if (m.lowered.outputs.empty()) throw Error("model '" + m.name + "' has no output: there is nothing to run");
  if (n < 1) throw Error("a batch needs at least one sample");
  std::lock_guard lock(m.mutex);
  driver::ModelKernels& k = m.compiled();
  k.executor->forward(span(inputs, m.inputs.size()), span(params, m.params.size()),
                      span(outputs, m.outputs.size()), n);
}

void Model::grad(const void* const* inputs, const void* const* labels, const void* const* params, void* loss,
                 void* const* grads, int64_t n) {
  Impl& m = *impl_;
  m.need_loss("there is no gradient to compute");
  if (n < 1) throw Error("a batch needs at least one sample");
  m.check_labels(labels, n);
  std::lock_guard lock(m.mutex);
  driver::ModelKernels& k = m.compiled();
  k.executor->grad(span(inputs, m.inputs.size()), span(labels, m.labels.size()), span(params, m.params.size()),
                   loss, span(grads, m.params.size()), n);
}

void Model::step(const void* const* inputs, const void* const* labels, void* const* params, void* loss, double lr,
                 int64_t n) {
  Impl& m = *impl_;
  m.need_loss("there is nothing to train");
  if (n < 1) throw Error("a batch needs at least one sample");
  check_rate(lr);
  m.check_labels(labels, n);
  std::lock_guard lock(m.mutex);
  driver::ModelKernels& k = m.compiled();
  k.executor->sgd_step(span(inputs, m.inputs.size()), span(labels, m.labels.size()),
                       span(params, m.params.size()), loss, lr, n);
}

}  // namespace nabla
