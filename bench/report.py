#!/usr/bin/env python3
"""Tables for bench/RESULTS.md from one run of bench/run_bench.sh.

usage: report.py RESULTS_DIR   (the raw JSON lines: *.jsonl)
Every ratio compares figures of the same run. "hand-written" = the best of the
Eigen and OpenBLAS (cblas, cblas-gemv) programs, with the OpenBLAS environment
as it is or unset; PyTorch = the best torch eager configuration measured.
"""
import glob
import json
import os
import sys

rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))


def nabla(model, kind, threads=None, batch=None):
    for r in rows:
        if r.get("impl") == "nabla" and model in r.get("model", "") and r.get("kind") == kind \
                and (threads is None or r.get("threads") == threads) and (batch is None or r.get("batch") == batch):
            return r
    return None


def best(bench, impls, threads, batch=None, prefix=False):
    cands = [r for r in rows if r.get("bench") == bench and r.get("threads") == threads
             and (batch is None or r.get("batch") == batch)
             and any((r.get("impl", "").startswith(i) if prefix else r.get("impl") == i) for i in impls)]
    return min(cands, key=lambda r: r["median_us"]) if cands else None


def label(r):
    env = " [OpenBLAS env unset]" if r.get("openblas_env") == "unset" else ""
    return f"{r['impl']}{env}"


def fmt(us):
    return f"{us:.2f} us" if us < 1000 else f"{us / 1000:.3f} ms"


def ratio(a, b):
    return f"{b / a:.2f}x" if a and b else "-"


HAND = ["eigen", "openblas-cblas", "openblas-cblas-gemv"]
TORCH = ["torch-eager", "torch-eager-foreach"]
TORCH_INFER = ["torch-eager"]
out = []
for bench, kind, torch_impls, title in (("B1", "train_step", TORCH, "B1 training step (gradient + SGD update)"),
                                        ("B2", "forward", TORCH_INFER, "B2 inference (forward)")):
    for t in (1, 2):
        out.append(f"\n**{title}, {t} thread{'s' if t > 1 else ''}** (median per step; speed-up = peer time / nabla time)\n")
        out.append("| batch | nabla | best hand-written | speed-up | best PyTorch eager | speed-up |")
        out.append("|---|---|---|---|---|---|")
        for b in (1, 32, 128, 1024):
            n = nabla("mlp_784_256_256_10", kind, t, b)
            h = best(bench, HAND, t, b)
            torch = [r for r in rows if r.get("bench") == bench and r.get("impl") in torch_impls
                     and r.get("batch") == b and f"_t{t}" in r.get("step", "")]
            p = min(torch, key=lambda r: r["median_us"]) if torch else None
            nu = n["median_us"] if n else None
            out.append(f"| {b} | {fmt(nu) if nu else '-'} | {fmt(h['median_us']) + ' ' + label(h) if h else '-'} | "
                       f"{ratio(nu, h['median_us'] if h else None)} | "
                       f"{fmt(p['median_us']) + ' ' + label(p) if p else '-'} | {ratio(nu, p['median_us'] if p else None)} |")

out.append("\n**Gradient kernel / forward kernel** (MLP, 1 thread)\n")
out.append("| batch | forward | gradient | ratio |")
out.append("|---|---|---|---|")
for b in (1, 32, 128, 1024):
    f, g = nabla("mlp_784_256_256_10", "forward", 1, b), nabla("mlp_784_256_256_10", "gradient", 1, b)
    if f and g:
        out.append(f"| {b} | {fmt(f['median_us'])} | {fmt(g['median_us'])} | {g['median_us'] / f['median_us']:.2f} |")

c = nabla("mlp_784_256_256_10", "compile")
if c:
    out.append(f"\n**Compile time, MLP** (the forward and gradient kernels, as `nabla bench` times them; `nabla train` compiles the SGD step kernel beside them): front end {c['front_end_ms']:.2f} ms; "
               f"kernels with nothing cached {c['cold_ms']:.1f} ms, of which the model's own "
               f"{c['cold_model_ms']:.1f} ms (LLVM optimize {c['llvm_optimize_ms']:.1f} ms, codegen "
               f"{c['llvm_codegen_ms']:.1f} ms) and the shared GEMM object {c['support_ms']:.1f} ms (compiled once "
               f"per machine and element type, then cached); from the cache {c['cached_ms']:.2f} ms "
               f"({'hit' if c['cache_hit'] else 'MISS'})\n")

