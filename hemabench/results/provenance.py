"""What made a result: code version, environment, device, time."""

from __future__ import annotations

import platform
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import hemabench
from hemabench.compute.cpumath import cpu_math, cpu_model

PACKAGES = ("torch", "timm", "numpy", "scikit-learn", "pandas", "scipy", "pillow", "lightly", "safetensors")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the hemabench checkout in use (with '-dirty' for local changes), if any."""
    repo = Path(hemabench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_math": cpu_math(), "packages": versions}


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(0)})"
    return f"{device} ({cpu_model()}, {torch.get_num_threads()} threads)"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def provenance(device: str, seeds: dict, started: str, phases: dict[str, float]) -> dict:
    return {"hemabench_version": hemabench.__version__, "git_commit": git_commit(), **environment(),
            "device": device_description(device), "seeds": seeds, "started": started, "finished": now(),
            "seconds": {k: round(v, 3) for k, v in phases.items()}}
