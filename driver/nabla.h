// nabla as a library: the one header a C++ program includes.
//
//   nabla::Model m = nabla::Model::load("mlp.nn");          // throws nabla::Error
//   nabla::ArrayMap params = m.init(/*seed=*/1);
//   double loss = m.step(params, data, /*lr=*/0.1);           // one SGD step, in place
//   std::cout << m.gradient_program();                         // what `nabla diff` prints
//
// A Model is a checked .nn model with its kernels, compiled (JIT, through the
// on-disk cache) the first time a call needs them. Arrays are runtime::Array
// (a shape and f32 or f64 data; runtime/npz.h reads and writes .npz files),
// named as the model names its inputs, labels and params; data is batch
// first. Calls check every array against the model before any kernel runs
// (a missing array, a wrong shape, unequal batch sizes: nabla::Error naming
// it) and leave the caller's arrays untouched when they fail.
//
// Errors: nabla::Error for a model that does not check (its diagnostics(),
// each with file, line, column and the text the command prints) and for
// arrays that do not fit; runtime::NpzError for an .npz file that cannot be
// read; runtime::ResourceError when a request exceeds the memory budget
// (NABLA_MEMORY_LIMIT). All derive from std::runtime_error. Nothing here
// prints: progress reaches the caller through callbacks.
//
// Threads: one Model may be called from several threads; its kernel calls
// take turns (each call itself runs on the Model's threads).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "driver/error.h"
#include "driver/gradcheck.h"
#include "runtime/budget.h"
#include "runtime/npz.h"
#include "runtime/output.h"
#include "runtime/train.h"

namespace nabla {

using driver::Error;
using driver::GradcheckOptions;
using driver::GradcheckResult;
using driver::Message;
using runtime::Array;
using runtime::ArrayMap;
using runtime::DType;
using runtime::EpochStats;
using runtime::kMaxThreads;
using runtime::NpzError;
using runtime::OutputError;
using runtime::Optimizer;
using runtime::ResourceError;
using runtime::StepProgress;
using runtime::TrainCallbacks;
using runtime::TrainConfig;

// The library's version ("0.1.0") and its LLVM's ("19.1.7").
std::string version();
std::string llvm_version();

// Lets the heaps LLVM compiles in use huge pages (codegen/compile_heap.h):
// a cold compile then takes about 1,800 page faults fewer (the MLP
// 784-256-256-10: 108 -> 98 ms). It changes malloc for the whole process
// (glibc's top pad 32 MiB, its mmap threshold a fixed 4 MiB), so it is the
// program's choice: call it once, at the start of main, before any thread
// starts; the `nabla` command does. False where it did nothing
// (transparent huge pages off, a sanitizer build).
bool use_huge_pages_for_compiling();

// One declaration of a model, in declaration order.
struct Declaration {
  std::string name;
  std::vector<int64_t> shape;  // inputs, labels, outputs: per sample
  bool distribution = false;   // labels declared `distribution`
  double value = 0;            // consts: the value (after any override)
};

struct ModelOptions {
  DType dtype = DType::F32;              // the kernels' element type
  int threads = 0;                       // threads kernels may use; 0: every core
  std::map<std::string, double> consts;  // const overrides (as `--set NAME=VALUE`)
  bool use_cache = true;                 // the on-disk kernel cache
  std::string cache_dir;                 // "": $NABLA_CACHE_DIR, $XDG_CACHE_HOME/nabla or ~/.cache/nabla
};

class Model {
public:
  // A .nn file, or model text held in memory (`name` stands for the file in
  // diagnostics). Throws Error with the diagnostics when it does not check.
  static Model load(const std::string& path, const ModelOptions& options = {});
  static Model parse(const std::string& text, const ModelOptions& options = {},
                     const std::string& name = "<string>");

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // `model NAME`, else the file name without its folder and extension.
  const std::string& name() const;
  const std::vector<Declaration>& inputs() const;
  const std::vector<Declaration>& labels() const;
  const std::vector<Declaration>& params() const;
  const std::vector<Declaration>& outputs() const;
  const std::vector<Declaration>& consts() const;
  bool has_loss() const;
  int64_t parameter_count() const;
  DType dtype() const;

  // The gradient program of the loss as `nabla diff` prints it (format
  // "text", "latex", "dot" or "json"); `wrt`: param names, empty for all.
  std::string gradient_program(const std::vector<std::string>& wrt = {}, bool simplify = true,
                               const std::string& format = "text") const;
  // The graph in Graphviz DOT: outputs and loss, or (`grad`) the gradient program.
  std::string graph(bool grad = false) const;

  // The kernels as an object file at `path` and, unless `header_path` is "",
  // their C header (as `nabla compile --emit obj/header`); `prefix`: the
  // functions' prefix ("" for the model's name). Files are replaced
  // atomically; the model's own file is never overwritten.
  void save_object(const std::string& path, const std::string& header_path = "",
                   const std::string& prefix = "") const;

  // Fresh params by each param's `init`, seeded, in dtype().
  ArrayMap init(uint64_t seed) const;

  // --- Checked calls on named arrays (converted to dtype() when needed) ---
  // The outputs, batch first.
  ArrayMap forward(const ArrayMap& params, const ArrayMap& data);
  // The mean loss over the batch.
  double loss(const ArrayMap& params, const ArrayMap& data);
  // The mean loss; the mean gradient of every param into `grads` (by name).
  double grad(const ArrayMap& params, const ArrayMap& data, ArrayMap& grads);
  // One SGD step on `params` (updated in place; converted to dtype() first
  // if they are not); returns the loss before the step.
  double step(ArrayMap& params, const ArrayMap& data, double lr);
  // Trains `params` as `nabla train` does (config.out: a file saved after
  // every epoch; "" for none). Returns each epoch's figures. `callbacks`
  // hear every step and epoch and may stop training (params keep what the
  // finished steps made). While on_epoch runs, `params` hold that epoch's
  // values and the callback may call this model (forward, loss, ...);
  // values it writes into `params` train on from there (an array of the
  // wrong shape or values the dtype cannot hold: Error). Throws Error when the
  // loss or a gradient stops being finite (params as they were before
  // training).
  std::vector<EpochStats> train(ArrayMap& params, const ArrayMap& data, const TrainConfig& config,
                                const ArrayMap* val = nullptr, const TrainCallbacks& callbacks = {});
  // The gradient against central finite differences, in f64. Params: by
  // their init (options.seed) when null; data: random samples when null.
  GradcheckResult gradcheck(const ArrayMap* params = nullptr, const ArrayMap* data = nullptr,
                            const GradcheckOptions& options = {}) const;

  // --- Raw calls on the caller's buffers (codegen/abi.h) ---
  // Arrays in declaration order, of dtype(), C-contiguous, batch first for
  // inputs, labels and outputs; n samples. Nothing is checked but n >= 1
  // and the labels declared distributions (each sample's entries
  // non-negative, summing to 1): the caller vouches for the sizes.
  void forward(const void* const* inputs, const void* const* params, void* const* outputs, int64_t n);
  void grad(const void* const* inputs, const void* const* labels, const void* const* params, void* loss,
            void* const* grads, int64_t n);
  void step(const void* const* inputs, const void* const* labels, void* const* params, void* loss, double lr,
            int64_t n);

private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nabla
