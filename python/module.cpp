// The `nabla` Python module (docs/python.md) over the library (driver/nabla.h).
//
// Arrays: a NumPy array that is C-contiguous and of the model's dtype is
// passed to the kernels as it is (no copy); any other array-like is
// converted once. Every array is checked against the model before a kernel
// runs (a missing name, a wrong shape, unequal batch sizes: NablaError naming
// the array, the shape found and the shape expected), so a failing call
// writes nothing. Kernel calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <unordered_map>

#include "driver/elementwise.h"
#include "driver/expression.h"
#include "driver/kernels.h"
#include "driver/nabla.h"

namespace py = pybind11;

namespace {
// tp_new of the module's classes (see the end of the module's definition).
extern "C" PyObject* refuse_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyErr_Format(PyExc_TypeError, "%s objects are made by the module's functions, not directly", type->tp_name);
  return nullptr;
}
}  // namespace

namespace nabla::python {
namespace {

PyObject* nabla_error = nullptr;  // nabla.NablaError, a ValueError

// A diagnostic as Python sees it: file, line, column, message, severity.
struct PyDiagnostic {
  std::string file, message, severity;
  int line = 0, column = 0;
};

[[noreturn]] void raise(const std::string& message) { throw Error(message); }

// Raises NablaError with `message` and `.diagnostics`.
void set_error(const std::string& message, const std::vector<Message>& diagnostics) {
  py::list diags;
  for (const Message& m : diagnostics) diags.append(py::cast(PyDiagnostic{m.file, m.text, m.severity, m.line, m.column}));
  py::object exc = py::reinterpret_steal<py::object>(PyObject_CallFunction(nabla_error, "s", message.c_str()));
  if (!exc) return;  // the call set its own error
  exc.attr("diagnostics") = diags;
  PyErr_SetObject(nabla_error, exc.ptr());
}

// `h` as a T, or a TypeError that says what `what` must be ("seed must be
// an integer from 0 to 2**64 - 1, not -1"), not pybind11's "Unable to cast".
template <typename T>
T as(const py::handle& h, const std::string& what, const std::string& expected) {
  try {
    return h.cast<T>();
  } catch (const py::cast_error&) {
    std::string shown = py::repr(h);
    if (shown.size() > 60) shown = std::string(py::str(py::type::handle_of(h).attr("__name__"))) + " object";
    throw py::type_error(what + " must be " + expected + ", not " + shown);
  }
}

// The number of threads asked for (1 to kMaxThreads).
int threads_asked(const py::handle& threads) {
  const std::string range = "an integer from 1 to " + std::to_string(kMaxThreads);
  const int n = as<int>(threads, "threads", range);
  if (n < 1 || n > kMaxThreads) raise("threads must be " + range + ", not " + std::to_string(n));
  return n;
}

DType dtype_named(const py::object& d) {
  if (d.is_none()) raise("dtype must be float32 or float64, not None");
  const py::dtype t = py::dtype::from_args(d);
  if (t.equal(py::dtype::of<float>())) return DType::F32;
  if (t.equal(py::dtype::of<double>())) return DType::F64;
  raise("dtype must be float32 or float64, not " + std::string(py::str(d)));
}

py::dtype numpy_dtype(DType t) { return t == DType::F32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

std::string shape_text(const std::vector<int64_t>& dims, bool batch) {
  std::string s = "(";
  if (batch) s += "n";
  for (size_t i = 0; i < dims.size(); ++i) s += (i || batch ? ", " : "") + std::to_string(dims[i]);
  if (dims.size() + (batch ? 1 : 0) == 1) s += ",";
  return s + ")";
}

std::string shape_text(const py::array& a) {
  std::vector<int64_t> dims(a.shape(), a.shape() + a.ndim());
  return shape_text(dims, false);
}

// `name` as an interned Python string, made once: a dictionary lookup by it
// neither builds nor hashes a new string (a model's calls look up every
// declaration's array; measured: a quarter of a microsecond a call).
py::handle key(const std::string& name) {
  static auto* keys = new std::unordered_map<std::string, py::handle>;  // strings kept for the process
  auto it = keys->find(name);
  if (it == keys->end()) {
    PyObject* s = PyUnicode_InternFromString(name.c_str());
    if (!s) throw py::error_already_set();
    it = keys->emplace(name, s).first;
  }
  return it->second;
}

// `obj` as a dict of arrays for `what` ("params", "data"): a dict as it is,
// any other mapping (np.load of an .npz, a MappingProxyType) copied into one
// (the same array objects). Arrays a call writes in place (`written`) must
// stay the mapping's own: np.load's NpzFile hands out a new copy at each
// access, so updates to it would be lost, and it is refused.
py::dict mapping(const py::object& obj, const std::string& what, bool written = false) {
  if (py::isinstance<py::dict>(obj)) return py::reinterpret_borrow<py::dict>(obj);
  const std::string type = py::str(py::type::handle_of(obj).attr("__name__"));
  if (written && type == "NpzFile")
    raise(what + " is an NpzFile, which reads a new copy of an array at each access: what is written into it "
          "would be lost (pass dict(np.load(...)))");
  if (py::isinstance(obj, py::module_::import("collections.abc").attr("Mapping"))) return py::dict(obj);
  raise(what + " must be a mapping of names to arrays (a dict, or np.load of an .npz), not " + type);
}

// arrays[name] (borrowed), or null when it has none.
PyObject* lookup(const py::dict& arrays, const std::string& name) {
  PyObject* o = PyDict_GetItemWithError(arrays.ptr(), key(name).ptr());
  if (!o && PyErr_Occurred()) throw py::error_already_set();
  return o;
}

// The array `name` of `arrays` (a mapping), as a C-contiguous array of `t`:
// the caller's own when it already is one, else a converted copy.
py::array fetch(const py::dict& arrays, const std::string& what, const std::string& name, DType t) {
  PyObject* obj = lookup(arrays, name);
  if (!obj) {
    std::string have;
    for (const auto& [k, v] : arrays) have += (have.empty() ? "" : ", ") + std::string(py::str(k));
    raise(what + " has no array '" + name + "' (it has: " + (have.empty() ? "none" : have) + ")");
  }
  static const py::handle numpy = py::module_::import("numpy").release();  // kept for the process
  // Not an array yet (a list, an object with __array__): NumPy makes one,
  // and its exception, if any, is raised as it is (a MemoryError, the
  // object's own error).
  const py::array given = py::isinstance<py::array>(py::handle(obj)) ? py::reinterpret_borrow<py::array>(obj)
                                                                      : py::array(numpy.attr("asarray")(py::handle(obj)));
  // Real numbers only: a cast would drop a complex array's imaginary parts
  // (with a warning that is easy to miss) and read strings as numbers.
  if (std::string("biuf").find(given.dtype().kind()) == std::string::npos)
    raise("array '" + name + "' has dtype " + std::string(py::str(given.dtype())) + ": the model computes with real numbers");
  // A copy in the model's dtype (any other dtype, or not C-contiguous) is
  // counted against the memory budget first; NumPy failing to make it
  // anyway is a MemoryError, not a word about the array.
  const py::dtype want = t == DType::F64 ? py::dtype::of<double>() : py::dtype::of<float>();
  const bool as_is = given.dtype().equal(want) && (given.flags() & py::array::c_style) != 0;
  const uint64_t copy_bytes = runtime::product_bytes(static_cast<uint64_t>(given.size()), t == DType::F64 ? 8 : 4);
  if (!as_is) runtime::check_memory("array '" + name + "' as " + (t == DType::F64 ? "float64" : "float32"), copy_bytes);
  auto converted = [&](py::array a) {
    if (!a) throw ResourceError("array '" + name + "': NumPy could not make its copy as " +
                                (t == DType::F64 ? "float64" : "float32") + " (" + runtime::byte_count(copy_bytes) + ")");
    return a;
  };
  if (t == DType::F64) return converted(py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(given));
  // A wider float than the model's: a finite value beyond float32's range
  // would become an infinity without a word (the command refuses it too).
  // NumPy's own overflow warning is silenced: the error below says more.
  const bool wider = given.dtype().kind() == 'f' && given.dtype().itemsize() > 4;
  if (!wider) return converted(py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(given));
  py::object quiet = numpy.attr("errstate")(py::arg("over") = "ignore");
  quiet.attr("__enter__")();
  py::array_t<float> f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(given);
  quiet.attr("__exit__")(py::none(), py::none(), py::none());
  converted(f);
  const float* v = f.data();
  if (std::none_of(v, v + f.size(), [](float x) { return std::isinf(x); })) return f;
  // Some infinity: which were finite before (NumPy, in one pass, however many).
  const py::object overflowed = numpy.attr("flatnonzero")(numpy.attr("logical_and")(
      numpy.attr("isinf")(f), numpy.attr("isfinite")(given)).attr("ravel")());
  if (py::len(overflowed) == 0) return f;
  const py::ssize_t i = overflowed[py::int_(0)].cast<py::ssize_t>();
  raise(runtime::beyond_float32("array '" + name + "'", py::float_(given.attr("flat")[py::int_(i)]).cast<double>(),
                                static_cast<size_t>(i)));
}

// `a` has the declared shape (after the batch axis when `batched`; *n is
// set by the first batched array and then required).
void check_shape(const py::array& a, const std::string& name, const std::vector<int64_t>& dims, bool batched,
                 int64_t* n) {
  if (!a) raise("array '" + name + "' is not a numeric array");
  const size_t rank = dims.size() + (batched ? 1 : 0);
  bool ok = static_cast<size_t>(a.ndim()) == rank;
  for (size_t i = 0; ok && i < dims.size(); ++i) ok = a.shape(static_cast<py::ssize_t>(i + (batched ? 1 : 0))) == dims[i];
  if (ok && batched && *n >= 0 && a.shape(0) != *n) ok = false;
  // A scalar as a 1-element vector too: numpy.ascontiguousarray makes one of
  // every 0-d array.
  if (!ok && !batched && dims.empty() && a.ndim() == 1 && a.size() == 1) ok = true;
  if (!ok) {
    std::vector<int64_t> expected = dims;
    if (batched && *n >= 0) expected.insert(expected.begin(), *n);
    raise("array '" + name + "' has shape " + shape_text(a) + ", expected " +
          shape_text(expected, batched && *n < 0) +
          (batched ? " (the batch first; every input and label has the same batch size)" : ""));
  }
  if (batched && *n < 0) *n = a.shape(0);
}

// Arrays checked and ready for a kernel: the arrays (kept alive) and their
// data pointers, in declaration order.
struct Args {
  std::vector<py::array> arrays;
  std::vector<const void*> ptrs;
};

// The bytes of arrays a kernel call reads or writes: an array it writes in
// place must share none with the others (else the result is silently wrong).
class Footprint {
public:
  void read(const Args& a) {
    for (const py::array& x : a.arrays) add(x);
  }
  void add(const py::array& a) {
    const auto* lo = static_cast<const char*>(a.data());
    ranges_.emplace_back(lo, lo + a.nbytes());
  }
  // `a`, which the kernel writes, as `label` ("out['W1']") in errors.
  void write(const py::array& a, const std::string& label) {
    const auto* lo = static_cast<const char*>(a.data());
    const char* hi = lo + a.nbytes();
    for (const auto& [b, e] : ranges_)
      if (lo < e && b < hi) raise(label + " shares memory with another array of the call: it is written in place");
    add(a);
  }

private:
  std::vector<std::pair<const char*, const char*>> ranges_;
};

Args gather(const py::dict& arrays, const std::string& what, const std::vector<Declaration>& decls, bool batched,
            DType t, int64_t* n) {
  Args r;
  for (const Declaration& d : decls) {
    py::array a = fetch(arrays, what, d.name, t);
    check_shape(a, d.name, d.shape, batched, n);
    r.ptrs.push_back(a.data());
    r.arrays.push_back(std::move(a));
  }
  return r;
}

// The memory of the arrays the module makes (params from init, gradients,
// outputs, lambdify's results): 64-byte aligned, as the kernels' own buffers
// are (NumPy aligns to 16 bytes; the MNIST MLP's SGD step on NumPy's params
// took 190 us instead of 164), and blocks released by arrays that died are
// kept for the next call, up to a bound. A NumPy array of fresh memory is
// paged in by the kernel that first writes it; on a machine whose page
// faults are slow, and whenever the C library has just returned the memory
// of the previous call's results to the system, that costs more than the
// kernel (measured: 40 ms instead of 0.35 ms for four arrays of 1e6 floats).
// Reused blocks are already paged in; a fresh block of 512 KiB or more is
// advised into huge pages (runtime/aligned.h), so even the first call pays
// one fault per 2 MiB rather than per 4 KiB.
class BlockCache {
public:
  static constexpr size_t kMaxBlocks = 16;
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  // A block's allocation for `bytes` of values: whole 64-byte lines, and
  // never empty.
  static size_t allocated(size_t bytes) { return (bytes + 63) / 64 * 64 + 64; }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
        if (it->second == bytes) {
          void* p = it->first;
          kept_ -= bytes;
          blocks_.erase(it);
          return p;
        }
    }
    return runtime::allocate_values(allocated(bytes));
  }

  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes > kMaxBytes) {
      runtime::release_values(p, allocated(bytes));
      return;
    }
    blocks_.emplace_back(p, bytes);
    kept_ += bytes;
    while (blocks_.size() > kMaxBlocks || kept_ > kMaxBytes) {  // the oldest go first
      runtime::release_values(blocks_.front().first, allocated(blocks_.front().second));
      kept_ -= blocks_.front().second;
      blocks_.erase(blocks_.begin());
    }
  }

