"""The `nabla` Python module (docs/python.md) as a user calls it.

Run by the test suite as `/usr/bin/python3 -m pytest tests/python` with
PYTHONPATH=build/python and NABLA=build/nabla (the command, for results
bit for bit equal to its own).
"""
import os
import signal
import subprocess
import tempfile
import threading
import time
import types

import numpy as np
import pytest

import nabla

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
XOR = os.path.join(ROOT, "examples", "xor.nn")
MLP = os.path.join(ROOT, "examples", "mnist_mlp.nn")


def xor_data(copies=2, dtype=np.float64):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * copies, dtype=dtype)
    y = np.array([[0], [1], [1], [0]] * copies, dtype=dtype)
    return {"x": x, "y": y}


def test_version_and_error_type():
    assert isinstance(nabla.__version__, str) and nabla.__version__
    assert nabla.llvm_version.startswith("19.")
    assert issubclass(nabla.NablaError, ValueError)


def test_metadata():
    m = nabla.compile(XOR, dtype="float64")
    assert m.name == "xor"
    assert list(m.params) == ["W1", "b1", "W2", "b2"]
    assert m.params["W1"] == (4, 2)
    assert m.inputs == {"x": (2,)} and m.labels == {"y": (1,)} and m.outputs == {"p": (1,)}
    assert m.dtype == np.float64
    assert m.parameter_count == 17
    assert nabla.compile(XOR).dtype == np.float32
    m2 = nabla.compile(MLP, consts={"lambda": 0.5})
    assert m2.consts == {"lambda": 0.5}


def test_bad_model_raises_with_diagnostics():
    with pytest.raises(nabla.NablaError) as e:
        nabla.compile_string("input x : [3]\nh = w @ x\n")
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.column) == ("<string>", 2, 5)
    assert "'w'" in d.message
    assert "<string>:2:5: error:" in str(e.value) and "^" in str(e.value)
    with pytest.raises(nabla.NablaError):
        nabla.compile("/nonexistent.nn")
    # The messages name what the Python call was given, not the command's flags.
    with pytest.raises(nabla.NablaError, match="a value is set for 'nope', but .* has no const named 'nope'") as e:
        nabla.compile(XOR, consts={"nope": 1})
    assert "--set" not in str(e.value)
    with pytest.raises(nabla.NablaError):
        nabla.compile(XOR, dtype="int32")


def run_command(*args):
    return subprocess.run([os.environ.get("NABLA", os.path.join(ROOT, "build", "nabla")), *args],
                          check=True, capture_output=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_equals_the_command_bit_for_bit(dtype):
    m = nabla.compile(XOR, dtype=dtype)
    p = m.init(seed=3)
    d = xor_data(3, dtype)
    loss, g = m.grad(p, d)
    with tempfile.TemporaryDirectory() as t:
        np.savez(os.path.join(t, "p.npz"), **p)
        np.savez(os.path.join(t, "d.npz"), **d)
        run_command("grad", XOR, "--params", os.path.join(t, "p.npz"), "--data", os.path.join(t, "d.npz"),
                    "-o", os.path.join(t, "g.npz"), "--dtype", "f32" if dtype == "float32" else "f64")
        ref = dict(np.load(os.path.join(t, "g.npz")))
    assert loss == float(ref["loss"])
    for k in p:
        assert g[k].dtype == np.dtype(dtype)
        assert np.array_equal(g[k], ref[k]), k
    out = m.forward(p, {"x": d["x"]})
    assert out["p"].shape == (12, 1)
    assert m.loss(p, d) == loss


def test_out_is_filled_and_returned():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    out = {k: np.zeros_like(v) for k, v in p.items()}
    loss, g = m.grad(p, d, out=out)
    assert all(g[k] is out[k] for k in out)
    _, fresh = m.grad(p, d)
    assert all(np.array_equal(out[k], fresh[k]) for k in out)


def test_inputs_are_used_in_place_and_others_converted():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    loss = m.loss(p, d)
    odd = {k: np.asfortranarray(v.astype(np.float32)) for k, v in d.items()}
    assert abs(m.loss(p, odd) - loss) < 1e-6
    lists = {k: v.tolist() for k, v in d.items()}
    assert m.loss(p, lists) == loss


def test_step_updates_the_callers_memory():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=2), xor_data()
    _, g = m.grad(p, d)
    before = {k: v.copy() for k, v in p.items()}
    addresses = {k: v.__array_interface__["data"][0] for k, v in p.items()}
    m.step(p, d, 0.5)
    for k in p:
        assert p[k].__array_interface__["data"][0] == addresses[k]
        assert np.allclose(p[k], before[k] - 0.5 * g[k], rtol=0, atol=1e-15)
    with pytest.raises(nabla.NablaError, match="C-contiguous"):
        q = dict(p)
        q["W1"] = np.asfortranarray(p["W1"])
        m.step(q, d, 0.1)
    with pytest.raises(nabla.NablaError, match="dtype"):
        q = dict(p)
        q["b1"] = p["b1"].astype(np.float32)
        m.step(q, d, 0.1)


