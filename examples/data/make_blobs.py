#!/usr/bin/env python3
"""Gaussian blobs: K classes in D dimensions (centres uniform in [-2, 2]^D,
unit spread), 1,600 training and 400 test points, fixed seed. Writes
NAME_train.npz and NAME_test.npz with x [n, D] and y: one-hot [n, K], or with
--binary (K = 2) a 0/1 scalar per sample, y [n].

usage: make_blobs.py OUT_DIR NAME D K [--binary]
  single_neuron.nn:     make_blobs.py . blobs2 2 2 --binary
  maxout.nn:            make_blobs.py . blobs16 16 4
  every_activation.nn:  make_blobs.py . blobs6 6 3"""
import os
import sys

import numpy as np

out, name, dim, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
binary = "--binary" in sys.argv[5:]
rng = np.random.default_rng(0)
centres = rng.uniform(-2, 2, (k, dim))
c = rng.integers(0, k, 2000)
x = (centres[c] + rng.normal(0, 1, (2000, dim))).astype(np.float32)
y = c.astype(np.float32) if binary else np.eye(k, dtype=np.float32)[c]
np.savez(os.path.join(out, f"{name}_train.npz"), x=x[:1600], y=y[:1600])
np.savez(os.path.join(out, f"{name}_test.npz"), x=x[1600:], y=y[1600:])
print(f"{out}/{name}_train.npz: 1600 points; {out}/{name}_test.npz: 400 points ({k} classes in {dim}-D)")