private:
  std::mutex mutex_;
  std::vector<std::pair<void*, size_t>> blocks_;
  size_t kept_ = 0;
};

// A new C-contiguous array of `t` and `shape` on a block of the cache.
py::array cached_array(DType t, const std::vector<py::ssize_t>& shape) {
  static BlockCache* cache = new BlockCache;  // never destroyed: arrays may outlive the module's teardown
  const size_t elem = t == DType::F32 ? 4 : 8;
  size_t bytes = elem;
  for (py::ssize_t d : shape) bytes *= static_cast<size_t>(d);
  struct Block {
    void* data;
    size_t bytes;
  };
  auto* block = new Block{cache->take(bytes), bytes};
  py::capsule owner(block, [](void* b) {
    auto* blk = static_cast<Block*>(b);
    cache->give(blk->data, blk->bytes);
    delete blk;
  });
  return py::array(numpy_dtype(t), shape, {}, block->data, owner);
}

py::array new_array(std::vector<int64_t> dims, DType t) {
  return cached_array(t, std::vector<py::ssize_t>(dims.begin(), dims.end()));
}

ArrayMap to_arrays(const py::dict& arrays, const std::vector<Declaration>& decls, const std::string& what,
                            bool batched, DType t) {
  ArrayMap r;
  int64_t n = -1;
  for (const Declaration& d : decls) {
    py::array a = fetch(arrays, what, d.name, t);
    check_shape(a, d.name, d.shape, batched, &n);
    Array x;
    x.dtype = t;
    x.shape.assign(a.shape(), a.shape() + a.ndim());
    const size_t size = static_cast<size_t>(a.size());
    if (t == DType::F32) x.f32.assign(static_cast<const float*>(a.data()), static_cast<const float*>(a.data()) + size);
    else x.f64.assign(static_cast<const double*>(a.data()), static_cast<const double*>(a.data()) + size);
    r[d.name] = std::move(x);
  }
  return r;
}

