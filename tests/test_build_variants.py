"""The extension also builds, and gives the same bits, without OpenMP and without ISA variants,
and with Clang.

This compiles a second copy of the extension from the checkout (about 10 s on 2 cores) with
FUSEDOPTIM_NO_OPENMP=1 and FUSEDOPTIM_NO_ISA_VARIANTS=1, loads it in a subprocess, and compares its
SGD, AdaGrad, RMSprop, AdaDelta and Adam updates bitwise with the installed build's. Where
``clang++`` is on the PATH, a third copy is compiled with Clang (and its OpenMP, if it has one)
and compared the same way: the build's pragmas and flags must work with both compilers, and
``-ffp-contract=off`` must give both the same bits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fusedoptim

ROOT = Path(__file__).resolve().parents[1]

WORKLOAD = textwrap.dedent(
    """
    import importlib.util, json, sys
    import numpy as np
    if sys.argv[1] == "installed":
        from fusedoptim import _core as core
    else:
        spec = importlib.util.spec_from_file_location("_core", sys.argv[1])
        core = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(core)
    rng = np.random.default_rng(7)
    sizes = [1, 7, 1000, 70001]
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    buf = [np.zeros_like(p) for p in params]
    steps = np.zeros(len(sizes), np.int64)
    sgd_params = [p.copy() for p in params]
    other_params = [[p.copy() for p in params] for _ in range(3)]
    s = [[np.zeros_like(p) for p in params] for _ in range(6)]
    for _ in range(5):
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        adam_options = (1e-2, 0.9, 0.999, 1e-8, 0.1, False, False, True)
        core.adam(params, grads, m, v, None, steps, True, *adam_options)
        core.sgd(sgd_params, grads, buf, steps, False, 1e-2, 0.9, 0.0, True, 1e-4, False)
        core.adagrad(other_params[0], grads, s[0], steps, False, 1e-2, 0.01, 0.1, 1e-10, False)
        core.rmsprop(other_params[1], grads, s[1], s[2], s[3], steps, False, 1e-2, 0.9, 1e-8,
                     0.1, 0.9, True, False)
        core.adadelta(other_params[2], grads, s[4], s[5], steps, False, 0.9, 0.85, 1e-6, 0.1,
                      True)
    np.save(sys.argv[2], np.concatenate(params + m + v + sgd_params + buf
                                        + sum(other_params, []) + sum(s, [])))
    print(json.dumps(core.build_info()))
    """
)


def _build(build_dir: Path, **env_changes: str) -> Path:
    """Compiles the extension from the checkout into build_dir; returns the library's path."""
    pytest.importorskip("pybind11")
    if not (ROOT / "setup.py").exists():
        pytest.skip("needs the source checkout")
    env = dict(os.environ, **env_changes)
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(build_dir),
         "--build-temp", str(build_dir / "tmp")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"the build failed ({env_changes}):\n{build.stderr[-4000:]}")
    (library,) = build_dir.glob("fusedoptim/_core*")
    return library


@pytest.fixture(scope="module")
def plain_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_dir = tmp_path_factory.mktemp("plain-build")
    return _build(build_dir, FUSEDOPTIM_NO_OPENMP="1", FUSEDOPTIM_NO_ISA_VARIANTS="1")


@pytest.fixture(scope="module")
def clang_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("clang") is None or shutil.which("clang++") is None:
        pytest.skip("clang and clang++ are not on the PATH")
    return _build(tmp_path_factory.mktemp("clang-build"), CC="clang", CXX="clang++")


def _run(core: str, out: Path) -> tuple[np.ndarray, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-c", WORKLOAD, core, str(out)], check=True, capture_output=True, text=True
    )
    return np.load(out), json.loads(result.stdout)


def test_build_without_openmp_or_isa_variants_matches_bitwise(
    plain_build: Path, tmp_path: Path
) -> None:
    plain, plain_info = _run(str(plain_build), tmp_path / "plain.npy")
    installed, installed_info = _run("installed", tmp_path / "installed.npy")
    assert plain_info["openmp"] is False
    assert plain_info["num_threads"] == 1
    assert plain_info["isa"] == "baseline"
    assert plain_info["isa_compiled"] == ["baseline"]
    assert installed_info["isa"] == fusedoptim.build_info()["isa"]
    assert plain.tobytes() == installed.tobytes()


def test_clang_build_matches_bitwise(clang_build: Path, tmp_path: Path) -> None:
    clang, clang_info = _run(str(clang_build), tmp_path / "clang.npy")
    installed, installed_info = _run("installed", tmp_path / "installed.npy")
    assert str(clang_info["compiler"]).startswith("Clang")
    assert clang_info["isa"] == installed_info["isa"]
    assert clang_info["isa_compiled"] == installed_info["isa_compiled"]
    assert clang.tobytes() == installed.tobytes()
