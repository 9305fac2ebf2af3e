/* The AOT test's C program: links a model's object file (nabla compile --emit
 * obj) through its header (--emit header), with no LLVM, and runs both
 * kernels on arrays read from raw files:
 *
 *   driver N DIR     reads DIR/params.bin, DIR/inputs.bin, DIR/labels.bin
 *                    (the arrays concatenated in declaration order, element
 *                    type T), writes DIR/outputs.bin, DIR/grads.bin (loss,
 *                    then the gradients) and DIR/updated.bin (the params after
 *                    one SGD step with rate 0.05).
 *
 * Built with -DPREFIX=name -DT=float|double -include name.h, for models with
 * outputs, labels and a loss. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define P(x) CAT(PREFIX, x)

static T* read_all(const char* dir, const char* name, int64_t count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  T* data = malloc(sizeof(T) * (size_t)(count > 0 ? count : 1));
  FILE* f = fopen(path, "rb");
  if (!f || fread(data, sizeof(T), (size_t)count, f) != (size_t)count) {
    fprintf(stderr, "driver: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  return data;
}

static void write_all(const char* dir, const char* name, const T* data, int64_t count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(data, sizeof(T), (size_t)count, f) != (size_t)count) {
    fprintf(stderr, "driver: cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

/* Pointers into one buffer holding arrays of the given sizes (times n). */
static void split(T* base, const int64_t* sizes, int count, int64_t n, T** out) {
  for (int i = 0; i < count; ++i) {
    out[i] = base;
    base += sizes[i] * n;
  }
}

static int64_t total(const int64_t* sizes, int count) {
  int64_t t = 0;
  for (int i = 0; i < count; ++i) t += sizes[i];
  return t;
}

/* A parallel runner for the _par kernels: the tasks one after another, last
 * first (any order must give the same result). */
static void run_reversed(void* ctx, int64_t tasks, void (*task)(void* arg, int64_t t), void* arg) {
  (void)ctx;
  for (int64_t t = tasks - 1; t >= 0; --t) task(arg, t);
}

static void* workspace(int64_t bytes) {
  void* p = NULL;
  if (posix_memalign(&p, 64, (size_t)(bytes > 0 ? bytes : 64))) exit(1);
  return p;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: driver N DIR\n");
    return 2;
  }
  const int64_t n = atoll(argv[1]);
  const char* dir = argv[2];
  T *params[P(_N_PARAMS) + 1], *inputs[P(_N_INPUTS) + 1];
  T* pbuf = read_all(dir, "params.bin", total(P(_PARAMS_SIZES), P(_N_PARAMS)));
  T* ibuf = read_all(dir, "inputs.bin", total(P(_INPUTS_SIZES), P(_N_INPUTS)) * n);
  split(pbuf, P(_PARAMS_SIZES), P(_N_PARAMS), 1, params);
  split(ibuf, P(_INPUTS_SIZES), P(_N_INPUTS), n, inputs);
#if P(_N_OUTPUTS) > 0
  {
    T* outputs[P(_N_OUTPUTS)];
    const int64_t count = total(P(_OUTPUTS_SIZES), P(_N_OUTPUTS)) * n;
    T* obuf = malloc(sizeof(T) * (size_t)count);
    split(obuf, P(_OUTPUTS_SIZES), P(_N_OUTPUTS), n, outputs);
    P(_forward)((const T* const*)inputs, (const T* const*)params, outputs, n, workspace(P(_forward_workspace)(n)));
    write_all(dir, "outputs.bin", obuf, count);
  }
#endif
  {
    T* labels[P(_N_LABELS) + 1];
    T* grads[P(_N_PARAMS) + 1];
    T* lbuf = read_all(dir, "labels.bin", total(P(_LABELS_SIZES), P(_N_LABELS)) * n);
    split(lbuf, P(_LABELS_SIZES), P(_N_LABELS), n, labels);
    const int64_t count = 1 + total(P(_PARAMS_SIZES), P(_N_PARAMS));
    T* gbuf = malloc(sizeof(T) * (size_t)count);
    split(gbuf + 1, P(_PARAMS_SIZES), P(_N_PARAMS), 1, grads);
    P(_grad)((const T* const*)inputs, (const T* const*)labels, (const T* const*)params, gbuf, grads, n,
             workspace(P(_grad_workspace)(n)));
    write_all(dir, "grads.bin", gbuf, count);
    /* The _par twin with 3 tasks: the same loss and gradients, bit for bit. */
    {
      const nabla_parallel runner = {run_reversed, NULL, 3};
      T* gbuf2 = malloc(sizeof(T) * (size_t)count);
      T* grads2[P(_N_PARAMS) + 1];
      split(gbuf2 + 1, P(_PARAMS_SIZES), P(_N_PARAMS), 1, grads2);
      P(_grad_par)((const T* const*)inputs, (const T* const*)labels, (const T* const*)params, gbuf2, grads2, n,
                   workspace(P(_grad_workspace)(n)), &runner);
      for (int64_t i = 0; i < count; ++i)
        if (gbuf[i] != gbuf2[i]) {
          fprintf(stderr, "driver: _grad_par differs from _grad at %lld\n", (long long)i);
          return 1;
        }
    }
    /* One SGD step with rate 0.05: the params updated in place. */
    const T rate = (T)0.05;
    T loss = 0;
    P(_sgd_step)((const T* const*)inputs, (const T* const*)labels, params, &loss, &rate, n,
                 workspace(P(_sgd_step_workspace)(n)));
    write_all(dir, "updated.bin", pbuf, total(P(_PARAMS_SIZES), P(_N_PARAMS)));
  }
  return 0;
}