py::array from_array(const Array& a) {
  py::array r = new_array(a.shape, a.dtype);
  std::memcpy(r.mutable_data(), a.bytes(), static_cast<size_t>(a.size()) * (a.dtype == DType::F32 ? 4 : 8));
  return r;
}

double scalar_of(const void* p, DType t) {
  return t == DType::F32 ? static_cast<double>(*static_cast<const float*>(p)) : *static_cast<const double*>(p);
}

// A compiled model as Python holds it.
std::vector<std::string> names_of(const py::object& args);  // below

class PyModel {
public:
  explicit PyModel(Model m) : m_(std::move(m)) {}

  const Model& model() const { return m_; }

  py::dict declarations(const std::vector<Declaration>& decls) const {
    py::dict d;
    for (const Declaration& x : decls) d[py::str(x.name)] = py::tuple(py::cast(x.shape));
    return d;
  }
  py::dict consts() const {
    py::dict d;
    for (const Declaration& x : m_.consts()) d[py::str(x.name)] = x.value;
    return d;
  }

  py::dict init(py::object seed) const {
    const uint64_t s = seed.is_none() ? std::random_device{}() : as<uint64_t>(seed, "seed", "an integer from 0 to 2**64 - 1");
    py::dict r;
    for (const auto& [name, a] : m_.init(s)) r[py::str(name)] = from_array(a);
    return r;
  }

  py::dict forward(const py::object& params_in, const py::object& data_in) {
    const py::dict params = mapping(params_in, "params"), data = mapping(data_in, "data");
    if (m_.outputs().empty()) raise("model '" + m_.name() + "' has no output: there is nothing to run");
    const DType t = m_.dtype();
    int64_t none = -1, n = -1;
    const Args p = gather(params, "params", m_.params(), false, t, &none);
    const Args in = gather(data, "data", m_.inputs(), true, t, &n);
    if (n <= 0) raise("data holds no samples");
    uint64_t per_sample = 0;
    for (const Declaration& d : m_.outputs()) {
      uint64_t e = 1;
      for (int64_t s : d.shape) e *= static_cast<uint64_t>(s);
      per_sample += e;
    }
    driver::check_batch_memory("the outputs", n, per_sample, t == DType::F32 ? 4 : 8);
    py::dict out;
    std::vector<void*> optr;
    for (const Declaration& d : m_.outputs()) {
      std::vector<int64_t> dims{n};
      dims.insert(dims.end(), d.shape.begin(), d.shape.end());
      py::array a = new_array(dims, t);
      optr.push_back(a.mutable_data());
      out[py::str(d.name)] = a;
    }
    {
      py::gil_scoped_release release;
      m_.forward(in.ptrs.data(), p.ptrs.data(), optr.data(), n);
    }
    return out;
  }

  // The loss, with the gradients written into `out` (checked) or new arrays.
  std::pair<double, py::dict> grad(const py::object& params_in, const py::object& data_in, py::object out) {
    const py::dict params = mapping(params_in, "params"), data = mapping(data_in, "data");
    if (!m_.has_loss()) raise("model '" + m_.name() + "' has no loss: there is no gradient to compute");
    const DType t = m_.dtype();
    int64_t none = -1, n = -1;
    const Args p = gather(params, "params", m_.params(), false, t, &none);
    const Args in = gather(data, "data", m_.inputs(), true, t, &n);
    const Args lab = gather(data, "data", m_.labels(), true, t, &n);
    if (n <= 0) raise("data holds no samples");
    py::dict grads = out.is_none() ? py::dict() : mapping(out, "out", true);
    std::vector<void*> gptr;
    // The caller's out arrays: alive while the GIL is released (another
    // thread may change `out`), and sharing no memory with what is read.
    std::vector<py::array> keep;
    Footprint footprint;
    if (!out.is_none()) {
      footprint.read(p);
      footprint.read(in);
      footprint.read(lab);
    }
    for (const Declaration& d : m_.params()) {
      if (out.is_none()) {  // new arrays, held by `grads`, which only this call sees
        py::array a = new_array(d.shape, t);
        gptr.push_back(a.mutable_data());
        if (PyDict_SetItem(grads.ptr(), key(d.name).ptr(), a.ptr()) != 0) throw py::error_already_set();
        continue;
      }
      PyObject* given = lookup(grads, d.name);
      if (!given) raise("out has no array '" + d.name + "'");
      py::array a = writable(given, "out", d, t);
      footprint.write(a, "out['" + d.name + "']");
      gptr.push_back(a.mutable_data());
      keep.push_back(std::move(a));
    }
    double loss = 0;
    {
      py::gil_scoped_release release;
      alignas(8) unsigned char slot[8] = {};
      m_.grad(in.ptrs.data(), lab.ptrs.data(), p.ptrs.data(), slot, gptr.data(), n);
      loss = scalar_of(slot, t);
    }
    return {loss, grads};
  }