out.append("\n**B3 20x32 sigmoid net, batch 64, training step**\n")
out.append("| threads | nabla | Eigen | speed-up |")
out.append("|---|---|---|---|")
for t in (1, 2):
    n, e = nabla("deep_sigmoid_20x32", "train_step", t, 64), best("B3", ["eigen"], t)
    out.append(f"| {t} | {fmt(n['median_us']) if n else '-'} | {fmt(e['median_us']) if e else '-'} | "
               f"{ratio(n['median_us'] if n else None, e['median_us'] if e else None)} |")

out.append("\n**B4 2-8-1 gradient, one sample, per call**\n")
n = nabla("tiny_2_8_1", "gradient", 1, 1)
out.append("| implementation | per call | nabla / it |")
out.append("|---|---|---|")
if n:
    out.append(f"| nabla | {n['median_us'] * 1000:.1f} ns | 1.00 |")
for impl in ("c++-loops-strict", "c++-loops-fast-math"):
    r = best("B4", [impl], 1)
    if r and n:
        out.append(f"| {impl} | {r['median_us'] * 1000:.1f} ns | {n['median_us'] / r['median_us']:.2f} |")

out.append("\n**B5 f(x; w, b) and df/dw, df/db over 1e6 points, 1 thread**\n")
out.append("| implementation | per call | max abs error vs f64 | nabla / it |")
out.append("|---|---|---|---|")
b5 = [r for r in rows if r.get("bench") == "B5"]
n = next((r for r in b5 if r["impl"] == "nabla"), None)
for r in sorted(b5, key=lambda r: r["median_us"]):
    out.append(f"| {r['impl']} | {fmt(r['median_us'])} | {r['max_abs_err_vs_f64']:.2g} | "
               f"{n['median_us'] / r['median_us']:.2f} |" if n else "")

out.append("\n**B6 GEMM GFLOP/s, 1 thread, NT layout (x W^T)** (nabla: the forward kernel of `y = W @ x` "
           "over a batch of M, output written)\n")
out.append("| M x K x N | nabla | OpenBLAS sgemm [env unset] | nabla / OpenBLAS | Eigen |")
out.append("|---|---|---|---|---|")
for model, m, k, nn in (("gemm_784_256", 128, 784, 256), ("gemm_256_256", 128, 256, 256),
                        ("gemm_256_10", 128, 256, 10), ("gemm_1024_1024", 1024, 1024, 1024)):
    r = nabla(model, "forward", 1, m)
    g = 2 * m * k * nn / (r["median_us"] * 1e3) if r else None
    shape = f"{m}x{k}x{nn}"
    ob = [x for x in rows if x.get("bench") == "B6" and x.get("impl") == "openblas-sgemm" and x.get("threads") == 1
          and x.get("shape_MxKxN") == shape and x.get("layout") == "NT"]
    eg = [x for x in rows if x.get("bench") == "B6" and x.get("impl") == "eigen-gemm" and x.get("threads") == 1
          and x.get("shape_MxKxN") == shape and x.get("layout") == "NT"]
    o = max((x["gflops"] for x in ob), default=None)
    e = max((x["gflops"] for x in eg), default=None)
    out.append(f"| {shape} | {g:.1f} | {o if o is None else f'{o:.1f}'} | "
               f"{'-' if not (g and o) else f'{100 * g / o:.0f} %'} | {e if e is None else f'{e:.1f}'} |"
               if g else f"| {shape} | - | - | - | - |")
out.append("\n**Training the MNIST MLP** (examples/mnist_mlp.nn: 8,000 digits, 20 epochs of plain SGD, batch 32, "
           "lr 0.1; seconds of training per epoch, median over the epochs)\n")
out.append("| threads | nabla s/epoch | PyTorch eager s/epoch | speed-up | nabla test acc. | PyTorch test acc. |")
out.append("|---|---|---|---|---|---|")
for t in (1, 2):
    def epochs(impl):
        return sorted(r["seconds"] for r in rows if r.get("impl") == impl and "epoch" in r and r.get("threads") == t
                      and f"train_{impl.split('-')[0]}_t{t}" == r.get("step"))
    def acc(impl):
        return next((r["test_accuracy"] for r in rows if r.get("impl") == impl and "test_accuracy" in r
                     and r.get("step") == f"train_{impl.split('-')[0]}_t{t}"), None)
    ne, te = epochs("nabla"), epochs("torch-eager")
    if ne and te:
        nm, tm = ne[len(ne) // 2], te[len(te) // 2]
        out.append(f"| {t} | {nm:.3f} | {tm:.3f} | {tm / nm:.1f}x | {100 * acc('nabla'):.2f} % | "
                   f"{100 * acc('torch-eager'):.2f} % |")
print("\n".join(out))
