"""The extension also builds, and gives the same bits, without OpenMP and without ISA variants.

This compiles a second copy of the extension from the checkout (about 10 s on 2 cores) with
FUSEDOPTIM_NO_OPENMP=1 and FUSEDOPTIM_NO_ISA_VARIANTS=1, loads it in a subprocess, and compares its
Adam and SGD updates bitwise with the installed build's.
"""

from __future__ import annotations

import json
import os
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
    for _ in range(5):
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        adam_options = (1e-2, 0.9, 0.999, 1e-8, 0.1, False, False, True)
        core.adam(params, grads, m, v, None, steps, True, *adam_options)
        core.sgd(sgd_params, grads, buf, steps, False, 1e-2, 0.9, 0.0, True, 1e-4, False)
    np.save(sys.argv[2], np.concatenate(params + m + v + sgd_params + buf))
    print(json.dumps(core.build_info()))
    """
)


@pytest.fixture(scope="module")
def plain_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pybind11")
    if not (ROOT / "setup.py").exists():
        pytest.skip("needs the source checkout")
    build_dir = tmp_path_factory.mktemp("plain-build")
    env = dict(os.environ, FUSEDOPTIM_NO_OPENMP="1", FUSEDOPTIM_NO_ISA_VARIANTS="1")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(build_dir),
         "--build-temp", str(build_dir / "tmp")],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    (library,) = build_dir.glob("fusedoptim/_core*")
    return library


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