  double loss(const py::object& params, const py::object& data) { return grad(params, data, py::none()).first; }

  double step(const py::object& params_in, const py::object& data_in, const py::object& lr_in) {
    const double lr = as<double>(lr_in, "lr", "a number");
    const py::dict params = mapping(params_in, "params", true), data = mapping(data_in, "data");
    if (!m_.has_loss()) raise("model '" + m_.name() + "' has no loss: there is nothing to train");
    const DType t = m_.dtype();
    int64_t n = -1;
    const Args in = gather(data, "data", m_.inputs(), true, t, &n);
    const Args lab = gather(data, "data", m_.labels(), true, t, &n);
    if (n <= 0) raise("data holds no samples");
    std::vector<void*> pptr;
    std::vector<py::array> keep;
    Footprint footprint;
    footprint.read(in);
    footprint.read(lab);
    for (const Declaration& d : m_.params()) {
      PyObject* given = lookup(params, d.name);
      if (!given) raise("params has no array '" + d.name + "'");
      keep.push_back(writable(given, "params", d, t));
      footprint.write(keep.back(), "params['" + d.name + "']");
      pptr.push_back(keep.back().mutable_data());
    }
    double loss = 0;
    {
      py::gil_scoped_release release;
      alignas(8) unsigned char slot[8] = {};
      m_.step(in.ptrs.data(), lab.ptrs.data(), pptr.data(), slot, lr, n);
      loss = scalar_of(slot, t);
    }
    return loss;
  }

  // The numbers as objects, converted here: a wrong one is a TypeError that
  // says what it must be, not pybind11's list of signatures.
  py::list train(const py::object& params_in, const py::object& data_in, const py::object& epochs_in,
                 const py::object& batch_in, const py::object& lr_in, const std::string& optimizer, py::object val,
                 const py::object& seed_in, const py::object& weight_decay_in, py::object callback) {
    const int epochs = as<int>(epochs_in, "epochs", "an integer from 1 to 2**31 - 1");
    const int64_t batch = as<int64_t>(batch_in, "batch", "an integer from 1 to 2**63 - 1");
    const double lr = as<double>(lr_in, "lr", "a number");
    const uint64_t seed = as<uint64_t>(seed_in, "seed", "an integer from 0 to 2**64 - 1");
    const double weight_decay = as<double>(weight_decay_in, "weight_decay", "a number");
    const py::dict params = mapping(params_in, "params", true), data = mapping(data_in, "data");
    const DType t = m_.dtype();
    // Params are updated in place: each must be a writable C array of the dtype.
    std::vector<py::array> targets;
    Footprint footprint;
    for (const Declaration& d : m_.params()) {
      if (!params.contains(d.name)) raise("params has no array '" + d.name + "'");
      targets.push_back(writable(params[py::str(d.name)], "params", d, t));
      footprint.write(targets.back(), "params['" + d.name + "']");
    }
    ArrayMap p = to_arrays(params, m_.params(), "params", false, t);
    std::vector<Declaration> per_sample = m_.inputs();
    per_sample.insert(per_sample.end(), m_.labels().begin(), m_.labels().end());
    const ArrayMap d = to_arrays(data, per_sample, "data", true, t);
    std::optional<ArrayMap> v;
    if (!val.is_none()) v = to_arrays(mapping(val, "val"), per_sample, "val", true, t);
    TrainConfig c;
    c.epochs = epochs;
    c.batch = batch;
    c.lr = lr;
    c.seed = seed;
    c.weight_decay = weight_decay;
    if (optimizer == "sgd") c.optimizer = Optimizer::Sgd;
    else if (optimizer == "momentum") c.optimizer = Optimizer::Momentum;
    else if (optimizer == "adam") c.optimizer = Optimizer::Adam;
    else raise("optimizer must be sgd, momentum or adam, not '" + optimizer + "'");
    py::list history;
    std::optional<py::error_already_set> failure;
    TrainCallbacks cb;
    cb.on_epoch = [&](const EpochStats& e) {
      py::gil_scoped_acquire acquire;
      // The caller's arrays hold the epoch's params while the callback runs
      // (Model::train has put them in `p`).
      if (!callback.is_none()) copy_back(p, targets, t);
      py::dict metrics;
      metrics["loss"] = e.loss;
      if (e.accuracy >= 0) metrics["acc"] = e.accuracy;
      if (v) metrics["val_loss"] = e.val_loss;
      if (v && e.val_accuracy >= 0) metrics["val_acc"] = e.val_accuracy;
      metrics["seconds"] = e.seconds;
      history.append(metrics);
      if (callback.is_none()) return true;
      try {
        py::object r = callback(e.epoch, metrics);
        const bool go_on = r.is_none() || as<bool>(r, "the callback's result", "True, False or None");
        // What the callback wrote into the caller's arrays trains on
        // (Model::train takes it from `p`).
        copy_in(targets, p, t);
        return go_on;
      } catch (py::error_already_set& err) {
        failure = std::move(err);
        return false;
      }
    };
    // Ctrl-C (any Python signal handler that raises) stops training after
    // the step it interrupts, with the params of the steps done, and raises
    // there. Signals are looked at every 20 ms, not every step: each look
    // takes the GIL.
    auto last_look = std::chrono::steady_clock::now();
    cb.should_stop = [&] {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_look < std::chrono::milliseconds(20)) return false;
      last_look = now;
      py::gil_scoped_acquire acquire;
      if (PyErr_CheckSignals() == 0) return false;
      failure.emplace();  // the exception the handler raised (KeyboardInterrupt)
      return true;
    };
    try {
      py::gil_scoped_release release;
      m_.train(p, d, c, v ? &*v : nullptr, cb);
    } catch (...) {
      copy_back(p, targets, t);  // what the failure left in `p`: the params from before training
      throw;
    }
    copy_back(p, targets, t);
    if (failure) throw *failure;
    return history;
  }

  // The caller's arrays (checked by `writable`) into `p`.
  void copy_in(std::vector<py::array>& targets, ArrayMap& p, DType t) const {
    for (size_t i = 0; i < targets.size(); ++i) {
      Array& a = p.at(m_.params()[i].name);
      std::memcpy(a.bytes(), targets[i].data(), static_cast<size_t>(a.size()) * (t == DType::F32 ? 4 : 8));
    }
  }

  // Each param of `p` into the caller's array (checked by `writable`).
  void copy_back(const ArrayMap& p, std::vector<py::array>& targets, DType t) const {
    for (size_t i = 0; i < targets.size(); ++i) {
      const Array& a = p.at(m_.params()[i].name);
      std::memcpy(targets[i].mutable_data(), a.bytes(), static_cast<size_t>(a.size()) * (t == DType::F32 ? 4 : 8));
    }
  }

  py::dict gradcheck(py::object params, py::object data, double tolerance, py::object seed, py::object samples) {
    GradcheckOptions o;
    o.tolerance = tolerance;
    if (!samples.is_none()) {
      // Random samples made, or the first samples of `data` checked.
      const int64_t n = as<int64_t>(samples, "samples", "an integer from 1 to 2**20");
      if (n < 1 || n > (1 << 20)) raise("samples must be an integer from 1 to 2**20, not " + std::to_string(n));
      o.samples = static_cast<int>(n);
      o.data_samples = n;
    }
    o.seed = seed.is_none() ? 0 : as<uint64_t>(seed, "seed", "an integer from 0 to 2**64 - 1");
    std::optional<ArrayMap> p, d;
    if (!params.is_none()) p = to_arrays(mapping(params, "params"), m_.params(), "params", false, DType::F64);
    if (!data.is_none()) {
      std::vector<Declaration> per_sample = m_.inputs();
      per_sample.insert(per_sample.end(), m_.labels().begin(), m_.labels().end());
      d = to_arrays(mapping(data, "data"), per_sample, "data", true, DType::F64);
    }
    GradcheckResult r;
    {
      py::gil_scoped_release release;
      r = m_.gradcheck(p ? &*p : nullptr, d ? &*d : nullptr, o);
    }
    py::dict out;
    for (const auto& c : r.params) out[py::str(c.name)] = c.worst;
    return out;
  }

  std::string gradient_program(py::object wrt, bool simplify, const std::string& format) const {
    std::vector<std::string> names;
    if (py::isinstance<py::str>(wrt)) names = names_of(wrt);  // "W1, b1" as nabla.diff reads it
    else if (!wrt.is_none()) names = as<std::vector<std::string>>(wrt, "wrt", "a name or a sequence of names");
    return m_.gradient_program(names, simplify, format);
  }

