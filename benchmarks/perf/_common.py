"""Shared helpers of the performance scripts: medians over repeats, the machine, printing, --json,
and running one phase of a script in a fresh child process.

Not a benchmark itself. The scripts beside it import it as ``_common`` after putting this
folder and the repo root on ``sys.path`` (so they run from a checkout without installing):

    HERE = Path(__file__).resolve().parent
    sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

torch is imported lazily (only by :func:`machine`), so a parent process that only starts
children stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # hemabench from the checkout, as the scripts do
    sys.path.insert(0, str(REPO))

CHILD_MARKER = "@@perf-child-result@@ "  # prefixes the one stdout line a child phase returns


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 0,
                   label: str | None = None) -> tuple[float, list[float]]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (perf_counter);
    returns (median seconds, every time). With ``label``, prints each time as it comes."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if label:
            print(f"  {label} {i + 1}/{repeats}: {times[-1]:.3f} s", flush=True)
    return statistics.median(times), times


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict:
    """What the figures were measured on: CPU, cores (logical and usable by this process), RAM,
    torch (version, intra-op threads), the CUDA device if any, and python."""
    import torch

    from hemabench.compute.cpumath import cpu_model

    info = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": _ram_gib(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": None,
        "cuda_memory_gib": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(cuda_device=props.name, cuda_memory_gib=round(props.total_memory / 2**30, 1))
    return info


def machine_line(info: dict | None = None) -> str:
    """:func:`machine` as one line, for the top of a script's output."""
    m = info or machine()
    gpu = f"{m['cuda_device']} ({m['cuda_memory_gib']} GiB)" if m["cuda_device"] else "no CUDA device"
    return (f"machine : {m['cpu']}, {m['logical_cores']} logical cores ({m['affinity_cores']} usable), "
            f"{m['ram_gib']} GiB RAM; torch {m['torch']} ({m['torch_threads']} threads); {gpu}; "
            f"python {m['python']}")


def print_load(when: str) -> None:
    """The contention line: this machine's load average (1, 5, 15 min) ``when`` ("at start", "at the end")."""
    print(f"contention: load average {Path('/proc/loadavg').read_text().split()[:3]} {when}", flush=True)


def print_figures(rows: Sequence[dict], title: str) -> None:
    """A titled table of figures: one dict per row, its keys as the columns."""
    from tabulate import tabulate

    print(f"\n{title}")
    print(tabulate(list(rows), headers="keys", floatfmt=".5g", tablefmt="github"), flush=True)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", type=Path, default=None,
                        help="also write the figures, the arguments and the machine to FILE (JSON)")


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` (plus ``machine`` and ``date`` unless given) as indented JSON."""
    payload = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **payload}
    payload.setdefault("machine", machine())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def finish(args: argparse.Namespace, benchmark: str, title: str, rows: Sequence[dict],
           info: dict | None = None, **extra) -> None:
    """The end of every script: print the table; with ``--json FILE``, write
    ``{benchmark, date, machine, args, figures: rows, **extra}``."""
    print_figures(rows, title)
    if getattr(args, "json", None):
        args_out = {k: v for k, v in vars(args).items() if k != "json"}
        write_json(args.json, {"benchmark": benchmark, "machine": info or machine(), "args": args_out,
                               "figures": list(rows), **extra})
        print(f"figures written to {args.json}")


def start_script(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
          child: Callable[[argparse.Namespace], None] | None = None) -> tuple[argparse.Namespace, dict | None]:
    """Parse the arguments (adding ``--json``). In a child phase (``--child`` set) run ``child``
    and return (args, None); otherwise print the machine line and return (args, machine)."""
    add_json_option(parser)
    args = parser.parse_args(argv)
    if child is not None and getattr(args, "child", None):
        child(args)
        return args, None
    info = machine()
    print(machine_line(info), flush=True)
    return args, info


def run_child(script: str | os.PathLike, argv: Sequence[str], env: dict | None = None) -> dict:
    """Run ``python script *argv`` in a fresh process (with ``env`` added to the environment)
    and return the dict it passed to :func:`child_result`; the child's other output is shown.
    Raises if the child fails or returns nothing."""
    cmd = [sys.executable, str(script), *map(str, argv)]
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_MARKER):
            result = json.loads(line[len(CHILD_MARKER):])
        else:
            print(f"    | {line}")
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"child phase failed (exit {proc.returncode}): {' '.join(cmd)}")
    return result


def child_result(payload: dict) -> None:
    """Hand ``payload`` back to the parent's :func:`run_child` (one marked stdout line)."""
    print(CHILD_MARKER + json.dumps(payload, default=str), flush=True)