def test_arrays_written_in_place_share_no_memory_with_the_others():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data(copies=1)
    out = {k: np.zeros_like(v) for k, v in p.items()}
    out["W1"] = d["x"]  # (4, 2), as W1: the gradient would overwrite the data
    with pytest.raises(nabla.NablaError, match=r"out\['W1'\] shares memory"):
        m.grad(p, d, out=out)
    out = {k: np.zeros_like(v) for k, v in p.items()}
    out["W2"] = out["b1"].reshape(1, 4)  # two gradients in one array
    with pytest.raises(nabla.NablaError, match="shares memory"):
        m.grad(p, d, out=out)
    out = {k: np.zeros_like(v) for k, v in p.items()}
    out["b2"] = p["b2"]  # the gradient over the params it is computed from
    with pytest.raises(nabla.NablaError, match="shares memory"):
        m.grad(p, d, out=out)
    q = {k: v.copy() for k, v in p.items()}
    before = q["W1"].copy()
    with pytest.raises(nabla.NablaError, match=r"params\['W1'\] shares memory"):
        m.step(q, {"x": q["W1"], "y": d["y"]}, 0.5)
    assert np.array_equal(q["W1"], before)
    q["W2"] = q["b1"].reshape(1, 4)
    with pytest.raises(nabla.NablaError, match="shares memory"):
        m.train(q, d, epochs=1, batch=4, lr=0.1)


def test_values_beyond_float32_are_refused_not_made_infinite():
    m = nabla.compile(XOR)
    p = m.init(seed=1)
    d = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), "y": np.array([[0], [1], [1], [0]])}
    huge = dict(p, W1=np.full(p["W1"].shape, 1e300))
    with pytest.raises(nabla.NablaError, match=r"array 'W1' holds 1e\+300 \(element 0\), beyond float32's range"):
        m.loss(huge, d)
    with pytest.raises(nabla.NablaError, match=r"array 'x' holds -4e\+38 \(element 3\)"):
        m.forward(p, dict(d, x=np.array([[0, 0], [0, -4e38], [1, 0], [1, 1]])))
    # float64 infinities stay what they are (refused where data must be finite)
    assert np.isfinite(m.loss(p, dict(d, x=d["x"].astype(np.float64))))
    assert np.isfinite(nabla.compile(XOR, dtype="float64").loss(dict((k, v.astype(np.float64)) for k, v in p.items()), d))


def test_labels_declared_distributions_are_checked_by_every_call():
    m = nabla.compile(MLP, dtype="float32")
    p = m.init(seed=1)
    x = np.random.default_rng(0).random((8, 784)).astype(np.float32)
    y = np.full((8, 10), 0.5, np.float32)  # each row sums to 5
    for call in (lambda: m.loss(p, {"x": x, "y": y}), lambda: m.grad(p, {"x": x, "y": y}),
                 lambda: m.step({k: v.copy() for k, v in p.items()}, {"x": x, "y": y}, 0.1)):
        with pytest.raises(nabla.NablaError, match="declared a distribution, but sample 0 sums to 5"):
            call()
    y[:] = 0.1
    assert np.isfinite(m.loss(p, {"x": x, "y": y}))


def test_params_and_data_may_be_any_mapping(tmp_path):
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    loss = m.loss(p, d)
    np.savez(tmp_path / "d.npz", **d)
    np.savez(tmp_path / "p.npz", **p)
    with np.load(tmp_path / "d.npz") as dz, np.load(tmp_path / "p.npz") as pz:
        assert m.loss(pz, dz) == loss
        assert m.loss(types.MappingProxyType(p), types.MappingProxyType(d)) == loss
        assert m.gradcheck(pz, dz, seed=3) == m.gradcheck(p, d, seed=3)
        # Written in place: an NpzFile would hand out copies, the update lost.
        with pytest.raises(nabla.NablaError, match="NpzFile"):
            m.step(pz, d, 0.1)
    q = {k: v.copy() for k, v in p.items()}
    m.step(types.MappingProxyType(q), d, 0.1)  # the same arrays: updated
    assert not np.array_equal(q["W1"], p["W1"])
    with pytest.raises(nabla.NablaError, match="must be a mapping of names to arrays"):
        m.loss([p], d)