private:
  // The caller's array for `d` in `what`, which a kernel writes: it must be
  // a writable C-contiguous array of the dtype, with the declared shape.
  static py::array writable(py::handle obj, const std::string& what, const Declaration& d, DType t) {
    if (!py::isinstance<py::array>(obj)) raise(what + "['" + d.name + "'] must be a NumPy array, to be written in place");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().equal(numpy_dtype(t)))
      raise(what + "['" + d.name + "'] has dtype " + std::string(py::str(a.dtype())) + ", the model's is " +
            std::string(py::str(numpy_dtype(t))));
    if (!(a.flags() & py::array::c_style)) raise(what + "['" + d.name + "'] must be C-contiguous, to be written in place");
    if (!a.writeable()) raise(what + "['" + d.name + "'] is read-only");
    int64_t none = -1;
    check_shape(a, d.name, d.shape, false, &none);
    return a;
  }

  Model m_;
};

ModelOptions options_of(const py::object& dtype, const py::object& threads, const py::object& consts) {
  ModelOptions o;
  o.dtype = dtype_named(dtype);
  if (!threads.is_none()) {
    o.threads = threads_asked(threads);
  }
  if (!consts.is_none())
    for (const auto& [k, v] : mapping(consts, "consts"))
      o.consts[py::str(k)] = as<double>(v, "consts['" + std::string(py::str(k)) + "']", "a number");
  return o;
}


std::map<std::string, double> point_of(const py::dict& values) {
  std::map<std::string, double> p;
  for (const auto& [k, v] : values) p[py::str(k)] = as<double>(v, "the value of '" + std::string(py::str(k)) + "'", "a number");
  return p;
}


