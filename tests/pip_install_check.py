#!/usr/bin/python3
"""`pip install .` as docs/python.md tells a user to run it: a venv with the
system's site packages (NumPy, setuptools, wheel from Debian), pip with no
build isolation and no index (this machine reaches no package index), then the
installed module used from outside the repository.

usage: pip_install_check.py REPO BUILD_DIR
BUILD_DIR is an existing configured build of REPO (NABLA_CMAKE_BUILD_DIR,
setup.py), so the check installs what the suite built rather than building it
again; a cold `pip install .` builds the same target the same way.
"""
import os
import subprocess
import sys
import tempfile

USE = r"""
import os, sys
import numpy as np
import nabla
here = os.path.realpath(nabla.__file__)
assert here.startswith(os.path.realpath(sys.prefix)), "imported %s, not the venv's copy" % here
m = nabla.compile_string('''model lin
input x : [2]
label y : [1]
param W : [1, 2]
output p = W @ x
loss mse(y, p)
''', dtype="float64")
params = {"W": np.array([[1.0, 2.0]])}
loss, grads = m.grad(params, {"x": np.array([[1.0, 1.0]]), "y": np.array([[0.0]])})
assert loss == 9.0 and np.array_equal(grads["W"], np.array([[6.0, 6.0]])), (loss, grads)
f = nabla.lambdify("x^3", "x")
assert np.array_equal(f.grad(np.array([2.0]))[0], np.array([12.0]))
print("installed nabla", nabla.__version__, "at", here)
"""


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    sys.stdout.write(r.stdout[-4000:])
    sys.stderr.write(r.stderr[-4000:])
    if r.returncode != 0:
        sys.exit("failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    repo, build = (os.path.abspath(a) for a in sys.argv[1:])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL")}
    env["NABLA_CMAKE_BUILD_DIR"] = build
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], env=env)
        py = os.path.join(venv, "bin", "python")
        run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-cache-dir", repo], env=env,
            cwd=tmp)
        run([py, "-c", USE], env=env, cwd=tmp)
        # MPI's plugin goes with the module, beside it (runtime/comm.h)
        if os.path.exists(os.path.join(build, "libnabla_mpi.so")):
            where = run([py, "-c", "import os, nabla; print(os.path.dirname(os.path.realpath(nabla._nabla.__file__)))"],
                        env=env, cwd=tmp).stdout.strip()
            if not os.path.isfile(os.path.join(where, "libnabla_mpi.so")):
                sys.exit("the installed package has no libnabla_mpi.so beside its module in " + where)
            print("the MPI plugin is installed beside the module")
        run([py, "-m", "pip", "uninstall", "-y", "nabla"], env=env, cwd=tmp)
        r = subprocess.run([py, "-c", "import nabla"], env=env, cwd=tmp, capture_output=True, text=True)
        if r.returncode == 0:
            sys.exit("nabla still imports after pip uninstall")
    print("pip install . works")


if __name__ == "__main__":
    main()