def test_ctrl_c_stops_training_with_the_steps_done():
    m = nabla.compile(XOR, dtype="float64")
    p = m.init(seed=1)
    before = {k: v.copy() for k, v in p.items()}
    x = np.random.default_rng(0).random((4096, 2))
    d = {"x": x, "y": (x.sum(1, keepdims=True) > 1).astype(float)}
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        m.train(p, d, epochs=10**6, batch=32, lr=0.1)
    assert time.monotonic() - t0 < 60
    assert not np.array_equal(p["W1"], before["W1"])
    assert all(np.isfinite(v).all() for v in p.values())


def test_bad_argument_values_say_what_is_expected():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    cases = [
        (lambda: m.init(seed=-1), "seed must be an integer from 0 to 2\\*\\*64 - 1, not -1"),
        (lambda: nabla.compile(XOR, threads=2**40), "threads must be an integer from 1 to 1024"),
        (lambda: nabla.compile(XOR, consts={"lambda": "big"}), "consts\\['lambda'\\] must be a number, not 'big'"),
        (lambda: m.gradient_program(wrt=5), "wrt must be a name or a sequence of names, not 5"),
        (lambda: nabla.eval("x", x="3"), "the value of 'x' must be a number"),
        (lambda: nabla.lambdify("x", 5), "the names must be"),
        (lambda: m.train(p, d, epochs=1, batch=4, lr=0.1, callback=lambda e, s: ""),
         "the callback's result must be True, False or None"),
        (lambda: m.train(p, d, epochs=1, batch=4, lr=0.1, seed=-3), "seed must be an integer from 0 to 2\\*\\*64 - 1, not -3"),
        (lambda: m.train(p, d, epochs=2**31, batch=4, lr=0.1), "epochs must be an integer from 1 to 2\\*\\*31 - 1"),
        (lambda: m.train(p, d, epochs=1.5, batch=4, lr=0.1), "epochs must be an integer .*, not 1.5"),
        (lambda: m.step(p, d, lr="0.1"), "lr must be a number, not '0.1'"),
    ]
    for call, message in cases:
        with pytest.raises(TypeError, match=message):
            call()
    with pytest.raises(nabla.NablaError, match="dtype must be float32 or float64, not None"):
        nabla.compile(XOR, dtype=None)
    with pytest.raises(nabla.NablaError, match="threads must be an integer from 1 to 1024, not 0"):
        nabla.lambdify("x", "x", threads=0)


def test_small_hostile_cases(tmp_path):
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    with pytest.raises(nabla.NablaError, match="array 'x' has dtype complex128"):
        m.loss(p, {"x": d["x"] + 5j, "y": d["y"]})
    assert nabla.eval("expr + 1", expr=2) == 3
    obj = tmp_path / "s.o"
    with pytest.raises(nabla.NablaError, match="are the same file"):
        m.save_object(str(obj), header=str(obj))
    assert not obj.exists()
    bad = {"x": d["x"] * np.nan, "y": d["y"]}
    with pytest.raises(nabla.NablaError, match="the batch's input 'x' is not finite: the data, not the training"):
        m.train(m.init(seed=1), bad, epochs=1, batch=4, lr=0.1)


def test_objects_cannot_be_made_without_the_module():
    for cls in (nabla.Model, nabla.Lambdified, nabla.Diagnostic):
        with pytest.raises(TypeError, match="made by the module"):
            cls.__new__(cls)
        with pytest.raises(TypeError):
            cls()
        # The base class's __new__ made one with no C++ object behind it
        # (its first method call crashed): CPython now refuses it.
        with pytest.raises(TypeError, match="not safe"):
            cls.__base__.__new__(cls)


