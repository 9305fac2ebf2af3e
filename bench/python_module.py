#!/usr/bin/python3
"""The Python module against the command, C++ and the peers, side by side in
one run (bench/RESULTS.md, "The Python module"):

  overhead  m.grad(out=) on the B4 tiny model (2-8-1, batch 1) from Python,
            against the gradient kernel's call in C++ (`nabla bench`)
  train     the MNIST MLP trained with m.train, against `nabla train`
  loop      a training loop written in Python around m.step (batch 32),
            against the same loop in PyTorch eager (bench/torch_train_mnist.py)
  lambdify  f = 1/(exp(-(w*x+b))+1) and its partials over 1e6 float32 points,
            against B5 in C++ (build/b5_scalar) and NumPy's expression

usage: PYTHONPATH=build/python /usr/bin/python3 bench/python_module.py
           [--only overhead,train,loop,lambdify] [--epochs 5] [--threads 1,2]
(from the repository root, after the release build and
`examples/data/make_mnist.py build/data`). Prints JSON lines, then the tables.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import nabla

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NABLA = os.path.join(ROOT, "build", "nabla")
DATA = os.path.join(ROOT, "build", "data")
MLP = os.path.join(ROOT, "examples", "mnist_mlp.nn")
TINY = os.path.join(ROOT, "bench", "models", "tiny_2_8_1.nn")
rows = []


def emit(**r):
    rows.append(r)
    print(json.dumps(r), flush=True)


def per_call(fn, inner, reps=15, seconds=1.0):
    """Median seconds per call over batches of `inner` calls: at least `reps`
    batches and `seconds` of them (as build/b5_scalar measures)."""
    for _ in range(max(1, inner // 10)):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def overhead(args):
    for threads in (1,):
        r = subprocess.run([NABLA, "bench", TINY, "--batch", "1", "--threads", str(threads), "--json"],
                           capture_output=True, text=True, check=True)
        cpp = next(json.loads(line) for line in r.stdout.splitlines() if '"kind": "gradient"' in line)
        m = nabla.compile(TINY, threads=threads)
        p = m.init(seed=1)
        d = {"x": np.array([[0.5, -1.0]], np.float32), "y": np.array([[1.0]], np.float32)}
        out = {k: np.empty_like(v) for k, v in p.items()}
        py_out = per_call(lambda: m.grad(p, d, out=out), 20000)
        py_new = per_call(lambda: m.grad(p, d), 20000)
        emit(bench="overhead", threads=threads, cpp_us=cpp["median_us"], python_out_us=py_out * 1e6,
             python_new_us=py_new * 1e6, extra_us=py_out * 1e6 - cpp["median_us"])


def mnist():
    tr, te = (dict(np.load(os.path.join(DATA, f))) for f in ("mnist_train.npz", "mnist_test.npz"))
    return tr, te


def cli_train_seconds(epochs, threads):
    """Wall seconds of `nabla train` on the MNIST MLP for `epochs` epochs."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([NABLA, "train", MLP, "--data", os.path.join(DATA, "mnist_train.npz"),
                        "--epochs", str(epochs), "--batch", "32", "--lr", "0.1", "--seed", "1",
                        "--threads", str(threads), "--progress", "never", "-o", os.path.join(tmp, "p.npz")],
                       capture_output=True, text=True, check=True)
        return time.perf_counter() - t


def train(args):
    """Seconds per epoch, wall clock, everything an epoch does (training, the
    epoch's accuracy, the report): for the command, the difference between
    runs of 1 and 1 + E epochs over E (start-up, loading and compiling
    cancel); for m.train, the median time between the callbacks of
    successive epochs."""
    tr, te = mnist()
    for threads in args.threads:
        short = min(cli_train_seconds(1, threads) for _ in range(3))
        long = min(cli_train_seconds(1 + args.epochs, threads) for _ in range(3))
        cli = (long - short) / args.epochs
        m = nabla.compile(MLP, threads=threads)
        best = []
        for _ in range(3):
            p = m.init(seed=1)
            stamps = []
            m.train(p, tr, epochs=1 + args.epochs, batch=32, lr=0.1, seed=1,
                    callback=lambda e, metrics: stamps.append(time.perf_counter()) is None)
            best.append(statistics.median(b - a for a, b in zip(stamps, stamps[1:])))
        py = min(best)
        emit(bench="train", threads=threads, epochs=args.epochs, cli_s_per_epoch=cli, python_s_per_epoch=py,
             ratio=py / cli)


