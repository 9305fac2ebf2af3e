// The library API (driver/nabla.h) as a program uses it: diagnostics as
// values, declarations, checked calls against the reference interpreter and
// against the raw calls, the SGD step, array checks that leave the caller's
// arrays untouched, training with callbacks, gradcheck, and printing.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "driver/arrays.h"
#include "driver/kernels.h"
#include "driver/nabla.h"
#include "driver/reference.h"
#include "frontend/lower.h"
#include "memory_limit.h"

namespace nabla {
namespace {

const char* kXor = R"(model xor
input  x : [2]
label  y : [1]
param  W1 : [4, 2] init xavier_uniform
param  b1 : [4]
param  W2 : [1, 4] init xavier_uniform
param  b2 : [1]
const  lambda = 0.01
h = tanh(W1 @ x + b1)
p = sigmoid(W2 @ h + b2)
output p
loss binary_cross_entropy(y, p) + lambda * frobenius2(W1)
)";

ModelOptions f64() {
  ModelOptions o;
  o.dtype = DType::F64;
  o.use_cache = false;
  o.threads = 2;
  return o;
}

// The four XOR points, `copies` times each.
ArrayMap xor_data(int copies) {
  const int n = 4 * copies;
  Array x = Array::zeros({n, 2}, DType::F64), y = Array::zeros({n, 1}, DType::F64);
  for (int s = 0; s < n; ++s) {
    const int a = s % 2, b = (s / 2) % 2;
    x.f64[static_cast<size_t>(2 * s)] = a;
    x.f64[static_cast<size_t>(2 * s + 1)] = b;
    y.f64[static_cast<size_t>(s)] = a ^ b;
  }
  return {{"x", x}, {"y", y}};
}

// An f64 array's values as a plain vector (a caller's own buffer type).
std::vector<double> values(const Array& a) { return {a.f64.begin(), a.f64.end()}; }

TEST(Library, DiagnosticsAreValues) {
  try {
    Model::parse("input x : [3]\nh = w @ x\n", {}, "bad.nn");
    FAIL() << "no error";
  } catch (const Error& e) {
    ASSERT_FALSE(e.diagnostics().empty());
    const Message& m = e.diagnostics()[0];
    EXPECT_EQ(m.file, "bad.nn");
    EXPECT_EQ(m.line, 2);
    EXPECT_EQ(m.column, 5);
    EXPECT_EQ(m.severity, "error");
    EXPECT_NE(m.text.find("'w'"), std::string::npos) << m.text;
    EXPECT_EQ(m.rendered.substr(0, 16), "bad.nn:2:5: erro");
    EXPECT_EQ(e.rendered(), std::string(e.what()));
    EXPECT_NE(e.rendered().find("  h = w @ x\n      ^"), std::string::npos) << e.rendered();
  }
  EXPECT_THROW(Model::load("/nonexistent/model.nn"), Error);
  ModelOptions o;
  o.consts["lamda"] = 1;  // no such const
  try {
    Model::parse(kXor, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.rendered().find("no const named 'lamda'"), std::string::npos) << e.rendered();
  }
}

TEST(Library, Declarations) {
  ModelOptions o;
  o.consts["lambda"] = 0.5;
  const Model m = Model::parse(kXor, o);
  EXPECT_EQ(m.name(), "xor");
  ASSERT_EQ(m.params().size(), 4u);
  EXPECT_EQ(m.params()[0].name, "W1");
  EXPECT_EQ(m.params()[0].shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(m.inputs()[0].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(m.outputs()[0].name, "p");
  ASSERT_EQ(m.consts().size(), 1u);
  EXPECT_EQ(m.consts()[0].value, 0.5);
  EXPECT_EQ(m.parameter_count(), 4 * 2 + 4 + 4 + 1);
  EXPECT_TRUE(m.has_loss());
  EXPECT_EQ(m.dtype(), DType::F32);
  EXPECT_EQ(Model::parse("input x : [2]\noutput y = 2 * x\n", {}, "dir/plain.nn").name(), "plain");
}

// Checked calls equal the reference interpreter; the raw calls equal the
// checked ones bit for bit.
TEST(Library, CallsMatchTheInterpreterAndTheRawCalls) {
  Model m = Model::parse(kXor, f64());
  const ArrayMap params = m.init(3), data = xor_data(3);
  ArrayMap grads;
  const double loss = m.grad(params, data, grads);
  const ArrayMap out = m.forward(params, data);

  ir::Context ctx;
  driver::LoadedModel loaded = std::move(*driver::load_model_text("xor.nn", kXor, {}).value);
  const LoweredModel lowered = lower_model(loaded.model, ctx);
  const ArrayMap ref_grad = driver::reference_eval(ctx, lowered, params, data, 12, true, DType::F64);
  const ArrayMap ref_out = driver::reference_eval(ctx, lowered, params, data, 12, false, DType::F64);
  EXPECT_NEAR(loss, ref_grad.at("loss").f64[0], 1e-12);
  EXPECT_NEAR(m.loss(params, data), loss, 1e-15);
  for (const auto& [name, g] : grads)
    for (size_t e = 0; e < g.f64.size(); ++e) EXPECT_NEAR(g.f64[e], ref_grad.at(name).f64[e], 1e-12) << name;
  for (size_t e = 0; e < 12; ++e) EXPECT_NEAR(out.at("p").f64[e], ref_out.at("p").f64[e], 1e-14);

  std::vector<const void*> in{data.at("x").bytes()}, lab{data.at("y").bytes()}, par;
  for (const char* p : {"W1", "b1", "W2", "b2"}) par.push_back(params.at(p).bytes());
  std::vector<double> raw_out(12);
  void* outs[] = {raw_out.data()};
  m.forward(in.data(), par.data(), outs, 12);
  EXPECT_EQ(raw_out, values(out.at("p")));
  double raw_loss = 0;
  ArrayMap raw = params;  // same shapes
  std::vector<void*> gp;
  for (const char* p : {"W1", "b1", "W2", "b2"}) gp.push_back(raw.at(p).bytes());
  m.grad(in.data(), lab.data(), par.data(), &raw_loss, gp.data(), 12);
  EXPECT_EQ(raw_loss, loss);
  for (const auto& [name, g] : grads) EXPECT_EQ(raw.at(name).f64, g.f64) << name;
}

// Data handed over whole (a file just read) moves into the training data
// when it has the kernels' element type, and is converted when not; data
// lent (a caller's arrays) is copied and left as it was.
TEST(Library, BatchDataTakesWhatItIsGivenAndCopiesWhatItIsLent) {
  ir::Context ctx;
  driver::LoadedModel loaded = std::move(*driver::load_model_text("xor.nn", kXor, {}).value);
  const LoweredModel lowered = lower_model(loaded.model, ctx);
  ArrayMap lent = xor_data(5);
  std::vector<Array> storage;
  runtime::TrainData d = driver::batch_data(lent, "lent", lowered, DType::F64, true, storage);
  EXPECT_EQ(d.n, 20);
  EXPECT_NE(storage[0].f64.data(), lent.at("x").f64.data());
  EXPECT_EQ(storage[0].f64, lent.at("x").f64);
  EXPECT_EQ(lent.at("x").f64.size(), 40u);

  ArrayMap given = xor_data(5);
  const double* x = given.at("x").f64.data();
  const ArrayMap copy = given;
  d = driver::batch_data(std::move(given), "given", lowered, DType::F64, true, storage);
  EXPECT_EQ(storage[0].f64.data(), x);  // the same buffer, not a copy
  EXPECT_EQ(storage[0].f64, copy.at("x").f64);
  EXPECT_EQ(storage[1].f64, copy.at("y").f64);
  d = driver::batch_data(xor_data(5), "given", lowered, DType::F32, true, storage);
  ASSERT_EQ(storage[0].dtype, DType::F32);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(storage[0].f32[i], static_cast<float>(copy.at("x").f64[i]));
  EXPECT_EQ(d.inputs[0], &storage[0]);
  EXPECT_EQ(d.labels[0], &storage[1]);
}

TEST(Library, StepIsOneGradientStepInPlace) {
  Model m = Model::parse(kXor, f64());
  ArrayMap params = m.init(5);
  const ArrayMap before = params, data = xor_data(2);
  ArrayMap grads;
  const double loss = m.grad(params, data, grads);
  const double* w1 = params.at("W1").f64.data();
  EXPECT_EQ(m.step(params, data, 0.25), loss);
  EXPECT_EQ(params.at("W1").f64.data(), w1) << "updated in place";
  for (const auto& [name, p] : params)
    for (size_t e = 0; e < p.f64.size(); ++e)
      EXPECT_NEAR(p.f64[e], before.at(name).f64[e] - 0.25 * grads.at(name).f64[e], 1e-14) << name;
  // f32 params given to an f64 model are converted (a new array), then stepped.
  ArrayMap f32 = before;
  for (auto& [name, p] : f32) p = p.as(DType::F32);
  m.step(f32, data, 0.25);
  EXPECT_EQ(f32.at("W1").dtype, DType::F64);
}

TEST(Library, BadArraysAreErrorsThatChangeNothing) {
  Model m = Model::parse(kXor, f64());
  ArrayMap params = m.init(1);
  const ArrayMap before = params;
  ArrayMap data = xor_data(1);
  data["x"] = Array::zeros({4, 3}, DType::F64);
  try {
    m.step(params, data, 0.1);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'x'"), std::string::npos) << what;
    EXPECT_NE(what.find("[4, 3]"), std::string::npos) << what;
    EXPECT_NE(what.find("[4, 2]"), std::string::npos) << what;
  }
  ArrayMap wrong = params;
  wrong["b2"] = Array::zeros({2}, DType::F64);
  const ArrayMap wrong_before = wrong;
  EXPECT_THROW(m.step(wrong, xor_data(1), 0.1), Error);
  for (const auto& [name, p] : wrong) EXPECT_EQ(p.f64, wrong_before.at(name).f64) << name;
  ArrayMap missing = params;
  missing.erase("W2");
  EXPECT_THROW(m.loss(missing, xor_data(1)), Error);
  ArrayMap unequal = xor_data(1);
  unequal["y"] = Array::zeros({5, 1}, DType::F64);
  EXPECT_THROW(m.loss(params, unequal), Error);
  EXPECT_THROW(m.step(params, xor_data(1), NAN), Error);
  EXPECT_THROW(m.step(params, xor_data(1), -1), Error);
  EXPECT_THROW(m.step(params, xor_data(1), 1e31), Error);  // as the command's --lr
  for (const auto& [name, p] : params) EXPECT_EQ(p.f64, before.at(name).f64) << name;
  EXPECT_THROW(m.gradient_program({"nope"}), Error);
  EXPECT_THROW(m.gradient_program({}, true, "html"), Error);
}

// During on_epoch the caller's params hold the epoch's values and the model
// may be called (it is not locked by the training around the callback).
TEST(Library, EpochCallbackSeesParamsAndMayCallTheModel) {
  Model m = Model::parse(kXor, f64());
  ArrayMap params = m.init(2);
  const ArrayMap data = xor_data(4);
  const ArrayMap start = params;
  TrainConfig config;
  config.epochs = 3;
  config.batch = 8;
  config.lr = 0.1;
  std::vector<double> losses;
  std::vector<std::vector<double>> w1;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochStats&) {
    losses.push_back(m.loss(params, data));
    w1.push_back(values(params.at("W1")));
    return true;
  };
  m.train(params, data, config, nullptr, cb);
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_NE(w1[0], values(start.at("W1")));
  EXPECT_NE(w1[1], w1[0]);
  EXPECT_EQ(w1[2], values(params.at("W1")));
  EXPECT_EQ(losses[2], m.loss(params, data));
}

// What on_epoch writes into the params trains on, and the params train
// returns are what the training left after the last callback.
TEST(Library, ParamsAnEpochCallbackWritesTrainOn) {
  Model m = Model::parse(kXor, f64());
  const ArrayMap data = xor_data(4);
  TrainConfig config;
  config.epochs = 3;
  config.batch = 8;
  config.lr = 0.1;
  auto run = [&](bool write) {
    ArrayMap params = m.init(2);
    TrainCallbacks cb;
    cb.on_epoch = [&](const EpochStats& e) {
      // b2 = 30 saturates the sigmoid: the half of the points labeled 0
      // cost about 30 each in the next epoch.
      if (write && e.epoch == 1) std::fill(params.at("b2").f64.begin(), params.at("b2").f64.end(), 30.0);
      if (write && e.epoch == 3) std::fill(params.at("W2").f64.begin(), params.at("W2").f64.end(), 7.0);
      return true;
    };
    const std::vector<EpochStats> epochs = m.train(params, data, config, nullptr, cb);
    return std::make_pair(epochs, params);
  };
  const auto [plain, plain_params] = run(false);
  const auto [written, written_params] = run(true);
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(written[0].loss, plain[0].loss);
  EXPECT_LT(plain[1].loss, 2.0);
  EXPECT_GT(written[1].loss, 10.0) << "the write of b2 after epoch 1 did not train on";
  EXPECT_EQ(values(written_params.at("W2")), std::vector<double>(4, 7.0));
  // A param of the wrong shape written there is an error.
  ArrayMap params = m.init(2);
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochStats&) {
    params["W1"] = Array::zeros({3, 3}, DType::F64);
    return true;
  };
  EXPECT_THROW(m.train(params, data, config, nullptr, cb), Error);
}

// A model whose call is running on another thread when the process forks
// is an error in the child (its lock's holder is not there), not a hang; a
// model free at the fork works there.
TEST(Library, AModelBusyAtAForkIsAnErrorInTheChild) {
  Model busy = Model::parse(kXor, f64()), free_model = Model::parse(kXor, f64());
  const ArrayMap data = xor_data(4);
  ArrayMap busy_params = busy.init(1);
  const ArrayMap params = free_model.init(1);
  const double want = free_model.loss(params, data);
  std::atomic<int> stage{0};  // 1: the training is inside a step; 2: forked
  TrainConfig config;
  config.epochs = 1;
  config.batch = 4;
  config.lr = 0.1;
  TrainCallbacks cb;
  cb.on_step = [&](const runtime::StepProgress&) {  // under the model's lock
    if (stage.load() != 0) return;
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  };
  std::thread training([&] { busy.train(busy_params, data, config, nullptr, cb); });
  while (stage.load() != 1) std::this_thread::yield();
  const pid_t child = ::fork();
  if (child == 0) {
    ::alarm(20);  // a hang ends as SIGALRM
    int code = 0;
    try {
      busy.loss(busy_params, data);
      code = 1;  // no error
    } catch (const Error& e) {
      if (std::string(e.what()).find("forked") == std::string::npos) code = 2;
    }
    if (code == 0 && free_model.loss(params, data) != want) code = 3;
    ::_exit(code);
  }
  stage.store(2);
  training.join();
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child hung or crashed (status " << status << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: another error, 3: the free model's loss differed";
  EXPECT_EQ(busy.loss(busy_params, data), busy.loss(busy_params, data));  // the parent's model still works
}

// A batch split over the threads whose workspaces exceed the memory
// budget, each or only together: a ResourceError from the call (a worker's
// exception used to end the process), nothing allocated.
TEST(Library, WorkspacesOverTheBudgetOnThreadsAreAnError) {
  if (runtime::hardware_threads() < 2) GTEST_SKIP() << "one core: the batch is not split";
  Model m = Model::parse(R"(model wide
input x : [1]
param W1 : [20000, 1] init he_normal
param W2 : [1, 20000] init xavier_uniform
output o = W2 @ relu(W1 @ x)
)", f64());
  const ArrayMap params = m.init(1);
  const int64_t n = 4096;  // 160 KB of workspace a sample in f64: 655 MB, 328 MB a thread
  ArrayMap data{{"x", Array::zeros({n, 1}, DType::F64)}};
  for (const char* limit : {"100M", "500M"}) {  // each over it; only the two together
    test::MemoryLimit budget(limit);
    try {
      m.forward(params, data);
      FAIL() << "no error under " << limit;
    } catch (const ResourceError& e) {
      EXPECT_NE(std::string(e.what()).find("memory budget"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(m.forward(params, data).at("o").size(), n);  // without the limit
}

TEST(Library, TrainsWithCallbacksAndStops) {
  Model m = Model::parse(kXor, f64());
  ArrayMap params = m.init(2);
  const ArrayMap data = xor_data(16);
  TrainConfig config;
  config.epochs = 200;
  config.batch = 8;
  config.optimizer = runtime::Optimizer::Adam;
  config.lr = 0.05;
  int64_t steps = 0;
  TrainCallbacks cb;
  cb.on_step = [&](const StepProgress& p) {
    ++steps;
    EXPECT_LE(p.done, p.total);
  };
  const double first = m.loss(params, data);
  const std::vector<EpochStats> epochs = m.train(params, data, config, nullptr, cb);
  ASSERT_EQ(epochs.size(), 200u);
  EXPECT_EQ(steps, 200 * 8);
  EXPECT_LT(m.loss(params, data), 0.5 * first);
  EXPECT_EQ(epochs.back().epoch, 200);
  // on_epoch returning false stops after that epoch.
  cb.on_epoch = [](const EpochStats& e) { return e.epoch < 3; };
  EXPECT_EQ(m.train(params, data, config, nullptr, cb).size(), 3u);
  // should_stop stops after a step; the steps taken are kept.
  const ArrayMap before = params;
  cb.on_epoch = nullptr;
  cb.should_stop = [] { return true; };
  EXPECT_TRUE(m.train(params, data, config, nullptr, cb).empty());
  EXPECT_NE(params.at("W1").f64, before.at("W1").f64);
  config.epochs = 0;
  EXPECT_THROW(m.train(params, data, config), Error);
}

// A classifier: softmax over 3 classes, a one-hot label, a penalty on W
// that no sample depends on.
const char* kClassifier = R"(model cls
input  x : [4]
label  y : [3] distribution
param  W : [3, 4] init xavier_uniform
param  b : [3]
const  lambda = 0.05
p = softmax(W @ x + b)
output p
loss cross_entropy(y, p) + lambda / 2 * frobenius2(W)
)";

// `n` samples of 4 inputs and a one-hot label of 3 classes.
ArrayMap classifier_data(int n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> u(0, 2);
  Array x = Array::zeros({n, 4}, DType::F64), y = Array::zeros({n, 3}, DType::F64);
  for (auto& v : x.f64) v = u(gen);
  for (int s = 0; s < n; ++s) y.f64[static_cast<size_t>(3 * s + gen() % 3)] = 1;
  return {{"x", x}, {"y", y}};
}

// Validation's one pass (driver::compile_eval_kernels: the accuracy output
// and each sample's loss) gives the loss and accuracy the gradient and
// forward kernels give, at every batch split, in f64 and f32, with an
// accuracy output and without one (XOR's sigmoid).
TEST(Library, ValidationInOnePassEqualsTheGradientAndForwardKernels) {
  for (const char* text : {kClassifier, kXor}) {
    for (const DType dtype : {DType::F64, DType::F32}) {
      ir::Context ctx;
      driver::LoadedModel loaded = std::move(*driver::load_model_text("m.nn", text, {}).value);
      const LoweredModel lowered = lower_model(loaded.model, ctx);
      driver::CompileOptions co;
      co.dtype = dtype;
      co.use_cache = false;
      co.threads = 2;
      driver::ModelKernels k = driver::compile_model_kernels(ctx, lowered, co);
      runtime::TrainModel plain = driver::train_model(lowered, k), one_pass = plain;
      const driver::ModelKernels eval = driver::compile_eval_kernels(ctx, lowered, co, one_pass);
      ASSERT_EQ(one_pass.eval, eval.executor.get());
      ASSERT_EQ(plain.eval, nullptr);
      EXPECT_EQ(one_pass.accuracy_output, text == kClassifier ? 0 : -1);
      const ArrayMap params = driver::initial_params(loaded.model, 9, dtype);
      std::vector<Array> storage;
      const ArrayMap arrays = text == kClassifier ? classifier_data(203, 4) : xor_data(50);
      const runtime::TrainData data = driver::batch_data(arrays, "val", lowered, dtype, true, storage);
      const double tol = dtype == DType::F64 ? 1e-13 : 2e-6;
      for (const int64_t batch : {1, 7, 64, 256}) {
        const EpochStats a = runtime::evaluate(plain, data, params, batch);
        const EpochStats b = runtime::evaluate(one_pass, data, params, batch);
        EXPECT_NEAR(b.loss, a.loss, tol * std::fabs(a.loss)) << batch;
        EXPECT_GT(b.loss, 0);
        EXPECT_EQ(b.accuracy, a.accuracy) << batch;
        EXPECT_EQ(b.samples, a.samples);
        // A range of the samples, as a process of a data-parallel job takes.
        const EpochStats c = runtime::evaluate(plain, data, params, batch, true, 13, 150);
        const EpochStats d = runtime::evaluate(one_pass, data, params, batch, true, 13, 150);
        EXPECT_NEAR(d.loss, c.loss, tol * std::fabs(c.loss)) << batch;
        EXPECT_EQ(d.accuracy, c.accuracy) << batch;
      }
      if (text == kClassifier) {
        const EpochStats b = runtime::evaluate(one_pass, data, params, 64);
        EXPECT_GT(b.accuracy, 0);
        EXPECT_LT(b.accuracy, 1);
      }
    }
  }
}

// Plain SGD for `epochs` epochs of `batch` samples at rate `lr`.
TrainConfig sgd(int epochs, int64_t batch, double lr) {
  TrainConfig c;
  c.epochs = epochs;
  c.batch = batch;
  c.lr = lr;
  return c;
}

// Model::train with validation data: each epoch's val_loss is the model's
// loss on it at that epoch's params, its val_accuracy that of the outputs.
TEST(Library, TrainReportsTheValidationLossOfEachEpoch) {
  Model m = Model::parse(kClassifier, f64());
  ArrayMap params = m.init(3);
  const ArrayMap data = classifier_data(96, 1), val = classifier_data(50, 2);
  const TrainConfig config = sgd(3, 16, 0.2);
  std::vector<double> losses, accuracies;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochStats&) {
    losses.push_back(m.loss(params, val));
    const ArrayMap out = m.forward(params, val);
    int correct = 0;
    for (int s = 0; s < 50; ++s) {
      const double* p = out.at("p").f64.data() + 3 * s;
      const double* y = val.at("y").f64.data() + 3 * s;
      correct += std::max_element(p, p + 3) - p == std::max_element(y, y + 3) - y;
    }
    accuracies.push_back(correct / 50.0);
    return true;
  };
  const std::vector<EpochStats> epochs = m.train(params, data, config, &val, cb);
  ASSERT_EQ(epochs.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(epochs[e].val_loss, losses[e], 1e-12 * losses[e]) << e;
    EXPECT_EQ(epochs[e].val_accuracy, accuracies[e]) << e;
  }
  EXPECT_NE(losses[0], losses[2]);
}

// The threads of this process (its tasks in /proc).
size_t process_threads() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Validation adds a kernel, not worker threads: the evaluation kernel runs
// on the threads of the model's training kernels.
TEST(Library, ValidationAddsNoThreads) {
  Model m = Model::parse(kClassifier, f64());  // 2 threads: one worker
  ArrayMap params = m.init(3);
  const ArrayMap data = classifier_data(64, 1), val = classifier_data(300, 2);
  const TrainConfig config = sgd(1, 64, 0.1);
  m.train(params, data, config);
  const size_t before = process_threads();
  const std::vector<EpochStats> e = m.train(params, data, config, &val);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_GT(e[0].val_loss, 0);
  EXPECT_EQ(process_threads(), before);
}

TEST(Library, GradcheckAndText) {
  const Model m = Model::parse(kXor, f64());
  GradcheckOptions o;
  o.seed = 4;
  const GradcheckResult r = m.gradcheck(nullptr, nullptr, o);
  EXPECT_TRUE(r.passed) << r.worst;
  ASSERT_EQ(r.params.size(), 4u);
  EXPECT_EQ(r.params[0].name, "W1");
  const std::string text = m.gradient_program();
  EXPECT_NE(text.find("d/dW1 = "), std::string::npos) << text;
  EXPECT_NE(m.gradient_program({"b2"}, true, "latex").find("\\begin{aligned}"), std::string::npos);
  EXPECT_EQ(m.graph().substr(0, 7), "digraph");
}

TEST(Library, VersionsAreKnown) {
  EXPECT_FALSE(version().empty());
  EXPECT_EQ(llvm_version().substr(0, 3), "19.");
}

}  // namespace
}  // namespace nabla