def test_objects_cannot_be_pickled_or_copied():
    import copy
    import pickle
    with pytest.raises(nabla.NablaError) as e:
        nabla.compile_string("input x : [3]\nh = w @ x\n")
    objects = [nabla.compile(XOR), nabla.lambdify("x*y", ["x", "y"]), e.value.diagnostics[0]]
    for obj in objects:
        # Protocols 0 and 1 called the base class on the object, which
        # aborted the interpreter.
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            with pytest.raises(TypeError, match="cannot pickle or copy"):
                pickle.dumps(obj, protocol=protocol)
        for f in (copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="cannot pickle or copy"):
                f(obj)
    assert objects[1](2.0, 3.0) == 6.0  # still usable


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_the_parents_model():
    # fork() copies only the calling thread: the child has the model's
    # thread pool but none of its workers, and once waited for them forever.
    m = nabla.compile(MLP, dtype="float32", threads=2)
    p = m.init(seed=1)
    rng = np.random.default_rng(0)
    d = {"x": rng.random((512, 784), dtype=np.float32), "y": np.eye(10, dtype=np.float32)[rng.integers(0, 10, 512)]}
    want = m.loss(p, d)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            got = m.loss(p, d)
            os.write(w, repr(got).encode())
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish its kernel call in 120 s")
    got = os.read(r, 100).decode()
    os.close(r)
    assert got and float(got) == want


def test_wrong_shapes_name_the_array_and_write_nothing():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=1), xor_data()
    bad = dict(p)
    bad["W2"] = np.zeros((2, 4))
    sentinel = {k: np.full_like(v, 7.0) for k, v in p.items()}
    with pytest.raises(nabla.NablaError) as e:
        m.grad(bad, d, out=sentinel)
    assert "'W2'" in str(e.value) and "(2, 4)" in str(e.value) and "(1, 4)" in str(e.value)
    assert all(np.all(v == 7.0) for v in sentinel.values())
    unequal = dict(d)
    unequal["y"] = np.zeros((5, 1))
    with pytest.raises(nabla.NablaError, match="'y'"):
        m.loss(p, unequal)
    with pytest.raises(nabla.NablaError, match="no array 'x'"):
        m.loss(p, {"y": d["y"]})
    before = {k: v.copy() for k, v in p.items()}
    with pytest.raises(nabla.NablaError):
        m.step(p, unequal, 0.1)
    assert all(np.array_equal(p[k], before[k]) for k in p)


def test_threads_give_the_same_answers():
    m = nabla.compile(MLP, dtype="float64", threads=2)
    p = m.init(seed=1)
    rng = np.random.default_rng(0)
    d = {"x": rng.standard_normal((64, 784)), "y": np.eye(10)[rng.integers(0, 10, 64)]}
    expected = m.loss(p, d)
    results = []

    def work():
        for _ in range(20):
            results.append(m.loss(p, d))
    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(results) == 80 and all(r == expected for r in results)


def test_train_with_callback():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=4), xor_data(8)
    first = m.loss(p, d)
    seen = []
    hist = m.train(p, d, epochs=300, batch=8, lr=0.05, optimizer="adam", seed=1,
                   callback=lambda e, met: seen.append((e, met["loss"])) is None)
    assert len(hist) == 300 and len(seen) == 300 and seen[0][0] == 1
    assert m.loss(p, d) < 0.5 * first
    assert len(m.train(p, d, epochs=5, batch=8, lr=0.1, callback=lambda e, met: False)) == 1
    with pytest.raises(ZeroDivisionError):
        m.train(p, d, epochs=3, batch=8, lr=0.1, callback=lambda e, met: 1 / 0)
    with pytest.raises(nabla.NablaError):
        m.train(p, d, epochs=1, batch=8, lr=0.1, optimizer="rmsprop")


def test_train_reports_each_epochs_validation_loss_and_accuracy():
    # Validation runs in one forward pass a batch (the accuracy output and
    # each sample's loss): what it reports is the model's loss and the
    # outputs' accuracy on the validation data at that epoch's params.
    m = nabla.compile(MLP, dtype="float64")
    rng = np.random.default_rng(3)
    d = {"x": rng.standard_normal((96, 784)), "y": np.eye(10)[rng.integers(0, 10, 96)]}
    val = {"x": rng.standard_normal((40, 784)), "y": np.eye(10)[rng.integers(0, 10, 40)]}
    p = m.init(seed=2)
    seen = []

    def callback(epoch, metrics):
        out = m.forward(p, val)
        outputs = next(iter(out.values()))
        accuracy = np.mean(outputs.argmax(axis=1) == val["y"].argmax(axis=1))
        seen.append((metrics["val_loss"], m.loss(p, val), metrics["val_acc"], accuracy))
    m.train(p, d, epochs=3, batch=16, lr=0.05, val=val, callback=callback)
    assert len(seen) == 3
    for reported, loss, reported_acc, acc in seen:
        assert reported == pytest.approx(loss, rel=1e-12)
        assert reported_acc == acc
    assert seen[0][0] != seen[2][0]


