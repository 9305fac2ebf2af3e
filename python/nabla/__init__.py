"""nabla: symbolic differentiation and expression compiler for neural networks.

    m = nabla.compile("mlp.nn", dtype="float32")
    params = m.init(seed=1)
    loss, grads = m.grad(params, {"x": x, "y": y})

The reference is docs/python.md in nabla's repository.
"""
from ._nabla import (  # noqa: F401  (the module's API)
    Diagnostic,
    Lambdified,
    Model,
    NablaError,
    __version__,
    compile,
    compile_string,
    diff,
    eval,
    lambdify,
    llvm_version,
    simplify,
)