// Names given to diff (wrt) and lambdify (args, wrt): a sequence of names,
// or one string of names separated by commas or spaces ("x, w, b").
std::vector<std::string> names_of(const py::object& args) {
  if (!py::isinstance<py::str>(args))
    return as<std::vector<std::string>>(args, "the names", "a string of names or a sequence of names");
  std::vector<std::string> names;
  std::string cur;
  for (char c : args.cast<std::string>() + ",") {
    if (c == ',' || c == ' ' || c == '\t') {
      if (!cur.empty()) names.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return names;
}


// `lambdify`'s result: the compiled elementwise function over broadcast
// arrays (driver/elementwise.h). Arguments of one element are the kernel's
// broadcast scalars; arguments of the broadcast shape that are C-contiguous
// and of the function's dtype are read in place; others are converted (and,
// when their shape is not the broadcast shape, broadcast) once.
class PyLambdified {
public:
  explicit PyLambdified(driver::Elementwise f) : f_(std::make_shared<driver::Elementwise>(std::move(f))) {}

  // f(*arrays, out=None)
  py::object call(const py::args& args, const py::kwargs& kwargs) const {
    check_keywords(kwargs, {"out"});
    py::list outs;
    if (kwargs.contains("out") && !kwargs["out"].is_none()) outs.append(kwargs["out"]);
    return evaluate(args, true, {}, outs.empty() ? py::none() : py::object(outs))[0];
  }

  // f.grad(*arrays, wrt=None, out=None): the partials along `wrt` (every
  // argument when None), in its order.
  py::tuple grad(const py::args& args, const py::kwargs& kwargs) const {
    check_keywords(kwargs, {"wrt", "out"});
    const std::vector<size_t> wrt = wrt_of(kwargs);
    py::object out = kwargs.contains("out") ? py::object(kwargs["out"]) : py::none();
    return py::tuple(evaluate(args, false, wrt, out));
  }

  // f.value_and_grad(*arrays, wrt=None, out=None): (value, partials) from one
  // kernel; `out` a (value, partials) pair.
  py::tuple value_and_grad(const py::args& args, const py::kwargs& kwargs) const {
    check_keywords(kwargs, {"wrt", "out"});
    const std::vector<size_t> wrt = wrt_of(kwargs);
    py::object out = py::none();
    if (kwargs.contains("out") && !kwargs["out"].is_none()) {
      const py::tuple pair = py::tuple(kwargs["out"]);
      if (pair.size() != 2) raise("out must be a (value, partials) pair");
      py::list flat;
      flat.append(pair[0]);
      for (const py::handle& g : py::tuple(pair[1])) flat.append(g);
      out = flat;
    }
    const py::list r = evaluate(args, true, wrt, out);
    py::list grads;
    for (size_t i = 1; i < r.size(); ++i) grads.append(r[i]);
    return py::make_tuple(r[0], py::tuple(grads));
  }

  const driver::Elementwise& function() const { return *f_; }
  DType dtype() const { return f_->dtype() == ir::DType::F32 ? DType::F32 : DType::F64; }

  py::dict derivatives() const {
    py::dict d;
    for (size_t i = 0; i < f_->args().size(); ++i) d[py::str(f_->args()[i])] = f_->derivatives()[i];
    return d;
  }

private:
  static void check_keywords(const py::kwargs& kwargs, std::initializer_list<const char*> allowed) {
    for (const auto& [k, v] : kwargs) {
      const std::string key = py::str(k);
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; }))
        throw py::type_error("unexpected keyword argument '" + key + "'");
    }
  }

  // The argument indices `wrt` names (every argument when absent or None).
  std::vector<size_t> wrt_of(const py::kwargs& kwargs) const {
    const std::vector<std::string>& names = f_->args();
    std::vector<size_t> r;
    if (!kwargs.contains("wrt") || kwargs["wrt"].is_none()) {
      for (size_t i = 0; i < names.size(); ++i) r.push_back(i);
      return r;
    }
    for (const std::string& w : names_of(kwargs["wrt"])) {
      const auto it = std::find(names.begin(), names.end(), w);
      if (it == names.end()) raise("wrt: '" + w + "' is not an argument of the function");
      const size_t i = static_cast<size_t>(it - names.begin());
      if (std::find(r.begin(), r.end(), i) != r.end()) raise("wrt: '" + w + "' is named twice");
      r.push_back(i);
    }
    if (r.empty()) raise("wrt names no argument");
    return r;
  }

  // The value (when `value`) and the partials along `wrt`, in that order,
  // into the arrays of `out` (a list, or None for new arrays).
  py::list evaluate(const py::args& args, bool value, const std::vector<size_t>& wrt, const py::object& out) const {
    const size_t results = (value ? 1 : 0) + wrt.size();
    std::vector<py::array> res;
    Prepared p = prepare(args, out.is_none() ? results : 0);
    if (out.is_none()) {
      for (size_t i = 0; i < results; ++i) res.push_back(p.make(dtype()));
    } else {
      const py::list given = py::list(out);
      if (given.size() != results) raise("out has " + std::to_string(given.size()) + " arrays, expected " +
                                         std::to_string(results));
      for (size_t i = 0; i < results; ++i) res.push_back(p.check_out(given[i], result_name(value, wrt, i), dtype()));
    }
    void* value_out = value ? res[0].mutable_data() : nullptr;
    std::vector<void*> grads(wrt.empty() ? 0 : f_->args().size(), nullptr);
    for (size_t i = 0; i < wrt.size(); ++i) grads[wrt[i]] = res[i + (value ? 1 : 0)].mutable_data();
    {
      py::gil_scoped_release release;
      f_->evaluate(p.points, p.n, value_out, grads);
    }
    py::list r;
    for (py::array& a : res) r.append(a);
    return r;
  }

  std::string result_name(bool value, const std::vector<size_t>& wrt, size_t i) const {
    if (value && i == 0) return "the value";
    return "d/d" + f_->args()[wrt[i - (value ? 1 : 0)]];
  }

  // The arguments of one call, ready for the kernel.
  struct Prepared {
    std::vector<py::array> keep;  // the arrays the pointers point into
    std::vector<driver::PointArg> points;
    std::vector<py::ssize_t> shape;  // the broadcast shape
    int64_t n = 1;
    py::array make(DType t) const { return cached_array(t, shape); }
    // `obj` as an output array for `what`: a writeable C-contiguous array of
    // dtype `t` and the broadcast shape, sharing no memory with the
    // arguments or the other outputs.
    py::array check_out(const py::handle& obj, const std::string& what, DType t) {
      if (!py::isinstance<py::array>(obj)) raise("out for " + what + " is not a NumPy array");
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (!a.dtype().equal(numpy_dtype(t)) || !(a.flags() & py::array::c_style) || !a.writeable())
        raise("out for " + what + " must be a writeable C-contiguous " +
              std::string(t == DType::F32 ? "float32" : "float64") + " array");
      if (!std::equal(shape.begin(), shape.end(), a.shape(), a.shape() + a.ndim()) ||
          static_cast<size_t>(a.ndim()) != shape.size())
        raise("out for " + what + " has shape " + shape_text(a) + ", expected " +
              shape_text(std::vector<int64_t>(shape.begin(), shape.end()), false));
      footprint.write(a, "out for " + what);
      outs.push_back(a);
      return a;
    }
    std::vector<py::array> outs;
    Footprint footprint;  // the bytes of the arguments and outputs
  };

  // Checks and converts the arguments; `results` arrays of the broadcast
  // shape will be made (checked against the memory budget with the copies).
  Prepared prepare(const py::args& args, size_t results) const {
    const std::vector<std::string>& names = f_->args();
    if (args.size() != names.size()) {
      std::string list;
      for (const std::string& a : names) list += (list.empty() ? "" : ", ") + a;
      raise("the function takes " + std::to_string(names.size()) + " arguments (" + list + "), not " +
            std::to_string(args.size()));
    }
    const DType t = dtype();
    const py::dtype want = numpy_dtype(t);
    Prepared p;
    // The arguments as they are (no copy yet: a copy is counted against the
    // memory budget first).
    for (size_t i = 0; i < names.size(); ++i) {
      py::array a = py::array::ensure(args[i]);
      if (!a || std::string("biuf").find(a.dtype().kind()) == std::string::npos) {
        PyErr_Clear();
        raise("argument '" + names[i] + "' is not an array of real numbers");
      }
      p.keep.push_back(std::move(a));
    }
    // NumPy's broadcasting: shapes aligned at their last axes, each axis
    // equal or 1.
    size_t rank = 0;
    for (const py::array& a : p.keep) rank = std::max(rank, static_cast<size_t>(a.ndim()));
    p.shape.assign(rank, 1);
    for (size_t i = 0; i < p.keep.size(); ++i) {
      const py::array& a = p.keep[i];
      for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        const py::ssize_t len = a.shape(d);
        py::ssize_t& have = p.shape[rank - static_cast<size_t>(a.ndim()) + static_cast<size_t>(d)];
        if (len == have || len == 1) continue;
        if (have != 1) {
          std::string others;
          for (size_t j = 0; j < i; ++j) others += (j ? ", " : " ") + names[j] + " " + shape_text(p.keep[j]);
          raise("argument '" + names[i] + "' has shape " + shape_text(a) +
                ", which does not broadcast with the arguments before it:" + others);
        }
        have = len;
      }
    }
    int64_t points = 1;
    for (py::ssize_t d : p.shape)
      if (__builtin_mul_overflow(points, static_cast<int64_t>(d), &points)) raise("the broadcast shape is too large");
    p.n = points;
    const auto n = static_cast<uint64_t>(points);
    // An argument of n values (its shape the broadcast shape but for axes of
    // 1, so its elements are in the same order) is used in place when it is
    // C-contiguous and of the function's dtype.
    auto in_place = [&](const py::array& a) {
      return static_cast<uint64_t>(a.size()) == n && (a.flags() & py::array::c_style) && a.dtype().equal(want);
    };
    uint64_t copies = results;
    for (const py::array& a : p.keep)
      if (a.size() != 1 && !in_place(a)) ++copies;
    if (copies) driver::check_points(p.n, copies, t == DType::F32 ? ir::DType::F32 : ir::DType::F64);
    for (py::array& a : p.keep) {
      const bool scalar = a.size() == 1;
      if (scalar) {
        a = t == DType::F32 ? py::array(py::array_t<float, py::array::forcecast>::ensure(a))
                            : py::array(py::array_t<double, py::array::forcecast>::ensure(a));
      } else if (!in_place(a)) {
        static const py::handle numpy = py::module_::import("numpy").release();  // kept for the process
        if (static_cast<uint64_t>(a.size()) != n) a = numpy.attr("broadcast_to")(a, py::tuple(py::cast(p.shape)));
        a = numpy.attr("ascontiguousarray")(a, want);
      }
      p.points.push_back({a.data(), scalar});
      p.footprint.add(a);
    }
    return p;
  }

  std::shared_ptr<driver::Elementwise> f_;
};


}  // namespace
}  // namespace nabla::python

