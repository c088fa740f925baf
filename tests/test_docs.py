"""Every docstring example in the package runs, and so does every Python block of the README."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import fusedoptim

README = Path(__file__).resolve().parents[1] / "README.md"
OPTIONAL = {"fusedoptim.torch": "torch"}


def _modules() -> list[str]:
    names = ["fusedoptim"]
    for info in pkgutil.walk_packages(fusedoptim.__path__, "fusedoptim."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    # The printed representation of NumPy scalars changed in NumPy 2; examples use the new one.
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={"np": np}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {name}"


def _readme_blocks() -> list[str]:
    if not README.exists():
        return []
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_readme_blocks())))
def test_readme_python_blocks_run(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = _readme_blocks()[index]
    if "import torch" in block or "fusedoptim.torch" in block:
        pytest.importorskip("torch")
    if "matplotlib" in block or ".plot(" in block:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
