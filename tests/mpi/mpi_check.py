#!/usr/bin/python3
"""Data-parallel training under mpirun (docs/distributed.md), as CI runs it:
two local processes, shared memory and loopback only, as root if need be.

usage: mpi_check.py NABLA REPO CASE
CASE: equal | usage | kill | resume | shards | python | plugin

The data is made here (a 3-class problem of 24 features, 960 samples, and a
held-out 240), so the check needs nothing but the build.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

NABLA, REPO, CASE = sys.argv[1:4]
MPIRUN = ["mpirun", "--oversubscribe", "--mca", "btl", "self,vader", "--mca", "btl_tcp_if_include", "lo",
          "--mca", "oob_tcp_if_include", "lo"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
MODEL = """model mlp3
input  x : [24]
label  y : [3] distribution
param  W1 : [16, 24] init he_normal
param  b1 : [16]
param  W2 : [3, 16] init xavier_uniform
param  b2 : [3]
const  lambda = 1e-3
h = tanh(W1 @ x + b1)
p = softmax(W2 @ h + b2)
output p
loss cross_entropy(y, p) + lambda / 2 * frobenius2(W1)
"""


def data(n, seed):
    centers = np.random.default_rng(0).normal(0, 1.5, (3, 24))  # one problem; samples by seed
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    x = centers[k] + rng.normal(0, 1, (n, 24))
    return {"x": x.astype(np.float64), "y": np.eye(3)[k]}


def run(cmd, timeout=120, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and r.returncode != 0:
        sys.exit("failed (exit %d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


def train(tmp, procs, out, *extra, data_arg=None, epochs=3, optimizer="sgd", batch=32):
    cmd = ([] if procs == 0 else MPIRUN + ["-np", str(procs)]) + [
        NABLA, "train", os.path.join(tmp, "m.nn"), "--data", data_arg or os.path.join(tmp, "train.npz"),
        "--val", os.path.join(tmp, "val.npz"), "--epochs", str(epochs), "--batch", str(batch), "--lr", "0.05",
        "--optimizer", optimizer, "--dtype", "f64", "--seed", "3", "--threads", "1", "--progress", "never",
        "-o", out, *extra]
    return run(cmd)


def close(a, b, rel=1e-9):
    """Every element within `rel` of the other, relative to its size."""
    worst = 0.0
    for k in a:
        d = np.abs(a[k] - b[k]) / np.maximum(np.maximum(np.abs(a[k]), np.abs(b[k])), 1e-300)
        d[(a[k] == b[k])] = 0
        worst = max(worst, float(d.max()))
    return worst <= rel, worst


def lines(text, word):
    return [l for l in text.splitlines() if l.startswith(word)]


def case_equal(tmp):
    """N processes end with the parameters of one, for each optimizer; the
    validation figures (split across processes) are the same; only rank 0
    prints."""
    for optimizer in ("sgd", "momentum", "adam"):
        one = train(tmp, 0, os.path.join(tmp, "one.npz"), optimizer=optimizer)
        two = train(tmp, 2, os.path.join(tmp, "two.npz"), optimizer=optimizer)
        ok, worst = close(dict(np.load(os.path.join(tmp, "one.npz"))), dict(np.load(os.path.join(tmp, "two.npz"))))
        print("%s: 1 vs 2 processes, worst relative difference %.3g" % (optimizer, worst))
        if not ok:
            sys.exit("%s: 2 processes differ from 1 by %.3g (relative), more than 1e-9" % (optimizer, worst))
        e1, e2 = lines(one.stdout, "epoch"), lines(two.stdout, "epoch")
        if len(e1) != 3 or len(e2) != 3:
            sys.exit("expected 3 epoch lines from rank 0 only, got %d and %d:\n%s" % (len(e1), len(e2), two.stdout))
        for a, b in zip(e1, e2):  # loss and val_loss agree to the printed digits
            strip = lambda s: re.sub(r"\s+[0-9.]+s\s+\(.*", "", s)
            if strip(a) != strip(b):
                sys.exit("epoch lines differ:\n  1: %s\n  2: %s" % (a, b))


def case_usage(tmp):
    """A global batch that is not a multiple of the processes is a usage error."""
    r = run(MPIRUN + ["-np", "2", NABLA, "train", os.path.join(tmp, "m.nn"), "--data", os.path.join(tmp, "train.npz"),
                      "--epochs", "1", "--batch", "33", "--lr", "0.1", "-o", os.path.join(tmp, "u.npz")], check=False)
    if r.returncode != 2 or "multiple of the 2 processes" not in r.stderr:
        sys.exit("expected exit 2 and the batch message, got %d:\n%s" % (r.returncode, r.stderr))
    print("batch 33 on 2 processes: exit 2,", lines(r.stderr, "nabla")[0])
    # a global batch larger than the data is the whole data, whatever its
    # size: 33 samples on 2 processes (16 and 17 a step), as on one
    small = os.path.join(tmp, "small.npz")
    np.savez(small, **{k: v[:33] for k, v in dict(np.load(os.path.join(tmp, "train.npz"))).items()})
    # and a last step of one sample: one process has none (weighted means)
    for batch in (64, 32):
        train(tmp, 0, os.path.join(tmp, "s1.npz"), data_arg=small, batch=batch)
        train(tmp, 2, os.path.join(tmp, "s2.npz"), data_arg=small, batch=batch)
        ok, worst = close(dict(np.load(os.path.join(tmp, "s1.npz"))), dict(np.load(os.path.join(tmp, "s2.npz"))))
        if not ok:
            sys.exit("33 samples, --batch %d: 1 vs 2 processes differ by %.3g" % (batch, worst))
        print("33 samples, --batch %d on 2 processes: as on one, worst relative difference %.3g" % (batch, worst))


def case_kill(tmp):
    """kill -9 of one rank ends the job within seconds, non-zero, naming the
    rank; the last checkpoint stays loadable."""
    out = os.path.join(tmp, "ckpt.npz")
    cmd = MPIRUN + ["-np", "2", NABLA, "train", os.path.join(tmp, "m.nn"), "--data", os.path.join(tmp, "train.npz"),
                    "--epochs", "100000", "--batch", "32", "--lr", "0.01", "--dtype", "f64", "--threads", "1",
                    "--progress", "never", "-o", out]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 60
    while not os.path.exists(out) and time.time() < deadline:
        time.sleep(0.1)
    if not os.path.exists(out):
        job.kill()
        sys.exit("no checkpoint after 60 s")
    time.sleep(0.5)
    ranks = subprocess.run(["pgrep", "-f", "-P", str(job.pid), "nabla train"], capture_output=True, text=True)
    pids = [int(p) for p in ranks.stdout.split()]
    if len(pids) != 2:
        job.kill()
        sys.exit("expected 2 rank processes under mpirun, found %s" % pids)
    victim = max(pids)
    t0 = time.time()
    os.kill(victim, signal.SIGKILL)
    try:
        stdout, stderr = job.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        job.kill()
        sys.exit("the job still runs 30 s after a rank was killed")
    took = time.time() - t0
    print("killed pid %d: the job ended in %.2f s with exit %d" % (victim, took, job.returncode))
    if job.returncode == 0:
        sys.exit("the job exited 0 after a rank was killed")
    if took > 10:
        sys.exit("the job took %.1f s to end" % took)
    if not re.search(r"rank \d", stderr):
        sys.exit("no message names the rank:\n" + stderr)
    def alive(pid):  # a zombie waiting for its parent is not alive
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return False
    deadline = time.time() + 5
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if alive(p)]
    if left:  # no process left behind
        sys.exit("rank processes %s still alive 5 s after the job ended" % left)
    params = dict(np.load(out))
    if sorted(params) != ["W1", "W2", "b1", "b2"] or not all(np.isfinite(v).all() for v in params.values()):
        sys.exit("the checkpoint is not loadable: %s" % sorted(params))
    print("checkpoint loadable:", {k: v.shape for k, v in params.items()})


def case_resume(tmp):
    """A checkpoint resumes under another N: 1 epoch on 2 processes then 1
    on 1 ends as 1 then 1 on one process, and 1 on 1 then 1 on 2 as well."""
    def run_pair(first, second, out):
        train(tmp, first, out, epochs=1)
        train(tmp, second, out, "--params", out, epochs=1)
        return dict(np.load(out))
    reference = run_pair(0, 0, os.path.join(tmp, "r.npz"))
    for first, second in ((2, 0), (0, 2)):
        ok, worst = close(reference, run_pair(first, second, os.path.join(tmp, "a.npz")))
        print("resumed: %d then %d process(es) against 1 then 1: worst relative difference %.3g" % (
            max(first, 1), max(second, 1), worst))
        if not ok:
            sys.exit("resuming under another N differs by %.3g" % worst)


def case_shards(tmp):
    """--data 'shard-*.npz': each process loads its own shards; one process
    with the glob trains as on the shards' concatenation."""
    d = dict(np.load(os.path.join(tmp, "train.npz")))
    bounds = [0, 300, 610, 960]
    for i in range(3):
        np.savez(os.path.join(tmp, "shard-%d.npz" % i), **{k: v[bounds[i]:bounds[i + 1]] for k, v in d.items()})
    glob = os.path.join(tmp, "shard-*.npz")
    r = train(tmp, 2, os.path.join(tmp, "s2.npz"), data_arg=glob)
    print(lines(r.stdout, "epoch")[-1])
    if len(lines(r.stdout, "epoch")) != 3:
        sys.exit("sharded training printed:\n" + r.stdout)
    train(tmp, 0, os.path.join(tmp, "s1.npz"), data_arg=glob)
    train(tmp, 0, os.path.join(tmp, "w1.npz"))
    a, b = dict(np.load(os.path.join(tmp, "s1.npz"))), dict(np.load(os.path.join(tmp, "w1.npz")))
    if not all(np.array_equal(a[k], b[k]) for k in a):
        sys.exit("one process on the shards differs from the concatenated file")
    missing = run(MPIRUN + ["-np", "2", NABLA, "train", os.path.join(tmp, "m.nn"), "--data",
                            os.path.join(tmp, "none-*.npz"), "--epochs", "1", "--batch", "32", "--lr", "0.1", "-o",
                            os.path.join(tmp, "x.npz")], check=False, timeout=60)
    if missing.returncode == 0 or "no file matches" not in missing.stderr:
        sys.exit("a glob that matches nothing: exit %d\n%s" % (missing.returncode, missing.stderr))
    # one rank fails alone (its shard is corrupt) while the other waits for
    # it in a collective: the job ends, non-zero, naming the rank
    with open(os.path.join(tmp, "shard-1.npz"), "wb") as f:
        f.write(b"PK\x03\x04 not an archive")
    t0 = time.time()
    bad = run(MPIRUN + ["-np", "2", NABLA, "train", os.path.join(tmp, "m.nn"), "--data", glob, "--epochs", "1",
                        "--batch", "32", "--lr", "0.1", "-o", os.path.join(tmp, "y.npz")], check=False, timeout=60)
    if bad.returncode == 0 or "rank 1 of 2: error" not in bad.stderr:
        sys.exit("a corrupt shard on rank 1: exit %d\n%s" % (bad.returncode, bad.stderr))
    print("a corrupt shard on rank 1 ended the job in %.1f s: %s" % (
        time.time() - t0, next(l for l in bad.stderr.splitlines() if "rank 1 of 2" in l)))
    print("shards: 2 processes trained; 1 process equals the concatenation; no match is an error")