PYBIND11_MODULE(_nabla, mod) {
  using namespace nabla;
  using namespace nabla::python;
  mod.doc() = "nabla: symbolic differentiation and expression compiler for neural networks";
  mod.attr("__version__") = version();
  mod.attr("llvm_version") = llvm_version();

  nabla_error = PyErr_NewExceptionWithDoc("nabla.NablaError",
                                          "A model or expression nabla cannot use; str() is the diagnostic text",
                                          PyExc_ValueError, nullptr);
  mod.attr("NablaError") = py::handle(nabla_error);
  py::class_<PyDiagnostic>(mod, "Diagnostic")
      .def_readonly("file", &PyDiagnostic::file)
      .def_readonly("line", &PyDiagnostic::line)
      .def_readonly("column", &PyDiagnostic::column)
      .def_readonly("message", &PyDiagnostic::message)
      .def_readonly("severity", &PyDiagnostic::severity)
      .def("__repr__", [](const PyDiagnostic& d) {
        return d.file + ":" + std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message;
      });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      set_error(e.what(), e.diagnostics());
    } catch (const NpzError& e) {
      set_error(e.what(), {});
    } catch (const ResourceError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const OutputError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });

  py::class_<PyModel>(mod, "Model")
      .def_property_readonly("name", [](const PyModel& m) { return m.model().name(); })
      .def_property_readonly("params", [](const PyModel& m) { return m.declarations(m.model().params()); })
      .def_property_readonly("inputs", [](const PyModel& m) { return m.declarations(m.model().inputs()); })
      .def_property_readonly("labels", [](const PyModel& m) { return m.declarations(m.model().labels()); })
      .def_property_readonly("outputs", [](const PyModel& m) { return m.declarations(m.model().outputs()); })
      .def_property_readonly("consts", &PyModel::consts)
      .def_property_readonly("dtype", [](const PyModel& m) { return numpy_dtype(m.model().dtype()); })
      .def_property_readonly("parameter_count", [](const PyModel& m) { return m.model().parameter_count(); })
      .def("init", &PyModel::init, py::arg("seed") = py::none())
      .def("forward", &PyModel::forward, py::arg("params"), py::arg("data"))
      .def("loss", &PyModel::loss, py::arg("params"), py::arg("data"))
      .def("grad", &PyModel::grad, py::arg("params"), py::arg("data"), py::arg("out") = py::none())
      .def("step", &PyModel::step, py::arg("params"), py::arg("data"), py::arg("lr"))
      .def("train", &PyModel::train, py::arg("params"), py::arg("data"), py::arg("epochs"), py::arg("batch"),
           py::arg("lr"), py::arg("optimizer") = "sgd", py::arg("val") = py::none(), py::arg("seed") = 0,
           py::arg("weight_decay") = 0.0, py::arg("callback") = py::none())
      .def("gradcheck", &PyModel::gradcheck, py::arg("params") = py::none(), py::arg("data") = py::none(),
           py::arg("tolerance") = 1e-6, py::arg("seed") = py::none(), py::arg("samples") = py::none())
      .def("gradient_program", &PyModel::gradient_program, py::arg("wrt") = py::none(), py::arg("simplify") = true,
           py::arg("format") = "text")
      .def("graph", [](const PyModel& m, bool grad) { return m.model().graph(grad); }, py::arg("grad") = false)
      .def(
          "save_object",
          [](const PyModel& m, const std::string& path, py::object header, py::object prefix) {
            m.model().save_object(path, header.is_none() ? "" : as<std::string>(header, "header", "a path"),
                                  prefix.is_none() ? "" : as<std::string>(prefix, "prefix", "a string"));
          },
          py::arg("path"), py::arg("header") = py::none(), py::arg("prefix") = py::none())
      .def("__repr__", [](const PyModel& m) {
        return "<nabla.Model " + m.model().name() + ": " + std::to_string(m.model().parameter_count()) + " parameters>";
      });

  mod.def(
      "compile",
      [](const std::string& path, py::object dtype, py::object threads, py::object consts) {
        ModelOptions o = options_of(dtype, threads, consts);
        return PyModel(Model::load(path, o));
      },
      py::arg("path"), py::arg("dtype") = "float32", py::arg("threads") = py::none(), py::arg("consts") = py::none());
  mod.def(
      "compile_string",
      [](const std::string& text, py::object dtype, py::object threads, py::object consts) {
        ModelOptions o = options_of(dtype, threads, consts);
        return PyModel(Model::parse(text, o, "<string>"));
      },
      py::arg("text"), py::arg("dtype") = "float32", py::arg("threads") = py::none(), py::arg("consts") = py::none());

  mod.def(
      "simplify",
      [](const std::string& expr) {
        std::string r;
        driver::with_large_stack([&] {
          ir::Context ctx;
          r = driver::text(driver::simplified(ctx, driver::expression(expr, ctx)));
        });
        return r;
      },
      py::arg("expr"));
  mod.def(
      "diff",
      [](const std::string& expr, py::object wrt, int order, py::object at) -> py::dict {
        if (order != 1 && order != 2) raise("order must be 1 or 2");
        const std::vector<std::string> names = names_of(wrt);
        if (names.empty()) raise("wrt names no variable");
        std::optional<std::map<std::string, double>> point;
        if (!at.is_none()) point = point_of(mapping(at, "at"));
        std::vector<std::string> texts;
        std::vector<double> values;
        driver::with_large_stack([&] {
          ir::Context ctx;
          const driver::Expression e = driver::expression(expr, ctx, names);
          for (const std::string& w : names) {
            const ir::Node* d = driver::derivatives(ctx, e, {w}, order, false, true)[0].value;
            const std::span<const ir::Node* const> root(&d, 1);
            if (!point) {
              texts.push_back(driver::text(d));
            } else if (std::string missing = driver::missing_variable(root, *point); !missing.empty()) {
              raise("no value for '" + missing + "'");
            } else {
              values.push_back(driver::evaluate(root, *point)[0]);
            }
          }
        });
        py::dict out;
        for (size_t i = 0; i < names.size(); ++i) {
          if (point) out[py::str(names[i])] = values[i];
          else out[py::str(names[i])] = texts[i];
        }
        return out;
      },
      py::arg("expr"), py::arg("wrt"), py::arg("order") = 1, py::arg("at") = py::none());
  py::class_<PyLambdified>(mod, "Lambdified")
      .def("__call__", &PyLambdified::call)
      .def("grad", &PyLambdified::grad)
      .def("value_and_grad", &PyLambdified::value_and_grad)
      .def_property_readonly("source", [](const PyLambdified& f) { return f.function().source(); })
      .def_property_readonly("derivatives", &PyLambdified::derivatives)
      .def_property_readonly("args", [](const PyLambdified& f) { return py::tuple(py::cast(f.function().args())); })
      .def_property_readonly("dtype", [](const PyLambdified& f) { return numpy_dtype(f.dtype()); })
      .def_property_readonly("threads", [](const PyLambdified& f) { return f.function().threads(); })
      .def("__repr__", [](const PyLambdified& f) {
        std::string args;
        for (const std::string& a : f.function().args()) args += (args.empty() ? "" : ", ") + a;
        return "<nabla.Lambdified (" + args + ") -> " + f.function().source() + ", " +
               (f.function().dtype() == ir::DType::F32 ? "float32" : "float64") + ">";
      });
  mod.def(
      "lambdify",
      [](const std::string& expr, py::object args, py::object dtype, py::object threads) {
        driver::ElementwiseOptions o;
        o.dtype = dtype_named(dtype) == DType::F32 ? ir::DType::F32 : ir::DType::F64;
        if (!threads.is_none()) {
          o.threads = threads_asked(threads);
        }
        return PyLambdified(driver::Elementwise(expr, names_of(args), o));
      },
      py::arg("expr"), py::arg("args"), py::arg("dtype") = "float64", py::arg("threads") = py::none());
  mod.def(
      "eval",
      // (expr, /, **values): taken as *args, since pybind11 refuses a
      // keyword named as a positional-only parameter (a variable `expr`).
      [](const py::args& args, const py::kwargs& values) {
        if (args.size() != 1 || !py::isinstance<py::str>(args[0]))
          throw py::type_error("eval(expr, /, **values) takes the expression as its one positional argument, a string");
        const std::string expr = args[0].cast<std::string>();
        const std::map<std::string, double> point = point_of(values);
        double v = 0;
        driver::with_large_stack([&] {
          ir::Context ctx;
          const driver::Expression e = driver::expression(expr, ctx);
          const ir::Node* root = e.lowered.root;
          if (std::string missing = driver::missing_variable(std::span<const ir::Node* const>(&root, 1), point);
              !missing.empty())
            raise("no value for '" + missing + "'");
          v = driver::evaluate(std::span<const ir::Node* const>(&root, 1), point)[0];
        });
        return v;
      },
      "eval(expr, /, **values): the expression's value at the values of its variables");

  // Instances come from nabla.compile, nabla.lambdify and error reports
  // only: `Model.__new__(Model)` would make one with no C++ object behind it,
  // whose first method call dereferences nothing. (The module's own results
  // are made without calling __new__.) The type's own tp_new refuses too,
  // so that CPython refuses the base's `pybind11_object.__new__(Model)` as
  // "not safe". Pickling and copying raise TypeError: pickle's protocols 0
  // and 1 would call the base class on the object, which aborts the process
  // in pybind11.
  for (const char* name : {"Diagnostic", "Model", "Lambdified"}) {
    const std::string type = name;
    py::object cls = mod.attr(name);
    cls.attr("__new__") = py::cpp_function([type](const py::args&, const py::kwargs&) -> py::object {
      throw py::type_error("nabla." + type + " objects are made by the module's functions, not directly");
    });
    auto* t = reinterpret_cast<PyTypeObject*>(cls.ptr());
    t->tp_new = refuse_new;
    PyType_Modified(t);
    const py::cpp_function no_pickle(
        [type](const py::args&) -> py::object {
          throw py::type_error("cannot pickle or copy a nabla." + type +
                               " object (a Model: compile the model again; a Lambdified: lambdify again)");
        },
        py::is_method(cls));
    cls.attr("__reduce_ex__") = no_pickle;
    cls.attr("__reduce__") = no_pickle;
  }
}
