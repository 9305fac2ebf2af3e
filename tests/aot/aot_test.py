#!/usr/bin/env python3
"""The AOT test: `nabla compile --emit obj` + `--emit header`, linked into a C
program with `cc` (no LLVM: checked with ldd), run on random data; its
outputs, loss and gradients must equal what the JIT computes (`nabla run` and
`nabla grad` on the same data, one thread): the same code, so bit for bit;
and its SGD step kernel gives params - rate * gradient.

usage: aot_test.py NABLA DRIVER_C WORKDIR MODEL...
"""
import os
import subprocess
import sys

import numpy as np


def sh(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def declared(nabla, model):
    """(inputs, labels, params, outputs) as [(name, shape)] from the header."""
    header = sh(nabla, "compile", model, "--emit", "header")
    groups, current = {}, None
    for line in header.splitlines():
        line = line.strip(" */")
        if line.endswith(":") and line[:-1] in ("inputs", "labels", "params", "outputs"):
            current = groups.setdefault(line[:-1], [])
        elif current is not None and line.startswith("["):
            _, name, shape = line.split(" ", 2)
            dims = [d.strip() for d in shape.strip("[]").split(",") if d.strip()]
            current.append((name, [int(d) for d in dims if d != "n"]))
        elif not line.startswith("["):
            current = None if not line.endswith(":") else current
    return [groups.get(k, []) for k in ("inputs", "labels", "params", "outputs")]


def main():
    nabla, driver, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(7)
    checked = 0
    for model in sys.argv[4:]:
        for dtype, ctype in (("f32", "float"), ("f64", "double")):
            npt = np.float32 if dtype == "f32" else np.float64
            name = os.path.splitext(os.path.basename(model))[0]
            d = os.path.join(work, f"{name}_{dtype}")
            os.makedirs(d, exist_ok=True)
            inputs, labels, params, outputs = declared(nabla, model)
            obj, hdr = os.path.join(d, f"{name}.o"), os.path.join(d, f"{name}.h")
            sh(nabla, "compile", model, "--emit", "obj", "-o", obj, "--dtype", dtype, "--prefix", name)
            sh(nabla, "compile", model, "--emit", "header", "-o", hdr, "--dtype", dtype, "--prefix", name)
            exe = os.path.join(d, "driver")
            sh("cc", "-O2", "-std=c11", f"-DPREFIX={name}", f"-DT={ctype}", "-include", hdr, driver, obj,
               "-lmvec", "-lm", "-o", exe)
            libs = sh("ldd", exe)
            if "LLVM" in libs:
                sys.exit(f"FAILED: {exe} links LLVM:\n{libs}")
            n = 37
            P = {k: rng.uniform(-0.5, 0.5, s).astype(npt) for k, s in params}
            X = {k: rng.uniform(-1, 1, [n] + s).astype(npt) for k, s in inputs}
            Y = {}
            for k, s in labels:
                y = rng.uniform(0, 1, [n] + s)
                Y[k] = (y / y.reshape(n, -1).sum(1).reshape([n] + [1] * len(s))).astype(npt)
            np.savez(os.path.join(d, "p.npz"), **P)
            np.savez(os.path.join(d, "d.npz"), **X, **Y)
            for fname, group in (("params.bin", P), ("inputs.bin", X), ("labels.bin", Y)):
                with open(os.path.join(d, fname), "wb") as f:
                    for k in group:
                        f.write(np.ascontiguousarray(group[k]).tobytes())
            sh(exe, str(n), d)
            common = ["--params", os.path.join(d, "p.npz"), "--data", os.path.join(d, "d.npz"),
                      "--dtype", dtype, "--threads", "1"]
            sh(nabla, "run", model, *common, "-o", os.path.join(d, "run.npz"))
            sh(nabla, "grad", model, *common, "-o", os.path.join(d, "grad.npz"))
            run, grad = np.load(os.path.join(d, "run.npz")), np.load(os.path.join(d, "grad.npz"))
            got_out = np.fromfile(os.path.join(d, "outputs.bin"), dtype=npt)
            want_out = np.concatenate([run[k].ravel() for k, _ in outputs])
            got_grad = np.fromfile(os.path.join(d, "grads.bin"), dtype=npt)
            want_grad = np.concatenate([grad["loss"].ravel()] + [grad[k].ravel() for k, _ in params])
            for what, got, want in (("outputs", got_out, want_out), ("loss and gradients", got_grad, want_grad)):
                if got.shape != want.shape or not np.array_equal(got, want):
                    diff = np.abs(got - want).max() if got.shape == want.shape else "shape"
                    sys.exit(f"FAILED: {model} {dtype}: AOT {what} differ from the JIT's (max diff {diff})")
                checked += got.size
            # The fused SGD step: params - 0.05 * gradient (the same gradient,
            # summed in another order inside the fused GEMM: close, not equal).
            updated = np.fromfile(os.path.join(d, "updated.bin"), dtype=npt)
            want_upd = np.concatenate([P[k].ravel() for k, _ in params]) - npt(0.05) * want_grad[1:]
            tol = 1e-5 if dtype == "f32" else 1e-12
            if updated.shape != want_upd.shape or not np.allclose(updated, want_upd, rtol=tol, atol=tol):
                sys.exit(f"FAILED: {model} {dtype}: the SGD step differs from params - rate * gradient")
            print(f"{model} {dtype}: AOT object == JIT ({got_out.size} outputs, {got_grad.size} loss+gradient values)")
    print(f"aot: {checked} values equal")


if __name__ == "__main__":
    main()