def case_python(tmp):
    """The module's train under mpirun -np 2 equals one process, on both ranks."""
    script = os.path.join(tmp, "t.py")
    with open(script, "w") as f:
        f.write("""import os, sys, numpy as np, nabla
m = nabla.compile(sys.argv[1], dtype="float64", threads=1)
d = dict(np.load(sys.argv[2]))
p = m.init(seed=2)
h = m.train(p, d, epochs=2, batch=32, lr=0.05, optimizer="adam", seed=5)
np.savez(sys.argv[3].replace("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")), **p)
""")
    args = [os.path.join(tmp, "m.nn"), os.path.join(tmp, "train.npz")]
    run([sys.executable, script, *args, os.path.join(tmp, "py1.npz")])
    run(MPIRUN + ["-np", "2", "-x", "PYTHONPATH", sys.executable, script, *args,
                  os.path.join(tmp, "py2-RANK.npz")], timeout=180)
    a = dict(np.load(os.path.join(tmp, "py1.npz")))
    for rank in (0, 1):
        ok, worst = close(a, dict(np.load(os.path.join(tmp, "py2-%d.npz" % rank))))
        print("python: 1 process vs rank %d of 2, worst relative difference %.3g" % (rank, worst))
        if not ok:
            sys.exit("the module's train on 2 processes differs from 1 by %.3g" % worst)


