# Golden tests: one small file per behaviour, the expectation written inline.
#
#   # RUN: %nabla check %s 2>&1 | FileCheck %s
#   # CHECK: ...
#
# Substitutions: %nabla (the binary under test), FileCheck and `not` from
# LLVM 19. Run through CTest (tests/CMakeLists.txt) or directly:
#   lit.py -v tests/golden --param nabla=build/nabla
import os
import lit.formats

config.name = "nabla-golden"
# RUN lines run in /bin/sh (so $(...) works, as a user would type it).
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".nn", ".test"]
config.excludes = ["Inputs", "lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
# Scratch files (%t) go to the build tree when CTest runs lit.
if lit_config.params.get("exec_root"):
    config.test_exec_root = lit_config.params["exec_root"]

nabla = lit_config.params.get("nabla")
if not nabla:
    lit_config.fatal("pass --param nabla=PATH/TO/nabla")
llvm_bin = lit_config.params.get("llvm_bin", "/usr/lib/llvm-19/bin")
shared = lit_config.params.get(
    "shared", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))

config.substitutions.append(("%nabla", os.path.abspath(nabla)))
# The system Python, which has numpy (python3-numpy).
config.substitutions.append(("%python", "/usr/bin/python3"))
# Sanitizer builds stop nesting at 2,000 levels (frontend/parser.h).
if lit_config.params.get("sanitize") in ("1", "ON", "on", "TRUE", "true"):
    config.available_features.add("sanitize")
config.substitutions.append(("%examples", os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "examples"))))
config.substitutions.append(("%shared", os.path.abspath(shared)))
config.environment["PATH"] = os.pathsep.join([llvm_bin, config.environment.get("PATH", "")])
# Kernels compiled by the tests are cached in the test tree, not the user's cache.
config.environment["NABLA_CACHE_DIR"] = os.path.join(
    getattr(config, "test_exec_root", None) or config.test_source_root, "Output", "kernel-cache")
# /dev/full (Linux): writes fail with ENOSPC, for the output-error tests.
if os.path.exists("/dev/full"):
    config.available_features.add("dev-full")
# Tests that read the acceptance corpus beside the checkout run only when it
# is there (a clone of this repository alone skips them, and lit says so).
if os.path.isdir(os.path.join(shared, "acceptance")):
    config.available_features.add("shared")
else:
    lit_config.note("no acceptance corpus at %s: tests that need it are skipped" % shared)
