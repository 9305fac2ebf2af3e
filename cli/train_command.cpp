// nabla train (docs/commands.md): compiles the model's kernels, reads the
// data, runs the runtime's training loop (runtime/train.h) and draws its
// progress, epochs and end.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <csignal>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/arrays.h"
#include "driver/kernels.h"
#include "frontend/lower.h"
#include "runtime/comm.h"
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

std::string human(double x) {
  char buf[32];
  if (x >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", x / 1e6);
  else if (x >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", x / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", x);
  return buf;
}

// The columns of the terminal on standard error (COLUMNS, else 80 when it
// cannot tell).
int terminal_columns() {
  winsize w{};
  if (::ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0 && n < 10000) return n;
  }
  return 80;
}

// A loss as the progress bar and the epoch lines print it: `decimals`
// decimals, or as many significant digits when it is huge (1e200 has 200
// digits in %.4f, and overflowed the epoch line's buffer).
std::string loss_text(double loss, int decimals = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, std::fabs(loss) < 1e6 ? "%.*f" : "%.*g", decimals, loss);
  return buf;
}

// The progress bar on standard error, redrawn at most every 0.1 s and at
// the end of each epoch.
class ProgressBar {
public:
  void draw(const runtime::StepProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (p.epoch != epoch_) {  // each epoch draws its first step
      epoch_ = p.epoch;
      last_ = now - std::chrono::seconds(1);
    }
    if (p.done != p.total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double rate = static_cast<double>(p.done) / std::max(p.seconds, 1e-9);
    char tail[160];
    std::snprintf(tail, sizeof tail, " %3d%%  %s samples/s  loss %s  ETA %.0fs ",
                  static_cast<int>(100 * p.done / p.total), human(rate).c_str(), loss_text(p.mean_loss).c_str(),
                  std::min(static_cast<double>(p.total - p.done) / std::max(rate, 1e-9), 1e9));
    const std::string head = "epoch " + std::to_string(p.epoch) + "/" + std::to_string(p.epochs) + " [";
    // The bar takes what the terminal's width leaves (at most 30 columns);
    // the line never wraps, so "\r" redraws it in place.
    const int cols = terminal_columns();
    const int room = cols - 1 - static_cast<int>(head.size() + 1 + std::strlen(tail));
    const int width = std::clamp(room, 0, 30);
    const int filled = static_cast<int>(width * p.done / p.total);
    std::string line = head + std::string(static_cast<size_t>(filled), '=') +
                       std::string(static_cast<size_t>(width - filled), ' ') + "]" + tail;
    if (static_cast<int>(line.size()) > cols - 1) line.resize(static_cast<size_t>(std::max(cols - 1, 0)));
    std::cerr << "\r" << line << "\033[K" << std::flush;
  }

private:
  int epoch_ = 0;
  std::chrono::steady_clock::time_point last_;
};

// One line per epoch on standard output (and the gradient norms).
void print_epoch(const runtime::EpochStats& st, bool val, bool progress, const std::vector<std::string>& names,
                 int procs) {
  if (progress) std::cerr << "\r\033[K";
  char line[300];
  int at = std::snprintf(line, sizeof line, "epoch %d/%d  loss %s", st.epoch, st.epochs, loss_text(st.loss, 5).c_str());
  if (st.accuracy >= 0) at += std::snprintf(line + at, sizeof line - static_cast<size_t>(at), "  acc %.2f%%", 100 * st.accuracy);
  if (val)
    at += std::snprintf(line + at, sizeof line - static_cast<size_t>(at), "  val_loss %s",
                        loss_text(st.val_loss, 5).c_str());
  if (val && st.val_accuracy >= 0)
    at += std::snprintf(line + at, sizeof line - static_cast<size_t>(at), "  val_acc %.2f%%", 100 * st.val_accuracy);
  // Milliseconds for short epochs (an MNIST epoch takes 0.05 s).
  at += std::snprintf(line + at, sizeof line - static_cast<size_t>(at), st.seconds < 10 ? "  %.3fs  (%s samples/s)"
                                                                                         : "  %.1fs  (%s samples/s)",
                      st.seconds, human(static_cast<double>(st.samples) / st.seconds).c_str());
  if (procs > 1)
    std::snprintf(line + at, sizeof line - static_cast<size_t>(at), "  allreduce %.0f%% (%d processes)",
                  100 * st.allreduce_seconds / st.seconds, procs);
  std::cout << line << "\n";
  if (!st.grad_norms.empty()) {
    std::cout << "  grad norms:";
    for (size_t i = 0; i < st.grad_norms.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.3g", names[i].c_str(), st.grad_norms[i]);
      std::cout << buf;
    }
    std::cout << "\n";
  }
  std::cout << std::flush;
}

runtime::TrainConfig train_config(const TrainArgs& args, uint64_t seed, int64_t samples, const runtime::Comm* comm,
                                  bool sharded) {
  runtime::TrainConfig config;
  config.epochs = args.epochs;
  // A larger batch is the whole data (shards: their sizes differ, the
  // global batch stays).
  config.batch = sharded && comm ? args.batch : std::min(args.batch, samples);
  config.comm = comm;
  config.sharded = sharded && comm;
  config.lr = args.lr;
  config.optimizer = args.optimizer == "adam"       ? runtime::Optimizer::Adam
                     : args.optimizer == "momentum" ? runtime::Optimizer::Momentum
                                                    : runtime::Optimizer::Sgd;
  config.weight_decay = args.weight_decay;
  config.momentum = args.momentum;
  config.seed = seed;
  config.grad_norms = args.grad_norms;
  config.out = args.out;
  return config;
}

// The training data: --data, or (a glob) this process's shards, shard i to
// rank i mod N.
runtime::TrainData training_data(const TrainArgs& args, const LoweredModel& m, runtime::DType dtype,
                                 const runtime::Comm* comm, std::vector<runtime::Array>& storage) {
  if (!driver::is_shard_pattern(args.data))
    return driver::batch_data(runtime::read_npz(args.data), args.data, m, dtype, true, storage);
  const runtime::TrainData d = driver::shard_data(
      driver::shard_files(args.data, comm ? comm->rank() : 0, comm ? comm->size() : 1), m, dtype, storage);
  if (!comm && d.n == 0) throw runtime::NpzError("'" + args.data + "' holds no samples");
  return d;
}

// The end of training, said (by rank 0) and as an exit status.
// `last_val_accuracy`: the last epoch's accuracy on the validation set,
// whose params are the final ones when training completed (no epoch: unset).
int report_end(const runtime::TrainResult& r, const TrainArgs& args, bool leader, bool progress,
               const runtime::TrainData* val, const runtime::TrainModel& model, const runtime::ArrayMap& params,
               std::optional<double> last_val_accuracy) {
  switch (r.status) {
    case runtime::TrainStatus::Completed:
      if (val && leader) {
        // The last epoch measured it already (a validation pass took 21-29
        // ms of a one-epoch MNIST run): evaluated again only without one.
        const double accuracy =
            last_val_accuracy ? *last_val_accuracy : runtime::evaluate(model, *val, params, 256).accuracy;
        if (accuracy >= 0)
          std::printf("%s: %.2f%% accuracy on %lld samples\n", args.val.c_str(), 100 * accuracy,
                      static_cast<long long>(val->n));
      }
      return kExitOk;
    case runtime::TrainStatus::Stopped:
      if (!leader) return 130;
      if (progress) std::cerr << "\n";
      if (!r.save_error.empty()) print_error(std::cerr, r.save_error);
      std::cerr << "nabla: interrupted after step " << r.steps << " (epoch " << r.epoch << ")"
                << (r.save_error.empty() && !args.out.empty() ? "; parameters saved to " + args.out : "") << "\n";
      return 130;
    case runtime::TrainStatus::NonFinite:
      if (!leader) return kExitUserError;  // every process saw it; rank 0 says it
      std::cerr << "\n";
      print_error(std::cerr, r.message);
      return kExitUserError;
    case runtime::TrainStatus::SaveFailed:
      print_error(std::cerr, r.message);
      return kExitUserError;
  }
  return kExitUserError;
}

int run_train(const TrainArgs& args, const GlobalOptions& global) {
  // Ctrl-C from the start: during loading and compiling it stops training
  // after its first batch (saved, exit 130) rather than killing the process.
  interrupted.store(false);
  struct Restore {
    void (*previous)(int);
    ~Restore() { std::signal(SIGINT, previous); }
  } restore{std::signal(SIGINT, on_interrupt)};
  // Under mpirun: one process of a data-parallel job (docs/distributed.md).
  const runtime::Comm* comm = nullptr;
  try {
    comm = runtime::world();
  } catch (const std::runtime_error& e) {
    print_error(std::cerr, e.what());
    return kExitUsage;
  }
  const int procs = comm ? comm->size() : 1;
  const bool leader = !comm || comm->rank() == 0;  // only rank 0 prints and writes
  if (args.batch % procs != 0) {  // every process sees it; rank 0 says it
    if (leader)
      print_error(std::cerr, "--batch " + std::to_string(args.batch) +
                                 " is the global batch: it must be a multiple of the " + std::to_string(procs) +
                                 " processes");
    return kExitUsage;
  }
  const bool sharded = driver::is_shard_pattern(args.data);
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
  const runtime::DType dtype = dtype_of(global);
  ir::Context ctx;
  const LoweredModel m = lower_model(loaded->model, ctx);
  // -o may name --params: resuming into the same file is asked for often,
  // the file is read whole before training and replaced atomically.
  // Under a pattern, every file it matches (for any rank) is an input.
  std::vector<std::string> inputs{args.model, args.val};
  if (sharded) {
    for (std::string& f : driver::shard_files(args.data, 0, 1)) inputs.push_back(std::move(f));
  } else {
    inputs.push_back(args.data);
  }
  runtime::check_output(args.out, inputs);
  std::vector<runtime::Array> train_storage, val_storage;
  const runtime::TrainData train = training_data(args, m, dtype, comm, train_storage);
  std::optional<runtime::TrainData> val;
  if (!args.val.empty()) {
    val = driver::batch_data(runtime::read_npz(args.val), args.val, m, dtype, true, val_storage);
    driver::require_finite(*val, args.val);
  }
  // Params: from --params (resume), else by their init.
  const uint64_t seed = global.seed.value_or(0);
  runtime::ArrayMap params = args.params.empty()
                                 ? driver::initial_params(loaded->model, seed, dtype)
                                 : driver::params_from(runtime::read_npz(args.params), args.params, m, dtype);
  driver::CompileOptions co = compile_options(global, dtype);
  co.forward = !m.outputs.empty();
  co.sgd = true;
  driver::ModelKernels k = driver::compile_model_kernels(ctx, m, co);
  runtime::TrainModel model = driver::train_model(m, k);
  // Validation's loss and accuracy in one pass a batch (compile_eval_kernels).
  std::optional<driver::ModelKernels> eval_kernels;
  if (val) eval_kernels = driver::compile_eval_kernels(ctx, m, co, model);
  const runtime::TrainConfig config = train_config(args, seed, train.n, comm, sharded);
  const bool progress = leader && (args.progress == "always" || (args.progress == "auto" && ::isatty(2)));
  ProgressBar bar;
  runtime::TrainCallbacks callbacks;
  if (progress) callbacks.on_step = [&bar](const runtime::StepProgress& p) { bar.draw(p); };
  std::optional<double> last_val_accuracy;
  callbacks.on_epoch = [&](const runtime::EpochStats& st) {
    if (leader) print_epoch(st, val.has_value(), progress, model.param_names, procs);
    if (val) last_val_accuracy = st.val_accuracy;
    return true;
  };
  callbacks.should_stop = [] { return interrupted.load(); };
  const runtime::TrainResult r = runtime::train(model, config, train, val ? &*val : nullptr, params, callbacks);
  return report_end(r, args, leader, progress, val ? &*val : nullptr, model, params, last_val_accuracy);
}

}  // namespace

void add_train_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model's params by minibatch gradient descent");
  cmd->add_option("MODEL", args->model, "the .nn file")->required();
  cmd->add_option("--data", args->data,
                  "training inputs and labels (.npz, batch first); a glob ('train-*.npz') names shards, "
                  "each process of an mpirun job loading its own")
      ->required();
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
