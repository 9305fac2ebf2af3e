#!/usr/bin/env python3
"""`nabla train` on the MNIST split, for the side-by-side comparison with
bench/torch_train_mnist.py: the same model (examples/mnist_mlp.nn), data,
batch, optimizer (plain SGD), epochs and threads. Prints one JSON line per
epoch (seconds of training, loss) and the test accuracy.

usage: nabla_train_mnist.py NABLA MODEL TRAIN.npz TEST.npz --epochs E --batch B --lr LR --threads T"""
import json
import sys
import os
import re
import subprocess
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_args  # noqa: E402

a = train_args.parse(["nabla", "model", "train", "test"])
with tempfile.TemporaryDirectory() as tmp:
    r = subprocess.run([a.nabla, "train", a.model, "--data", a.train, "--val", a.test, "--epochs", str(a.epochs),
                        "--batch", str(a.batch), "--lr", str(a.lr), "--threads", str(a.threads), "--seed", "1",
                        "--progress", "never", "-o", os.path.join(tmp, "p.npz")],
                       capture_output=True, text=True, check=True)
for line in r.stdout.splitlines():
    m = re.match(r"epoch (\d+)/\d+  loss ([0-9.e+-]+).*  ([0-9.]+)s  \(", line)
    if m:
        print(json.dumps({"impl": "nabla", "epoch": int(m.group(1)), "seconds": float(m.group(3)),
                          "loss": float(m.group(2)), "threads": a.threads, "batch": a.batch}))
    m = re.match(r".*: ([0-9.]+)% accuracy on", line)
    if m:
        print(json.dumps({"impl": "nabla", "test_accuracy": float(m.group(1)) / 100}))