def loop(args):
    tr, te = mnist()
    for threads in args.threads:
        m = nabla.compile(MLP, threads=threads)
        p = m.init(seed=1)
        x, y = tr["x"], tr["y"]
        rng = np.random.default_rng(0)
        seconds, losses = [], []
        for epoch in range(args.epochs):
            t = time.perf_counter()
            perm = rng.permutation(len(x))
            total = 0.0
            for i in range(0, len(x), 32):
                idx = perm[i:i + 32]
                total += m.step(p, {"x": x[idx], "y": y[idx]}, 0.1) * len(idx)
            seconds.append(time.perf_counter() - t)
            losses.append(total / len(x))
        probs = m.forward(p, {"x": te["x"]})["yhat"]
        acc = float((probs.argmax(1) == te["y"].argmax(1)).mean())
        # PyTorch eager as the baselines run it: freed memory kept in the heap
        # (without it, it is page-fault bound here: 1.6 s an epoch instead of 0.13)
        env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=16777216:"
                                              "glibc.malloc.trim_threshold=1073741824")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "torch_train_mnist.py"),
                            os.path.join(DATA, "mnist_train.npz"), os.path.join(DATA, "mnist_test.npz"),
                            "--epochs", str(args.epochs), "--batch", "32", "--lr", "0.1", "--threads", str(threads)],
                           capture_output=True, text=True, check=True, env=env)
        torch = [json.loads(line) for line in r.stdout.splitlines()]
        torch_s = statistics.median(t["seconds"] for t in torch if "seconds" in t)
        torch_acc = next(t["test_accuracy"] for t in torch if "test_accuracy" in t)
        emit(bench="loop", threads=threads, python_step_s_per_epoch=statistics.median(seconds),
             torch_s_per_epoch=torch_s, speedup=torch_s / statistics.median(seconds), last_loss=losses[-1],
             accuracy=acc, torch_accuracy=torch_acc)


def lambdify(args):
    n = 1_000_000
    x = (np.random.default_rng(0).standard_normal(n) * 3.0).astype(np.float32)
    w, b = 0.7, -0.3
    x64 = x.astype(np.float64)
    f64 = 1.0 / (np.exp(-(w * x64 + b)) + 1.0)
    g64 = f64 * (1 - f64)

    def numpy_expr():
        f = 1.0 / (np.exp(-(w * x + b)) + 1.0)
        g = f * (1.0 - f)
        return f, g * x, g

    numpy_s = per_call(numpy_expr, 1, reps=20)
    r = subprocess.run([os.path.join(ROOT, "build", "b5_scalar")], capture_output=True, text=True, check=True)
    b5_us = json.loads(r.stdout)["median_us"]
    for threads in args.threads:
        f = nabla.lambdify("1/(exp(-(w*x+b))+1)", "x w b", dtype="float32", threads=threads)
        value, (dw, db) = f.value_and_grad(x, w, b, wrt="w b")
        err = max(float(np.max(np.abs(value - f64))), float(np.max(np.abs(dw - g64 * x64))),
                  float(np.max(np.abs(db - g64))))
        outs = [np.empty_like(x) for _ in range(4)]
        cases = {
            "value_and_grad(wrt=w,b)": lambda: f.value_and_grad(x, w, b, wrt="w b"),
            "value_and_grad(wrt=w,b, out=)": lambda: f.value_and_grad(x, w, b, wrt="w b", out=(outs[0], outs[1:3])),
            "value_and_grad (x, w, b)": lambda: f.value_and_grad(x, w, b),
            "f() then f.grad()": lambda: (f(x, w, b), f.grad(x, w, b)),
        }
        for name, fn in cases.items():
            s = per_call(fn, 1, reps=20)
            emit(bench="lambdify", threads=threads, call=name, us=s * 1e6, b5_us=b5_us, numpy_us=numpy_s * 1e6,
                 vs_b5=b5_us / (s * 1e6), vs_numpy=numpy_s / s, max_abs_err_vs_f64=err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="overhead,train,loop,lambdify")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    for part in args.only.split(","):
        {"overhead": overhead, "train": train, "loop": loop, "lambdify": lambdify}[part](args)


if __name__ == "__main__":
    main()
