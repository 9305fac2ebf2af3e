"""The build of `pip install .` (pyproject.toml): CMake builds the module's
one target, `_nabla` (python/CMakeLists.txt), and setuptools packages it with
python/nabla/ (and the MPI plugin, libnabla_mpi.so, when the build has it).

The CMake build directory is build/pip (configured with the tests off and the
interpreter pip runs), or NABLA_CMAKE_BUILD_DIR: an existing configured build
of the repository (the test suite passes its release build, so the test
installs what the suite just built instead of building it a second time).
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(nabla VERSION ([0-9.]+)", f.read()).group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.environ.get("NABLA_CMAKE_BUILD_DIR") or os.path.join(ROOT, "build", "pip")
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            generator = ["-G", "Ninja"] if shutil.which("ninja") else []
            subprocess.run(["cmake", "-S", ROOT, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release",
                            "-DNABLA_TESTS=OFF", "-DPython_EXECUTABLE=" + sys.executable], check=True)
        subprocess.run(["cmake", "--build", build, "--target", "_nabla"], check=True)
        built = [f for f in os.listdir(os.path.join(build, "python", "nabla")) if f.startswith("_nabla.")]
        if len(built) != 1:
            sys.exit("setup.py: expected one _nabla module in %s/python/nabla, found %s" % (build, built))
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(build, "python", "nabla", built[0]), target)
        # MPI's plugin (runtime/comm.h), when the build has MPI: the module
        # looks for it beside itself first, so the package keeps its own.
        plugin = os.path.join(build, "libnabla_mpi.so")
        if os.path.exists(plugin):
            shutil.copyfile(plugin, os.path.join(os.path.dirname(target), "libnabla_mpi.so"))


setup(
    version=version(),
    ext_modules=[CMakeExtension("nabla._nabla")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": os.path.join("build", "pip-setuptools")}},
    zip_safe=False,
)
