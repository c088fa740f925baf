"""The kernels give the same bits on aarch64 as on x86-64, for every option branch.

tests/kernel_digest.cpp runs every update kernel (and the gradient-clipping reductions and maps)
on fixed data and prints a digest per kernel, storage type and instruction set. This compiles it
twice with setup.py's floating-point flags: for this machine (baseline, and AVX2 and AVX-512
where the CPU has them) and, with an aarch64 cross compiler, for Arm (NEON, run under qemu), and
requires every digest to equal this machine's
baseline one. Skipped where ``aarch64-linux-gnu-g++`` or ``qemu-aarch64`` is missing (on Debian:
``apt-get install g++-aarch64-linux-gnu qemu-user``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# setup.py's flags that decide the arithmetic (without -ffp-contract=off, GCC for aarch64 fuses
# multiplies and adds into FMAs and every digest differs).
FLAGS = ["-O3", "-std=c++17", "-fno-math-errno", "-ffp-contract=off", f"-I{ROOT / 'csrc/include'}"]
SOURCES = [
    str(ROOT / "tests/kernel_digest.cpp"),
    *map(str, sorted((ROOT / "csrc/isa").glob("*.cpp"))),
]


def _digests(output: str) -> dict[tuple[str, str, str], str]:
    lines = [line.split() for line in output.splitlines()]
    return {(isa, dtype, kernel): digest for isa, dtype, kernel, digest in lines}


def _output(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _compile(compiler: str, out: Path, *extra: str) -> None:
    subprocess.run([compiler, *FLAGS, *extra, *SOURCES, "-o", str(out)], check=True)


def test_aarch64_kernels_give_the_x86_bits(tmp_path: Path) -> None:
    cross, qemu, host = (shutil.which(t) for t in ("aarch64-linux-gnu-g++", "qemu-aarch64", "g++"))
    if not (cross and qemu and host):
        pytest.skip("needs g++, aarch64-linux-gnu-g++ and qemu-aarch64")
    if not (ROOT / "csrc").is_dir():
        pytest.skip("needs the source checkout")
    _compile(host, tmp_path / "x86")
    _compile(cross, tmp_path / "arm", "-static")
    x86 = _digests(_output([str(tmp_path / "x86")]))
    arm = _digests(_output([qemu, str(tmp_path / "arm")]))
    baseline = {(dtype, kernel): d for (isa, dtype, kernel), d in x86.items() if isa == "baseline"}
    # 52 kernel configurations and the clipping kernels, x 2 storage types; SGD without momentum
    # gives the same digest with Nesterov on and off (4 pairs per dtype), nothing else repeats.
    assert len(baseline) == 106 and len(set(baseline.values())) == 98
    assert {isa for isa, _, _ in arm} == {"baseline"}  # no x86 variants compiled for Arm
    assert {(dtype, kernel) for _, dtype, kernel in arm} == set(baseline)
    arm_differ = [key for key, d in arm.items() if d != baseline[key[1:]]]
    assert not arm_differ, f"{len(arm_differ)} Arm digests differ from x86's: {arm_differ[:5]}"
    isa_differ = [key for key, d in x86.items() if d != baseline[key[1:]]]
    assert not isa_differ, f"{len(isa_differ)} x86 variants differ from baseline: {isa_differ[:5]}"
