// nabla train (spec/cli.md): compiles the model's kernels, reads the data,
// and runs the runtime's training loop (runtime/train.h).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_kernels.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "frontend/lower.h"
#include "runtime/init.h"
#include "runtime/output.h"
#include "runtime/train.h"

namespace nabla::cli {
namespace {

// Ctrl-C asks the loop to stop after the current batch (a signal handler can
// only set a flag: the one piece of process-wide state here).
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

struct TrainArgs {
  std::string model, data, val, params, out, optimizer = "sgd";
  int epochs = 1;
  int64_t batch = 32;
  double lr = 0.1, weight_decay = 0, momentum = 0.9;
  bool grad_norms = false;
  std::string progress = "auto";
};

// Inputs and labels of `path`, checked against the model, in `dtype`.
runtime::TrainData read_data(const std::string& path, const LoweredModel& m, runtime::DType dtype,
                             std::vector<runtime::Array>& storage) {
  const runtime::ArrayMap arrays = runtime::read_npz(path);
  runtime::TrainData d;
  int64_t n = -1;
  storage.reserve(m.inputs.size() + m.labels.size());
  for (const ir::Node* v : m.inputs) {
    storage.push_back(require(arrays, path, v->name(), v->shape().dims(), true, &n).as(dtype));
    d.input_names.push_back(v->name());
  }
  for (size_t i = 0; i < m.labels.size(); ++i) {
    const ir::Node* v = m.labels[i];
    const runtime::Array& a = require(arrays, path, v->name(), v->shape().dims(), true, &n);
    if (m.label_distribution[i]) check_distribution(a, v->name(), v->shape().numel(), n, dtype);
    storage.push_back(a.as(dtype));
    d.label_names.push_back(v->name());
  }
  for (size_t i = 0; i < m.inputs.size(); ++i) d.inputs.push_back(&storage[i]);
  for (size_t i = 0; i < m.labels.size(); ++i) d.labels.push_back(&storage[m.inputs.size() + i]);
  d.n = n;
  if (n <= 0) throw runtime::NpzError("'" + path + "' holds no samples");
  return d;
}

int run_train(const TrainArgs& args, const GlobalOptions& global) {
  // Ctrl-C from the start: during loading and compiling it stops training
  // after its first batch (saved, exit 130) rather than killing the process.
  interrupted.store(false);
  struct Restore {
    void (*previous)(int);
    ~Restore() { std::signal(SIGINT, previous); }
  } restore{std::signal(SIGINT, on_interrupt)};
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(args.model, *options, std::cerr);
  if (!loaded) return kExitUserError;
  if (!loaded->model.loss) {
    print_error(std::cerr, "'" + args.model + "' has no loss: there is nothing to train");
    return kExitUserError;
  }
  if (loaded->model.params.empty()) {
    print_error(std::cerr, "'" + args.model + "' has no params: there is nothing to train");
    return kExitUserError;
  }
  const runtime::DType dtype = global.dtype == "f64" ? runtime::DType::F64 : runtime::DType::F32;
  ir::Context ctx;
  const LoweredModel m = lower_model(loaded->model, ctx);
  try {
    // -o may name --params: resuming into the same file is asked for often,
    // the file is read whole before training and replaced atomically.
    runtime::check_output(args.out, {args.model, args.data, args.val});
    std::vector<runtime::Array> train_storage, val_storage;
    const runtime::TrainData train = read_data(args.data, m, dtype, train_storage);
    std::optional<runtime::TrainData> val;
    if (!args.val.empty()) val = read_data(args.val, m, dtype, val_storage);
    // Params: from --params (resume), else by their init.
    runtime::ArrayMap params;
    const uint64_t seed = global.seed.value_or(0);
    if (!args.params.empty()) {
      const runtime::ArrayMap given = runtime::read_npz(args.params);
      int64_t none = -1;
      for (const ir::Node* p : m.params)
        params[p->name()] = require(given, args.params, p->name(), p->shape().dims(), false, &none).as(dtype);
    } else {
      std::vector<runtime::ParamInit> inits;
      for (const ParamDecl& p : loaded->model.params)
        inits.push_back({p.name, p.shape.dims(), kind_of(p.init.kind), p.init.a, p.init.b});
      params = runtime::initialize(inits, seed, dtype);
    }
    ModelKernels k = compile_model_kernels(ctx, m, !m.outputs.empty(), true, dtype, global, std::cerr, nullptr, true);
    if (!k.kernels) return kExitUserError;
    runtime::TrainModel model;
    model.executor = k.executor.get();
    for (const ir::Node* p : m.params) {
      model.param_names.push_back(p->name());
      model.param_sizes.push_back(p->shape().numel());
    }
    for (const ir::Node* v : m.inputs) model.input_sizes.push_back(v->shape().numel());
    for (const ir::Node* v : m.labels) model.label_sizes.push_back(v->shape().numel());
    for (const auto& o : k.spec.outputs) model.output_sizes.push_back(o.second->shape().numel());
    // Accuracy: an output that is a softmax over as many classes as a label
    // declared a distribution.
    for (size_t o = 0; o < m.outputs.size() && model.accuracy_output < 0; ++o)
      for (size_t l = 0; l < m.labels.size(); ++l)
        if (m.label_distribution[l] && m.outputs[o].second->op() == ir::Op::Softmax &&
            m.outputs[o].second->shape() == m.labels[l]->shape()) {
          model.accuracy_output = static_cast<int>(o);
          model.accuracy_label = static_cast<int>(l);
          break;
        }
    runtime::TrainConfig config;
    config.epochs = args.epochs;
    config.batch = std::min(args.batch, train.n);  // a larger batch is the whole data
    config.lr = args.lr;
    config.optimizer = args.optimizer == "adam" ? runtime::Optimizer::Adam
                     : args.optimizer == "momentum" ? runtime::Optimizer::Momentum
                                                    : runtime::Optimizer::Sgd;
    config.weight_decay = args.weight_decay;
    config.momentum = args.momentum;
    config.seed = seed;
    config.progress = args.progress == "always" || (args.progress == "auto" && ::isatty(2));
    config.grad_norms = args.grad_norms;
    config.out = args.out;
    const int rc = runtime::train(model, config, train, val ? &*val : nullptr, params, interrupted, std::cout,
                                  std::cerr);
    if (rc == 0 && val) {
      const runtime::EpochStats e = runtime::evaluate(model, *val, params, 256);
      if (e.accuracy >= 0) std::printf("%s: %.2f%% accuracy on %lld samples\n", args.val.c_str(), 100 * e.accuracy,
                                       static_cast<long long>(val->n));
    }
    return rc;
  } catch (const runtime::NpzError& e) {
    print_error(std::cerr, e.what());
    return kExitUserError;
  }
}

}  // namespace

void add_train_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model's params by minibatch gradient descent");
  cmd->add_option("MODEL", args->model, "the .nn file")->required();
  cmd->add_option("--data", args->data, "training inputs and labels (.npz, batch first)")->required();
  cmd->add_option("--val", args->val, "validation inputs and labels, evaluated each epoch");
  cmd->add_option("--params", args->params, "initial params (.npz; default: each param's init, --seed)");
  cmd->add_option("--epochs", args->epochs, "passes over the data")
      ->required()
      ->check(positive_integer("number of epochs", kMaxEpochs));
  cmd->add_option("--batch", args->batch, "samples per step (more than the data holds: the whole data)")
      ->required()
      ->check(positive_integer("batch size", kMaxBatch));
  cmd->add_option("--lr", args->lr, "learning rate")->required()->check(positive_number("learning rate", kMaxFactor));
  cmd->add_option("--optimizer", args->optimizer, "sgd (default), momentum or adam")
      ->check(CLI::IsMember({"sgd", "momentum", "adam"}));
  cmd->add_option("--weight-decay", args->weight_decay, "L2 decay: W <- W - lr (gradient + L W)")
      ->check(non_negative_number("weight decay", kMaxFactor));
  cmd->add_option("--momentum", args->momentum, "momentum coefficient (default 0.9)")
      ->check(non_negative_number("momentum coefficient", 1));
  cmd->add_flag("--grad-norms", args->grad_norms, "print each param's gradient norm every epoch");
  cmd->add_option("--progress", args->progress, "auto (a bar on a terminal), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->add_option("-o,--output", args->out, "the params file, written every epoch and at the end")->required();
  cmd->callback([args, &action, &global] { action = [args, &global] { return run_train(*args, global); }; });
}

}  // namespace nabla::cli
