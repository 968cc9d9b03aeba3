"""Time the demo suite cold (fresh cache and output folder) against a cached re-run.

Why: a re-run must cost almost nothing (embeddings come from the content-hashed cache and
current results are reused), and a cold run is what a new user waits for. Every phase runs
``hemabench.pipeline.runner.run_plan`` on the suite's plan in a fresh child process whose
``HEMABENCH_CACHE`` points at a temporary folder (set in its environment before hemabench is
imported), writing results to a temporary output folder:

* cold, incl. data generation: empty cache, so the synthetic twins are generated first;
* data generation alone: ``ensure()`` of the plan's synthetic datasets in another empty cache;
* cold, data present: the run on that cache (data there, no embeddings, no results);
* cached re-run: the same run again on that cache and output folder.

Seconds are run_plan's wall time in the child (interpreter start and imports excluded);
images forwarded is ``RunReport.images_forwarded``. The script exits 1 if a cached re-run
forwarded any image or computed any result (``Outcome.status``), or if a cold run computed
nothing (the temporary cache was not used).

    python benchmarks/perf/demo_cold_vs_cached.py [--encoder handcrafted ...] [--task T ...] [--dataset D ...]
        [--cold-repeats 1] [--repeats 3] [--device auto|cpu|cuda] [--json demo.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import child_result, finish, run_child, start_script  # noqa: E402

STATUSES = ("computed", "reused", "skipped")


def plan_of(args: argparse.Namespace):
    """(encoders, plan, suite) from the suite narrowed by --encoder / --task / --dataset."""
    from hemabench.pipeline.suites import load_suite

    suite = load_suite(args.suite)
    return list(args.encoder or suite.encoders), suite.plan(args.task, args.dataset), suite


def child(args: argparse.Namespace) -> None:
    """One phase, in this fresh process: HEMABENCH_CACHE is already set by the parent."""
    from hemabench.paths import cache_dir

    encoders, plan, suite = plan_of(args)
    if args.child == "generate":
        from hemabench.datasets import DATASETS

        start = time.perf_counter()
        names = sorted({d for _, d in plan if DATASETS.get(d).synthetic})  # bundled ones ship ready
        for name in names:
            DATASETS.get(name).ensure()
        child_result({"seconds": time.perf_counter() - start, "datasets": names, "cache": str(cache_dir())})
        return
    from hemabench.pipeline.runner import RunOptions, run_plan

    options = RunOptions(out=Path(args.out), device=args.device, progress=False, task_params=suite.task_params,
                         dataset_task_params=suite.dataset_task_params)
    start = time.perf_counter()
    report = run_plan(encoders, plan, options)
    seconds = time.perf_counter() - start
    child_result({"seconds": seconds, "images_forwarded": report.images_forwarded, "cache": str(cache_dir()),
                  "statuses": dict(Counter(o.status for o in report.outcomes)),
                  "outcomes": [[o.encoder, o.task, o.dataset, o.status, o.reason] for o in report.outcomes]})


def phase(args: argparse.Namespace, kind: str, cache: Path, out: Path | None = None) -> dict:
    argv = ["--child", kind, "--suite", args.suite, "--device", args.device, "--out", out or cache / "unused"]
    for flag in ("encoder", "task", "dataset"):
        for value in getattr(args, flag) or []:
            argv += [f"--{flag}", value]
    result = run_child(__file__, argv, env={"HEMABENCH_CACHE": str(cache)})
    if result["cache"] != str(cache):
        raise SystemExit(f"the child used cache {result['cache']}, not {cache}")
    return result


def row(name: str, results: list[dict]) -> dict:
    times = [r["seconds"] for r in results]
    statuses = Counter()
    for r in results:
        statuses.update(r.get("statuses", {}))
    return {"phase": name, "seconds (median)": statistics.median(times), "times": [round(t, 2) for t in times],
            "images forwarded": results[-1].get("images_forwarded", ""),
            **{s: statuses[s] // len(results) for s in STATUSES}}


def problems(cold: list[dict], cached: list[dict]) -> list[str]:
    """Why the figures cannot stand: a cached re-run that forwarded images or computed results,
    or a cold run that computed nothing (its temporary cache was not the one used)."""
    failures = [f"cached re-run {i + 1} forwarded {r['images_forwarded']} images" for i, r in enumerate(cached)
                if r["images_forwarded"]]
    failures += [f"cached re-run {i + 1} computed {r['statuses']['computed']} results" for i, r in enumerate(cached)
                 if r["statuses"].get("computed")]
    failures += [f"a cold run computed nothing ({r['statuses']})" for r in cold if not r["statuses"].get("computed")]
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--encoder", action="append", help="limit to this encoder (repeatable; default: the suite's)")
    parser.add_argument("--task", action="append", help="limit to this task (repeatable)")
    parser.add_argument("--dataset", action="append", help="limit to this dataset (repeatable)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--cold-repeats", type=int, default=1, help="cold runs of each kind (a few minutes each)")
    parser.add_argument("--repeats", type=int, default=3, help="cached re-runs")
    parser.add_argument("--child", choices=["run", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, info = start_script(parser, argv, child)
    if info is None:  # a child phase
        return 0
    encoders, plan, _ = plan_of(args)
    print(f"suite {args.suite}: {len(encoders)} encoders ({', '.join(encoders)}) x {len(plan)} (task, dataset) "
          f"= {len(encoders) * len(plan)} results", flush=True)
    cold, generated, warm_data, cached = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hemabench-perf-demo-") as tmp:
        base = Path(tmp)
        for i in range(args.cold_repeats):
            print(f"cold run {i + 1}/{args.cold_repeats} (empty cache, data generated on the way)", flush=True)
            cold.append(phase(args, "run", base / f"cold{i}" / "cache", base / f"cold{i}" / "out"))
            print(f"data generation {i + 1}/{args.cold_repeats}, then a cold run with the data present", flush=True)
            generated.append(phase(args, "generate", base / f"data{i}" / "cache"))
            warm_data.append(phase(args, "run", base / f"data{i}" / "cache", base / f"data{i}" / "out"))
        last = base / f"data{args.cold_repeats - 1}"
        for i in range(args.repeats):
            print(f"cached re-run {i + 1}/{args.repeats}", flush=True)
            cached.append(phase(args, "run", last / "cache", last / "out"))
    rows = [row("cold, incl. data generation", cold), row("data generation alone", generated),
            row("cold, data present", warm_data), row("cached re-run", cached)]
    finish(args, "demo_cold_vs_cached", f"suite {args.suite}: cold vs cached ({len(encoders) * len(plan)} results)",
           rows, info, encoders=encoders, plan=plan, cold_over_cached=rows[0]["seconds (median)"] /
           rows[3]["seconds (median)"], outcomes_cold=cold[-1]["outcomes"], outcomes_cached=cached[-1]["outcomes"])
    failures = problems(cold + warm_data, cached)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