def test_train_callback_sees_the_epochs_params_and_may_use_the_model():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=4), xor_data(8)
    start = {k: v.copy() for k, v in p.items()}
    at_epoch = []

    def callback(epoch, metrics):
        # the model is free during the callback (this call used to deadlock)
        at_epoch.append((m.loss(p, d), p["W1"].copy()))

    m.train(p, d, epochs=4, batch=8, lr=0.1, seed=1, callback=callback)
    assert len(at_epoch) == 4
    assert not np.array_equal(at_epoch[0][1], start["W1"])
    assert all(not np.array_equal(a[1], b[1]) for a, b in zip(at_epoch, at_epoch[1:]))
    assert np.array_equal(at_epoch[-1][1], p["W1"]) and at_epoch[-1][0] == m.loss(p, d)


def test_what_a_train_callback_writes_into_the_params_trains_on():
    m = nabla.compile(XOR, dtype="float64")
    d = xor_data(8)

    def run(write):
        p = m.init(seed=4)

        def callback(epoch, metrics):
            if write and epoch == 1:
                p["b2"][...] = 30.0  # saturates the sigmoid: the points labeled 0 cost ~30
            if write and epoch == 3:
                p["W2"][...] = 7.0

        history = m.train(p, d, epochs=3, batch=8, lr=0.1, seed=1, callback=callback)
        return [h["loss"] for h in history], p

    plain, _ = run(False)
    written, p = run(True)
    assert written[0] == plain[0] and plain[1] < 2 and written[1] > 10
    assert np.array_equal(p["W2"], np.full((1, 4), 7.0))  # the last callback's write is kept


