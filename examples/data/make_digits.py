#!/usr/bin/env python3
"""The 8x8 digits that scikit-learn ships (Debian's python3-sklearn; 1,797
images, 16 grey levels scaled to [0, 1]), split 1,437 train / 360 test with a
fixed seed. Writes digits_train.npz and digits_test.npz: x [n, 64], y [n, 10]
one-hot.

usage: make_digits.py [OUT_DIR]"""
import os
import sys

import numpy as np

try:
    from sklearn.datasets import load_digits
except ImportError:
    sys.exit("make_digits.py: needs python3-sklearn (scripts/setup.sh --examples installs it)")

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
digits = load_digits()
x = (digits.data / 16.0).astype(np.float32)
y = np.eye(10, dtype=np.float32)[digits.target]
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order], y[order]
cut = len(x) - 360
np.savez(os.path.join(out, "digits_train.npz"), x=x[:cut], y=y[:cut])
np.savez(os.path.join(out, "digits_test.npz"), x=x[cut:], y=y[cut:])
print(f"{out}/digits_train.npz: {cut} digits; {out}/digits_test.npz: 360 digits")
