// Training the MNIST-sized MLP (examples/mnist_mlp.nn) from C++ with nabla as
// a library: load the model, make params by their init, take SGD steps on a
// generated problem (10 noisy prototypes of 784 pixels), then train two
// epochs with a callback, and print the loss as it falls.
//
//   train_mlp [MODEL.nn]    (default: the mnist_mlp.nn beside this folder)
//
// Exits 1 when the loss did not fall, so the test suite can run it as a test.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <random>
#include <string>

#include "driver/nabla.h"

#ifndef NABLA_EXAMPLE_MODEL
#define NABLA_EXAMPLE_MODEL "mnist_mlp.nn"
#endif

int main(int argc, char** argv) {
  try {
    nabla::ModelOptions options;
    options.dtype = nabla::DType::F32;
    nabla::Model m = nabla::Model::load(argc > 1 ? argv[1] : NABLA_EXAMPLE_MODEL, options);
    std::printf("%s: %lld parameters; inputs:", m.name().c_str(), static_cast<long long>(m.parameter_count()));
    for (const nabla::Declaration& d : m.inputs()) std::printf(" %s[%lld]", d.name.c_str(), static_cast<long long>(d.shape.at(0)));
    std::printf("\n");

    // 2,048 samples: class c is prototype c plus noise, its label one-hot.
    const int64_t n = 2048, pixels = m.inputs().at(0).shape.at(0), classes = m.labels().at(0).shape.at(0);
    std::mt19937 rng(7);
    std::normal_distribution<float> noise(0, 1);
    std::vector<float> prototypes(static_cast<size_t>(classes * pixels));
    for (float& p : prototypes) p = noise(rng);
    nabla::Array x = nabla::Array::zeros({n, pixels}, nabla::DType::F32);
    nabla::Array y = nabla::Array::zeros({n, classes}, nabla::DType::F32);
    for (int64_t s = 0; s < n; ++s) {
      const int64_t c = s % classes;
      for (int64_t p = 0; p < pixels; ++p)
        x.f32[static_cast<size_t>(s * pixels + p)] = prototypes[static_cast<size_t>(c * pixels + p)] + noise(rng);
      y.f32[static_cast<size_t>(s * classes + c)] = 1;
    }
    const nabla::ArrayMap data{{m.inputs().at(0).name, x}, {m.labels().at(0).name, y}};
    nabla::ArrayMap params = m.init(/*seed=*/1);

    const double first = m.loss(params, data);
    std::printf("loss before training %.4f\n", first);
    // Five SGD steps on the first 256 samples, params updated in place.
    nabla::ArrayMap batch{{m.inputs().at(0).name, nabla::Array::zeros({256, pixels}, nabla::DType::F32)},
                          {m.labels().at(0).name, nabla::Array::zeros({256, classes}, nabla::DType::F32)}};
    std::copy_n(x.f32.begin(), 256 * pixels, batch.at(m.inputs().at(0).name).f32.begin());
    std::copy_n(y.f32.begin(), 256 * classes, batch.at(m.labels().at(0).name).f32.begin());
    for (int step = 1; step <= 5; ++step)
      std::printf("step %d: loss %.4f\n", step, m.step(params, batch, /*lr=*/0.05));
    // Two epochs of minibatch SGD over all samples; the callback hears each epoch.
    nabla::TrainConfig config;
    config.epochs = 2;
    config.batch = 64;
    config.lr = 0.05;
    nabla::TrainCallbacks callbacks;
    callbacks.on_epoch = [](const nabla::EpochStats& e) {
      std::printf("epoch %d/%d: loss %.4f, accuracy %.1f%%\n", e.epoch, e.epochs, e.loss, 100 * e.accuracy);
      return true;  // false would stop training here
    };
    m.train(params, data, config, nullptr, callbacks);
    const double last = m.loss(params, data);
    std::printf("loss after training %.4f\n", last);
    return last < 0.5 * first ? 0 : 1;
  } catch (const nabla::Error& e) {
    std::fprintf(stderr, "%s", e.rendered().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
