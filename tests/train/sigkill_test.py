#!/usr/bin/env python3
"""Nothing is lost: `nabla train` killed with SIGKILL at random moments (30
times, while it saves its parameter file every epoch) always leaves a
loadable file holding every param with its shape; a later run resumes from it.
Ctrl-C stops after the current batch, saves, and exits with status 130.

usage: sigkill_test.py NABLA MODEL WORKDIR"""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np


def main():
    nabla, model, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:] > 0).astype(np.float32)
    data, params = os.path.join(work, "d.npz"), os.path.join(work, "p.npz")
    np.savez(data, x=x, y=y)
    subprocess.run([nabla, "init", model, "--seed", "1", "-o", params], check=True, capture_output=True)
    shapes = {k: v.shape for k, v in np.load(params).items()}
    random.seed(1)
    for attempt in range(30):
        p = subprocess.Popen([nabla, "train", model, "--data", data, "--params", params, "--epochs", "100000",
                              "--batch", "8", "--lr", "0.01", "--threads", "1", "--progress", "never", "-o", params],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.05, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        with np.load(params) as f:
            got = {k: f[k].shape for k in f}
            assert got == shapes, f"attempt {attempt}: {got} != {shapes}"
            for k in f:
                assert np.isfinite(f[k]).all(), f"attempt {attempt}: {k} not finite"
    leftovers = [f for f in os.listdir(work) if f not in ("d.npz", "p.npz")]
    print(f"30 kills: the parameter file was loadable every time; temporary files left: {len(leftovers)}")
    # Ctrl-C (SIGINT): stops after the current batch, saves, exits with 130.
    os.remove(params)
    p = subprocess.Popen([nabla, "train", model, "--data", data, "--epochs", "100000", "--batch", "8", "--lr", "0.01",
                          "--threads", "1", "--progress", "never", "-o", params],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Signal only once training runs: its first epoch's save shows the handler
    # is in place (a sanitizer build can take seconds just to start).
    deadline = time.monotonic() + 120
    while not os.path.exists(params):
        assert p.poll() is None, f"train exited with {p.returncode} before its first save: {p.stderr.read()}"
        assert time.monotonic() < deadline, "no parameter file after 120 s of training"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, (p.returncode, err)
    assert "interrupted after step" in err and "parameters saved to" in err, err
    with np.load(params) as f:
        assert {k: f[k].shape for k in f} == shapes
    print("Ctrl-C: stopped after a batch, saved, exit 130")


if __name__ == "__main__":
    main()