def case_plugin(tmp):
    """MPI is a plugin loaded under mpirun only (runtime/comm.h): the one
    NABLA_MPI_PLUGIN names, else the one beside the program, else the
    build's. A plugin that is missing, not a library, or not nabla's ends
    the command with exit 2 and says which, without starting MPI."""
    version = run([NABLA, "--version"]).stdout
    m = re.search(r"\(plugin (/[^)]+)\)", version)
    if not m or not os.path.isfile(m.group(1)):
        sys.exit("--version names no plugin file: " + version)
    plugin = m.group(1)
    # a copy of the program beside a copy of the plugin loads its neighbour
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    shutil.copy2(NABLA, os.path.join(bindir, "nabla"))
    shutil.copy2(plugin, os.path.join(bindir, "libnabla_mpi.so"))
    moved = run([os.path.join(bindir, "nabla"), "--version"]).stdout
    if "(plugin %s)" % os.path.join(bindir, "libnabla_mpi.so") not in moved:
        sys.exit("the copied program does not take the plugin beside it: " + moved)
    # found on PATH (argv[0] a bare "nabla"), from another directory
    on_path = subprocess.run(["nabla", "--version"], capture_output=True, text=True, cwd="/",
                             env=dict(ENV, PATH=bindir + os.pathsep + ENV.get("PATH", ""))).stdout
    if "(plugin %s)" % os.path.join(bindir, "libnabla_mpi.so") not in on_path:
        sys.exit("the copied program, run from PATH, does not take the plugin beside it: " + on_path)
    # the one NABLA_MPI_PLUGIN names trains a job
    named = os.path.join(tmp, "named", "libnabla_mpi.so")
    os.makedirs(os.path.dirname(named))
    shutil.copy2(plugin, named)
    ENV["NABLA_MPI_PLUGIN"] = named
    try:
        r = train(tmp, 2, os.path.join(tmp, "p2.npz"), epochs=1)
    finally:
        del ENV["NABLA_MPI_PLUGIN"]
    if len(lines(r.stdout, "epoch")) != 1:
        sys.exit("training with NABLA_MPI_PLUGIN printed:\n" + r.stdout)
    print("NABLA_MPI_PLUGIN=%s: 2 processes trained" % named)
    # a relative NABLA_MPI_PLUGIN is the file it names from the working directory
    rel = subprocess.run([NABLA, "--version"], capture_output=True, text=True, cwd=os.path.dirname(named),
                         env=dict(ENV, NABLA_MPI_PLUGIN="libnabla_mpi.so")).stdout
    if "(plugin %s)" % named not in rel:
        sys.exit("NABLA_MPI_PLUGIN=libnabla_mpi.so in %s: %s" % (os.path.dirname(named), rel))
    # bad plugins, as a process of a 2-process job would see them (no mpirun)
    libc = re.search(r"libc\.so\.6 => (\S+)", subprocess.run(["ldd", NABLA], capture_output=True, text=True).stdout)
    if not libc:
        sys.exit("ldd names no libc.so.6 for " + NABLA)
    bad = [(os.path.join(tmp, "none.so"), "its MPI plugin is missing"),
           (tmp, "its MPI plugin is missing"),
           (os.path.join(tmp, "m.nn"), "cannot be loaded: "),
           (libc.group(1), "is not an MPI plugin of this nabla")]
    for path, expected in bad:
        env = dict(ENV, NABLA_MPI_PLUGIN=path, OMPI_COMM_WORLD_SIZE="2")
        r = subprocess.run([NABLA, "train", os.path.join(tmp, "m.nn"), "--data", os.path.join(tmp, "train.npz"),
                            "--epochs", "1", "--batch", "32", "--lr", "0.1", "-o", os.path.join(tmp, "b.npz")],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 2 or expected not in r.stderr or os.path.exists(os.path.join(tmp, "b.npz")):
            sys.exit("NABLA_MPI_PLUGIN=%s: expected exit 2 and '%s', got %d:\n%s" % (path, expected, r.returncode,
                                                                                     r.stderr))
        print("NABLA_MPI_PLUGIN=%s: exit 2, %s" % (path, r.stderr.strip()))
    missing = subprocess.run([NABLA, "--version"], capture_output=True, text=True,
                             env=dict(ENV, NABLA_MPI_PLUGIN=os.path.join(tmp, "none.so"))).stdout
    if "plugin libnabla_mpi.so is missing" not in missing:
        sys.exit("--version with no plugin: " + missing)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "m.nn"), "w") as f:
            f.write(MODEL)
        np.savez(os.path.join(tmp, "train.npz"), **data(960, 1))
        np.savez(os.path.join(tmp, "val.npz"), **data(240, 2))
        {"equal": case_equal, "usage": case_usage, "kill": case_kill, "resume": case_resume, "shards": case_shards,
         "python": case_python, "plugin": case_plugin}[CASE](tmp)


if __name__ == "__main__":
    main()
