// The training loop (nabla train): minibatches by a seeded shuffle each
// epoch, the optimizers, validation, progress, atomic saves, interruption,
// and the non-finite check. It calls kernels through the executor only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

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
  bool progress = false;    // a progress bar (a terminal); else one line per epoch
  bool grad_norms = false;  // per-param gradient norms each epoch
  std::string out;          // parameter file written every epoch and at the end
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
};

struct EpochStats {
  double loss = 0, accuracy = -1, val_loss = -1, val_accuracy = -1, seconds = 0;
  std::vector<double> grad_norms;  // per param, mean over the epoch's steps
};

// Trains `params` (in the kernels' element type, updated in place). Returns
// 0, 1 after a non-finite loss or gradient (the message on `err`), or 130
// after `stop` became true (the current batch finished and saved).
int train(const TrainModel& model, const TrainConfig& config, const TrainData& train, const TrainData* val,
          ArrayMap& params, const std::atomic<bool>& stop, std::ostream& out, std::ostream& err);

// Mean loss and accuracy (-1 when not applicable) of `params` on `data`;
// without `loss`, only the accuracy (forward passes only).
EpochStats evaluate(const TrainModel& model, const TrainData& data, const ArrayMap& params, int64_t batch,
                    bool loss = true);

}  // namespace nabla::runtime
