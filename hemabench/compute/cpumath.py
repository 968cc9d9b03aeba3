"""One instruction set for CPU math, so a CPU result is the same on every x86 processor.

Float kernels pick their code path by processor: AVX-512 on one machine, AVX2 on another,
each summing in its own order. On the demo that moved probe predictions and robustness
variants between an Intel and an AMD machine, beyond what ``hemabench check`` accepts.
Unless ``HEMABENCH_NATIVE_CPU_MATH=1``, every library is capped at AVX2 (the x86-64-v3 level
most processors of the last decade share) through its own environment variable, set before
it loads: PyTorch's ATen kernels, oneDNN (convolutions), MKL (torch's BLAS), OpenBLAS (NumPy,
SciPy, scikit-learn) and NumPy's own SIMD loops. A variable the user already set is kept.
Results record what was in force (``provenance.cpu_math``). This module imports nothing heavy.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "MKL_CBWR": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
OPT_OUT = "HEMABENCH_NATIVE_CPU_MATH"


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name`` line of /proc/cpuinfo (Linux), its value with spaces collapsed, or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return " ".join(value.split())
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name, else the architecture: float results of CPU kernels can differ
    between processor families, so a result names the one it ran on."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _has_avx2() -> bool:
    return "avx2" in (_cpuinfo_field("flags") or "").split()


def pin_cpu_math() -> None:
    """Cap the CPU libraries at AVX2 on an x86-64 processor that has it (elsewhere: nothing)."""
    if os.environ.get(OPT_OUT) == "1" or platform.machine().lower() not in ("x86_64", "amd64") or not _has_avx2():
        return
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)


def cpu_math() -> dict:
    """The CPU math settings in force, for a result's provenance."""
    return {"pinned": os.environ.get(OPT_OUT) != "1" and all(os.environ.get(k) == v for k, v in PINNED.items()),
            **{name: os.environ.get(name) for name in PINNED}}
