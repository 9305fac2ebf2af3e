"""nabla.lambdify (docs/python.md): compiled elementwise functions over
broadcast NumPy arrays and their simplified partial derivatives."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import nabla

SIGMOID = "1/(exp(-(w*x+b))+1)"


def sigmoid_reference(x, w, b):
    s = 1 / (np.exp(-(w * x + b)) + 1)
    ds = s * (1 - s)
    return s, (ds * w, ds * x, ds)


def test_values_and_gradient_against_numpy():
    f = nabla.lambdify(SIGMOID, ["x", "w", "b"])
    assert f.args == ("x", "w", "b") and f.dtype == np.float64
    x = np.linspace(-6, 6, 1001)
    s, (dx, dw, db) = sigmoid_reference(x, 0.7, -0.3)
    np.testing.assert_allclose(f(x, 0.7, -0.3), s, rtol=1e-14, atol=1e-16)
    g = f.grad(x, 0.7, -0.3)
    assert isinstance(g, tuple) and len(g) == 3
    for got, want in zip(g, (dx, dw, db)):
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
    value, grads = f.value_and_grad(x, 0.7, -0.3)
    assert np.array_equal(value, f(x, 0.7, -0.3))
    assert all(np.array_equal(a, b) for a, b in zip(grads, g))


def test_texts_are_the_simplified_ones_diff_prints():
    f = nabla.lambdify(SIGMOID, "x, w, b")
    assert f.source == nabla.simplify(SIGMOID) == "sigmoid(w * x + b)"
    assert list(f.derivatives) == ["x", "w", "b"]
    assert f.derivatives == nabla.diff(SIGMOID, ["x", "w", "b"])


def test_equal_to_the_interpreter_at_every_point():
    expr = "log(1 + exp(a*x)) * tanh(b - x) + x^2 / (1 + b^2)"
    f = nabla.lambdify(expr, "x a b")
    rng = np.random.default_rng(3)
    x, a, b = rng.uniform(-2, 2, (3, 40))
    y = f(x, a, b)
    g = f.grad(x, a, b)
    for i in range(40):
        at = {"x": x[i], "a": a[i], "b": b[i]}
        assert y[i] == pytest.approx(nabla.eval(expr, **at), rel=1e-13, abs=1e-15)
        want = nabla.diff(expr, ["x", "a", "b"], at=at)
        for k, name in enumerate("xab"):
            assert g[k][i] == pytest.approx(want[name], rel=1e-12, abs=1e-14)


def test_broadcasting_as_numpy():
    f = nabla.lambdify("x * y + z", ["x", "y", "z"])
    x = np.arange(3.0).reshape(3, 1)
    y = np.arange(4.0).reshape(1, 4)
    z = np.array(0.5)
    out = f(x, y, z)
    assert out.shape == (3, 4)
    assert np.array_equal(out, x * y + z)
    gx, gy, gz = f.grad(x, y, z)
    assert np.array_equal(gx, np.broadcast_to(y, (3, 4)))
    assert np.array_equal(gy, np.broadcast_to(x, (3, 4)))
    assert np.array_equal(gz, np.ones((3, 4)))
    # scalars, lists, integers, booleans, Fortran order, other dtypes
    assert f(2, 3, 1).shape == () and float(f(2, 3, 1)) == 7.0
    assert np.array_equal(f([1, 2], 3, True), np.array([4.0, 7.0]))
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    assert np.array_equal(f(a, np.float32(2), 0), a * 2)
    assert f(np.zeros((0, 3)), 1, 1).shape == (0, 3)


def test_float32():
    f = nabla.lambdify(SIGMOID, ["x", "w", "b"], dtype="float32")
    assert f.dtype == np.float32
    x = np.linspace(-6, 6, 4097).astype(np.float32)
    y = f(x, 0.7, -0.3)
    assert y.dtype == np.float32
    s, (_, dw, _) = sigmoid_reference(x.astype(np.float64), 0.7, -0.3)
    assert np.max(np.abs(y - s)) < 1e-6
    assert np.max(np.abs(f.grad(x, 0.7, -0.3)[1] - dw)) < 1e-6


def test_threads_give_the_same_answers():
    x = np.random.default_rng(1).normal(0, 3, 300_001)
    one = nabla.lambdify(SIGMOID, "x w b", threads=1)
    two = nabla.lambdify(SIGMOID, "x w b", threads=2)
    assert one.threads == 1 and two.threads >= 1
    assert np.array_equal(one(x, 0.7, -0.3), two(x, 0.7, -0.3))
    assert all(np.array_equal(a, b) for a, b in zip(one.grad(x, 0.7, -0.3), two.grad(x, 0.7, -0.3)))
    # one function called from several Python threads at once
    want = one(x, 0.7, -0.3)
    results = [None] * 4

    def call(i):
        results[i] = two(x, 0.7, -0.3)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, want) for r in results)


def test_a_small_call_then_a_large_one_on_two_threads():
    # The first call needs one workspace, the second one a thread; growing
    # the workspaces once copied them, and both copies freed the same block.
    f = nabla.lambdify("x*y", "x, y", threads=2)
    assert np.array_equal(f(np.ones(10), 2.0), np.full(10, 2.0))
    assert np.array_equal(f(np.ones(200_000), 2.0), np.full(200_000, 2.0))
    assert np.array_equal(f(np.ones(10), 3.0), np.full(10, 3.0))
    del f


def test_errors():
    with pytest.raises(nabla.NablaError, match="'z'.*not among the arguments"):
        nabla.lambdify("x * z", ["x"])
    with pytest.raises(nabla.NablaError) as e:
        nabla.lambdify("x +* 2", ["x"])
    assert e.value.diagnostics and e.value.diagnostics[0].file == "<expr>"
    with pytest.raises(nabla.NablaError, match="named twice"):
        nabla.lambdify("x", ["x", "x"])
    with pytest.raises(nabla.NablaError, match="dtype"):
        nabla.lambdify("x", ["x"], dtype="int32")
    with pytest.raises(nabla.NablaError, match="threads"):
        nabla.lambdify("x", ["x"], threads=0)
    f = nabla.lambdify("x * y", ["x", "y"])
    with pytest.raises(nabla.NablaError, match=r"takes 2 arguments \(x, y\), not 1"):
        f(np.zeros(3))
    with pytest.raises(nabla.NablaError, match=r"'y' has shape \(4,\).*x \(3,\)"):
        f(np.zeros(3), np.zeros(4))
    with pytest.raises(nabla.NablaError, match="not an array of real numbers"):
        f(np.zeros(3), "text")
    with pytest.raises(nabla.NablaError, match="not an array of real numbers"):
        f(np.zeros(3), 1j)
    # a broadcast result larger than the memory budget is refused before
    # anything is allocated
    with pytest.raises(MemoryError, match="memory budget"):
        f(np.zeros((1 << 20, 1)), np.zeros((1, 1 << 20)))


def test_partials_asked_for_and_out():
    f = nabla.lambdify(SIGMOID, "x w b", dtype="float32")
    x = np.linspace(-3, 3, 5000, dtype=np.float32)
    value, (dw, db) = f.value_and_grad(x, 0.7, -0.3, wrt=["w", "b"])
    full = f.grad(x, 0.7, -0.3)
    assert np.array_equal(dw, full[1]) and np.array_equal(db, full[2])
    assert np.array_equal(value, f(x, 0.7, -0.3))
    (only_b,) = f.grad(x, 0.7, -0.3, wrt="b")
    assert np.array_equal(only_b, full[2])
    # out=: the caller's arrays are written and returned
    out = np.empty_like(x)
    assert f(x, 0.7, -0.3, out=out) is out and np.array_equal(out, value)
    outs = [np.empty_like(x) for _ in range(3)]
    g = f.grad(x, 0.7, -0.3, out=outs)
    assert all(a is b for a, b in zip(g, outs)) and np.array_equal(outs[1], dw)
    v_out, g_out = np.empty_like(x), [np.empty_like(x), np.empty_like(x)]
    v2, g2 = f.value_and_grad(x, 0.7, -0.3, wrt="w b", out=(v_out, g_out))
    assert v2 is v_out and g2[0] is g_out[0] and np.array_equal(g_out[1], db)


def test_bad_out_writes_nothing():
    f = nabla.lambdify("x * y", "x y")
    x = np.arange(4.0)
    for bad, message in [(np.zeros(4, np.float32), "float64"), (np.zeros(5), r"shape \(5,\)"),
                         (np.zeros((4, 2))[:, 0], "C-contiguous"), (x, "shares memory")]:
        keep = bad.copy()
        with pytest.raises(nabla.NablaError, match=message):
            f(x, 2.0, out=bad)
        assert np.array_equal(bad, keep)
    good, same = np.full(4, 7.0), np.full(4, 7.0)
    with pytest.raises(nabla.NablaError, match="shares memory"):
        f.grad(x, 2.0, out=[good, good])
    assert np.array_equal(good, same)
    with pytest.raises(nabla.NablaError, match="out has 1 arrays, expected 2"):
        f.grad(x, 2.0, out=[good])
    with pytest.raises(nabla.NablaError, match="'z' is not an argument"):
        f.grad(x, 2.0, wrt="z")
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        f(x, 2.0, bogus=1)


def test_results_never_share_memory():
    # results live in reused blocks: a live result is never handed out again
    f = nabla.lambdify("2 * x", "x")
    x = np.arange(100_000.0)
    first = f(x)
    second = f(x + 1)
    assert not np.shares_memory(first, second)
    assert np.array_equal(first, 2 * x) and np.array_equal(second, 2 * x + 2)
    view = first[10:20]
    del first
    third = f(x + 2)
    assert np.array_equal(view, 2 * x[10:20]) and not np.shares_memory(view, third)
    del second
    fourth = f(x + 3)
    assert np.array_equal(fourth, 2 * x + 6) and np.array_equal(third, 2 * x + 4)


def test_many_functions_share_one_pool_of_threads():
    # Each lambdified function kept a pool of its own, cores - 1 threads for
    # its life: 1,000 functions held 1,000 threads on 2 cores.
    def threads():
        return len(os.listdir("/proc/self/task"))

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc/self/task to count the threads")
    x = np.linspace(-1, 1, 4 * 16384)
    keep = [nabla.lambdify(f"tanh({k} * x)", ["x"], threads=2) for k in range(1, 41)]
    before = threads()
    for k, f in enumerate(keep, start=1):
        assert np.allclose(f(x), np.tanh(k * x))
    assert threads() <= before + os.cpu_count()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_fork_while_another_thread_runs_a_lambdified_function():
    # The shared pool's lock, held by the parent's thread at the fork, was
    # inherited locked: every function splitting its points hung in the child.
    busy = nabla.lambdify("tanh(x) * sin(x)", ["x"])
    f = nabla.lambdify("2 * x", ["x"])
    x = np.linspace(1, 2, 4 * 16384)
    assert np.array_equal(f(x), 2 * x)
    big = np.linspace(-1, 1, 2_000_000)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            busy(big)

    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(0.2)
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)
                os._exit(0 if np.array_equal(f(x), 2 * x) else 3)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.set()
        t.join()
