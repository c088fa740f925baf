"""Build of the compiled extension ``fusedoptim._core`` (metadata lives in pyproject.toml).

Default flags are portable: ``-O3``, ``-fno-math-errno`` (without it ``sqrt`` does not vectorise)
and ``-ffp-contract=off`` (no fused multiply-add contraction, so every instruction-set variant and
every thread count give the same bits). Faster instruction sets are chosen at run time from kernel
copies compiled for AVX2 and AVX-512 (csrc/isa/), never with ``-march=native``.

OpenMP is probed: if the compiler cannot build and link a program with ``-fopenmp``, the extension
is built without it and runs on one thread (``fusedoptim.build_info()['openmp']`` says so).

Opt-in environment overrides, for developers and packagers:
  FUSEDOPTIM_NO_OPENMP=1        build without OpenMP even if it is available
  FUSEDOPTIM_NO_ISA_VARIANTS=1  compile only the baseline kernels
  FUSEDOPTIM_EXTRA_CFLAGS="..." extra compiler flags, appended (e.g. -march=native for a local build)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _compiler_command() -> list[str]:
    cxx = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++"
    return shlex.split(cxx)


def _openmp_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags for OpenMP, or empty lists when the compiler cannot use it."""
    if _env_flag("FUSEDOPTIM_NO_OPENMP") or sys.platform == "win32":
        return [], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    source = "#include <omp.h>\nint main() { int n = 0;\n#pragma omp parallel\n n = omp_get_num_threads();\n return n > 0 ? 0 : 1; }\n"
    compiler = _compiler_command()
    if shutil.which(compiler[0]) is None:
        return [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.cpp")
        with open(path, "w") as handle:
            handle.write(source)
        for compile_flags, link_flags in candidates:
            result = subprocess.run(
                [*compiler, *compile_flags, path, "-o", os.path.join(tmp, "probe"), *link_flags],
                capture_output=True,
            )
            if result.returncode == 0:
                return compile_flags, link_flags
    print("fusedoptim: OpenMP not available; building single-threaded kernels", file=sys.stderr)
    return [], []


def _extension() -> Pybind11Extension:
    compile_flags = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fvisibility=hidden"]
    link_flags: list[str] = []
    openmp_compile, openmp_link = _openmp_flags()
    compile_flags += openmp_compile
    link_flags += openmp_link
    macros: list[tuple[str, str | None]] = []
    if _env_flag("FUSEDOPTIM_NO_ISA_VARIANTS"):
        macros.append(("FUSEDOPTIM_NO_ISA_VARIANTS", "1"))
    compile_flags += shlex.split(os.environ.get("FUSEDOPTIM_EXTRA_CFLAGS", ""))
    macros.append(("FUSEDOPTIM_BUILD_FLAGS", '"' + " ".join(compile_flags) + '"'))
    return Pybind11Extension(
        "fusedoptim._core",
        sources=[
            "csrc/bindings.cpp",
            "csrc/dispatch.cpp",
            "csrc/isa/baseline.cpp",
            "csrc/isa/avx2.cpp",
            "csrc/isa/avx512.cpp",
        ],
        include_dirs=["csrc/include"],
        depends=[
            os.path.join(root, name)
            for root, _, names in os.walk("csrc")
            for name in names
            if name.endswith((".hpp", ".h"))
        ],
        define_macros=macros,
        extra_compile_args=compile_flags,
        extra_link_args=link_flags,
        cxx_std=17,
    )


# The five kernel objects compile independently; use every core (override: FUSEDOPTIM_BUILD_JOBS).
ParallelCompile("FUSEDOPTIM_BUILD_JOBS", default=0).install()

setup(ext_modules=[_extension()], cmdclass={"build_ext": build_ext})
