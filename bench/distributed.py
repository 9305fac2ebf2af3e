#!/usr/bin/python3
"""Data-parallel training measured here, and a cost model for more machines
(docs/distributed.md, bench/RESULTS.md).

Measured: seconds per epoch of `nabla train` with 1 process and under
`mpirun -np 2` (1 thread each), and the allreduce's share of the epoch (the
epoch line reports it), for the MNIST MLP (batch 32) and the B1 MLP (batch
1024, random data). Then, from the measured per-sample rate of the training
step on one core (`nabla bench`) and the gradient's size, one step on P
machines:

    T(P) = B / (P r) + 2 (P - 1) / P * S / BW      (ring allreduce, each way)
    E(P) = T(1) / (P T(P)) = 1 / (1 + 2 (P - 1) S r / (B BW))

so E >= 0.8 holds up to P = 1 + B BW / (8 S r), and at P machines needs a
global batch B >= 8 (P - 1) S r / BW. Latency per message is left out (it
adds 2 (P - 1) hops a step: tens of microseconds at P = 8).

usage: /usr/bin/python3 bench/distributed.py   (from the repository root, after
the release build and examples/data/make_mnist.py build/data)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NABLA = os.path.join(ROOT, "build", "nabla")
MPIRUN = ["mpirun", "--oversubscribe", "--mca", "btl", "self,vader"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
# The epoch line: its samples per second (more digits than its seconds) and
# the allreduce's share.
EPOCH = re.compile(r"epoch (\d+)/\d+ .*  [0-9.]+s  \(([0-9.]+)([kM]?) samples/s\)(?:  allreduce (\d+)%)?")


def train(model, data, samples, batch, procs, epochs, tmp):
    cmd = ([] if procs == 1 else MPIRUN + ["-np", str(procs)]) + [
        NABLA, "train", model, "--data", data, "--epochs", str(epochs), "--batch", str(batch), "--lr", "0.05",
        "--seed", "1", "--threads", "1", "--progress", "never", "-o", os.path.join(tmp, "p.npz")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV).stdout
    rows = [EPOCH.match(l) for l in out.splitlines()]
    scale = {"": 1, "k": 1e3, "M": 1e6}
    rows = [(samples / (float(m.group(2)) * scale[m.group(3)]), float(m.group(4) or 0)) for m in rows if m]
    rows = rows[1:]  # the first epoch warms up
    seconds = sorted(s for s, _ in rows)[len(rows) // 2]
    share = sorted(a for _, a in rows)[len(rows) // 2]
    return seconds, share


def step_rate(model, batch):
    out = subprocess.run([NABLA, "bench", model, "--batch", str(batch), "--threads", "1", "--json"],
                         capture_output=True, text=True, check=True).stdout
    step = next(json.loads(l) for l in out.splitlines() if '"kind": "train_step"' in l)
    return batch / (step["median_us"] * 1e-6)


def params_bytes(model):
    out = subprocess.run([NABLA, "check", model], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"([0-9]+) parameters", out).group(1)) * 4


def main():
    mnist = os.path.join(ROOT, "build", "data", "mnist_train.npz")
    if not os.path.exists(mnist):
        sys.exit("run /usr/bin/python3 examples/data/make_mnist.py build/data first")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        b1_data = os.path.join(tmp, "b1.npz")
        np.savez(b1_data, x=rng.random((16384, 784), dtype=np.float32),
                 y=np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16384)])
        cases = [("MNIST MLP", os.path.join(ROOT, "examples", "mnist_mlp.nn"), mnist, 8000, 32, 6),
                 ("B1 MLP", os.path.join(ROOT, "bench", "models", "mlp_784_256_256_10.nn"), b1_data, 16384, 1024, 5)]
        print("| model | batch | 1 process s/epoch | 2 processes s/epoch | speed-up | allreduce share (2) |")
        print("|---|---|---|---|---|---|")
        model_rows = []
        for name, model, data, samples, batch, epochs in cases:
            one, _ = train(model, data, samples, batch, 1, epochs, tmp)
            two, share = train(model, data, samples, batch, 2, epochs, tmp)
            print("| %s | %d | %.3f | %.3f | %.2fx | %d %% |" % (name, batch, one, two, one / two, share))
            model_rows.append((name, batch, step_rate(model, batch), params_bytes(model)))
        print()
        print("| model | B | r (samples/s, 1 core) | S (f32 gradient) | link | largest P at E >= 80 % | "
              "E at P = 8 | B for E >= 80 % at P = 8 | B for P = 64 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, batch, r, s in model_rows:
            for gbit in (10, 100):
                bw = gbit * 1e9 / 8
                largest = int(1 + batch * bw / (8 * s * r))
                eff8 = 1 / (1 + 2 * 7 * s * r / (batch * bw))
                need8 = 8 * 7 * s * r / bw
                need64 = 8 * 63 * s * r / bw
                print("| %s | %d | %.0fk | %.2f MB | %d Gbit/s | %d | %.0f %% | %.0f | %.0f |" % (
                    name, batch, r / 1e3, s / 1e6, gbit, largest, 100 * eff8, need8, need64))


if __name__ == "__main__":
    main()