def test_step_refuses_a_learning_rate_the_command_refuses():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=4), xor_data(2)
    before = {k: v.copy() for k, v in p.items()}
    with pytest.raises(nabla.NablaError, match="at most 1e30"):
        m.step(p, d, lr=1e300)
    assert all(np.array_equal(p[k], before[k]) for k in p)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_model_busy_in_another_thread_at_the_fork_is_an_error_in_the_child():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=4), xor_data(2)
    # A Python thread trains in a loop, the GIL released and the model's
    # lock held but between calls: the fork lands inside a call almost
    # surely. The child's call on the model must answer either way: the
    # loss, or the error that the model was busy.
    inside, stop = threading.Event(), threading.Event()

    def train():
        inside.set()
        while not stop.is_set():
            m.train({k: v.copy() for k, v in p.items()}, xor_data(512), epochs=1, batch=4, lr=0.01)

    t = threading.Thread(target=train)
    t.start()
    inside.wait()
    time.sleep(0.2)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.alarm(20)
        try:
            try:
                m.loss(p, d)
                os.write(w, b"ok")
            except nabla.NablaError as e:
                os.write(w, b"error: " + str(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    stop.set()
    t.join()
    answer = os.read(r, 1000).decode()
    os.close(r)
    assert os.WIFEXITED(status), "the child hung (SIGALRM) or crashed"
    assert answer == "ok" or ("forked" in answer), answer


def test_a_copy_over_the_memory_budget_is_a_memory_error_and_an_objects_error_is_its_own(monkeypatch):
    m = nabla.compile(MLP, dtype="float32")
    p = m.init(seed=1)
    # 10**6 samples broadcast from one value: a 3.1 GB float32 copy
    monkeypatch.setenv("NABLA_MEMORY_LIMIT", "2G")
    with pytest.raises(MemoryError, match="array 'x' as float32 needs 3.14 GB"):
        m.forward(p, {"x": np.broadcast_to(np.float32(0), (10**6, 784))})
    monkeypatch.delenv("NABLA_MEMORY_LIMIT")

    class Refuses:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("not today")

    with pytest.raises(RuntimeError, match="not today"):
        m.forward(p, {"x": Refuses()})
    assert m.forward(p, {"x": [[0.0] * 784]})["yhat"].shape == (1, 10)


def test_validation_data_that_is_not_finite_is_an_error():
    m = nabla.compile(XOR, dtype="float64")
    p, d = m.init(seed=4), xor_data(2)
    val = xor_data(1)
    val["x"][2, 1] = np.inf
    with pytest.raises(nabla.NablaError, match="array .x. in .val. holds inf \\(element 5\\)"):
        m.train(p, d, epochs=1, batch=8, lr=0.1, val=val)


def test_train_that_diverges_leaves_params_as_they_were():
    m = nabla.compile_string("model lin\ninput x : [2]\nlabel y : [1]\nparam W : [1, 2]\n"
                             "output p = W @ x\nloss mse(y, p)\n", dtype="float64")
    p = {"W": np.array([[1.0, 2.0]])}
    d = {"x": np.ones((4, 2)), "y": np.zeros((4, 1))}
    seen = []
    with pytest.raises(nabla.NablaError, match="finite"):
        # W grows ~1e30-fold a step (one step an epoch): the loss overflows
        # in the sixth epoch, after callbacks have seen the earlier params
        m.train(p, d, epochs=10, batch=4, lr=1e30, callback=lambda e, met: seen.append(p["W"].copy()) is None)
    assert len(seen) >= 1 and not np.array_equal(seen[0], [[1.0, 2.0]])
    assert np.array_equal(p["W"], [[1.0, 2.0]])


def test_gradcheck_and_text():
    m = nabla.compile(XOR, dtype="float64")
    worst = m.gradcheck(seed=2)
    assert set(worst) == {"W1", "b1", "W2", "b2"} and max(worst.values()) < 1e-6
    text = m.gradient_program()
    assert text == run_command("diff", XOR).stdout.decode()
    assert "\\begin{aligned}" in m.gradient_program(format="latex")
    only_b2 = m.gradient_program(wrt="b2")
    assert "d/db2 = " in only_b2 and "d/dW1" not in only_b2
    two = m.gradient_program(wrt="W2, b2")  # one string of names, as nabla.diff reads it
    assert two == m.gradient_program(wrt=["W2", "b2"]) and "d/dW1" not in two
    with pytest.raises(nabla.NablaError, match="wrt names 'W9', but .* has no param named 'W9'") as e:
        m.gradient_program(wrt="W9")
    assert "--wrt" not in str(e.value)
    assert m.graph().startswith("digraph")


def test_expressions():
    assert nabla.simplify("3*x - x + 2*x + 1").replace(" ", "") == "4*x+1"
    assert nabla.eval("x^2 + y", x=3, y=1) == 10
    assert nabla.diff("x^3", "x") == {"x": "3 * x^2"}
    assert nabla.diff("x^3 * y", ["x", "y"], at={"x": 2, "y": 1}) == {"x": 12.0, "y": 8.0}
    assert nabla.diff("x^3", "x", order=2, at={"x": 2}) == {"x": 12.0}
    with pytest.raises(nabla.NablaError) as e:
        nabla.eval("x +* 2", x=1)
    assert e.value.diagnostics[0].file == "<expr>"
    with pytest.raises(nabla.NablaError, match="no value for 'y'"):
        nabla.eval("x + y", x=1)


def test_deep_nesting_is_not_a_crash():
    deep = "(" * 5000 + "x" + ")" * 5000
    assert nabla.eval(deep, x=2) == 2.0
    text = "input x : [2]\noutput y = " + "tanh(" * 3000 + "x" + ")" * 3000 + "\n"
    m = nabla.compile_string(text, dtype="float64")
    assert m.forward({}, {"x": np.ones((1, 2))})["y"].shape == (1, 2)


def test_save_object_writes_the_commands_files(tmp_path):
    m = nabla.compile(XOR)
    m.save_object(str(tmp_path / "xor.o"), header=str(tmp_path / "xor.h"), prefix="xor_net")
    assert (tmp_path / "xor.o").read_bytes()[:4] == b"\x7fELF"
    header = (tmp_path / "xor.h").read_text()
    assert "xor_net_grad" in header
    run_command("compile", XOR, "--emit", "header", "--prefix", "xor_net", "-o", str(tmp_path / "cmd.h"))
    assert header == (tmp_path / "cmd.h").read_text()
    with pytest.raises(nabla.NablaError, match="C identifier"):
        m.save_object(str(tmp_path / "x.o"), prefix="2 bad")
    with pytest.raises(OSError):
        m.save_object(XOR)  # the model's own file is never overwritten
