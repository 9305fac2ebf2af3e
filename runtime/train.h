// The training loop (nabla train): minibatches by a seeded shuffle each
// epoch, the optimizers, validation, progress, atomic saves, interruption,
// and the non-finite check. It calls kernels through the executor only, and
// reports to callbacks: drawing progress is the caller's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/comm.h"
#include "runtime/executor.h"
#include "runtime/npz.h"

namespace nabla::runtime {

enum class Optimizer : uint8_t { Sgd, Momentum, Adam };

struct TrainConfig {
  int epochs = 1;
  int64_t batch = 32;
  double lr = 0.1;
  Optimizer optimizer = Optimizer::Sgd;
  double weight_decay = 0;  // W <- W - lr (mean gradient + weight_decay W)
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  uint64_t seed = 0;
  bool grad_norms = false;  // per-param gradient norms each epoch
  std::string out;          // parameter file written every epoch and at the end
  // Data-parallel training (docs/distributed.md): with a communicator of
  // several processes, `batch` is the global batch; each process computes
  // the gradient of its share of every step, the gradients are averaged by
  // one allreduce, every process makes the same update; rank 0's initial
  // params are everyone's, and only rank 0 saves. Without `sharded`, every
  // process holds the same data and takes its slice of each step of the one
  // seeded shuffle (the answer of one process, to rounding); with it, each
  // process holds its own shards and shuffles them alone, `batch / size`
  // samples a step.
  const Comm* comm = nullptr;
  bool sharded = false;
};

// Arrays in the kernels' element type, batch first (inputs, labels), in the
// kernels' argument order; names for messages.
struct TrainData {
  std::vector<std::string> input_names, label_names;
  std::vector<const Array*> inputs, labels;
  int64_t n = 0;
};

struct TrainModel {
  Executor* executor = nullptr;
  std::vector<std::string> param_names;
  std::vector<int64_t> input_sizes, label_sizes, param_sizes, output_sizes;  // per sample / in all
  // Accuracy: the index of the output that is a distribution over the same
  // classes as a one-hot label (that label's index), or -1.
  int accuracy_output = -1, accuracy_label = -1;
  // Optional: a forward kernel over the inputs then the labels whose outputs
  // are the accuracy output (when accuracy_output >= 0) then each sample's
  // loss; evaluate() then takes a batch's loss and accuracy from one call of
  // it instead of a gradient and a forward call.
  Executor* eval = nullptr;
};

struct EpochStats {
  int epoch = 0, epochs = 0;  // 1-based
  int64_t samples = 0, steps = 0;
  double loss = 0, accuracy = -1, val_loss = -1, val_accuracy = -1, seconds = 0;
  double allreduce_seconds = 0;  // of `seconds`, in the steps' allreduce (data-parallel training)
  std::vector<double> grad_norms;  // per param, mean over the epoch's steps (TrainConfig::grad_norms)
};

// Where an epoch stands after one of its steps.
struct StepProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0;           // steps taken since training began
  int64_t done = 0, total = 0;  // samples of this epoch
  double mean_loss = 0;       // over this epoch's samples so far
  double seconds = 0;         // since this epoch began
};

// What the caller hears and decides; each may be empty.
struct TrainCallbacks {
  std::function<void(const StepProgress&)> on_step;  // after every step (cheap: the caller throttles drawing)
  // After each epoch, before its params are saved; false stops training
  // once they are (status Stopped).
  std::function<bool(const EpochStats&)> on_epoch;
  std::function<bool()> should_stop;  // polled after every step: true stops after saving
};

enum class TrainStatus : uint8_t {
  Completed,  // every epoch ran and was saved
  Stopped,    // should_stop or on_epoch said so: stopped and saved
  NonFinite,  // a loss, gradient or param stopped being finite (not saved)
  SaveFailed, // writing TrainConfig::out failed
};

struct TrainResult {
  TrainStatus status = TrainStatus::Completed;
  int64_t steps = 0;
  int epoch = 0;            // the epoch training ended in
  std::string message;      // NonFinite, SaveFailed: what happened, and the last saved file
  std::string save_error;   // Stopped: why the final save failed ("" when it did not)
};

// Trains `params` (in the kernels' element type, updated in place), saving
// them to config.out (when set) after every epoch and when stopped. Prints
// nothing: progress, epochs and the end are reported to the callbacks and in
// the result.
TrainResult train(const TrainModel& model, const TrainConfig& config, const TrainData& train, const TrainData* val,
                  ArrayMap& params, const TrainCallbacks& callbacks = {});

// Mean loss and accuracy (-1 when not applicable) of `params` on the samples
// [first, last) of `data` (last < 0: to the end); without `loss`, only the
// accuracy (forward passes only). The loss: from model.eval when set (each
// sample's loss, summed in f64), else from the gradient kernel.
EpochStats evaluate(const TrainModel& model, const TrainData& data, const ArrayMap& params, int64_t batch,
                    bool loss = true, int64_t first = 0, int64_t last = -1);

}  // namespace nabla::runtime
