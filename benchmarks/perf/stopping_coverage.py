"""Does the 95% interval of the mean still cover the truth when repetitions stop at a precision?

    python benchmarks/perf/stopping_coverage.py [--sims 2000] [--spreads 0.005 0.01 0.02 0.03 0.05]
        [--precision 0.005] [--minimum 10] [--maximum 100] [--block 10] [--json coverage.json]

Simulated sweeps at one n: per-repetition balanced accuracies drawn from a Beta distribution
(mean 0.7, the given spread over support sets), the rule of hemabench/protocols/stopping.py
applied to them, and at its stopping point two intervals checked against the true mean: the
Student-t interval (the rule's half-width, and ``ci95`` as results report it since label-efficiency
v5 / bm-to-blood v6) and, for contrast, the percentile bootstrap of the mean that v4 / v5 reported.
Stopping when the interval looks narrow biases it a little; this measures how much.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from hemabench.protocols.stopping import StoppingRule  # noqa: E402
from hemabench.results.intervals import N_BOOTSTRAP, mean_interval, percentile_interval  # noqa: E402


def coverage(rule: StoppingRule, mean: float, spread: float, sims: int, seed: int, bootstrap: bool = False) -> dict:
    """Fraction of simulated sweeps whose interval at the stopping point covers ``mean``."""
    rng = np.random.default_rng(seed)
    k = mean * (1 - mean) / spread ** 2 - 1  # Beta(a, b) with this mean and standard deviation
    draws = rng.beta(mean * k, (1 - mean) * k, (sims, rule.maximum))
    covered_t = covered_boot = 0
    counts = []
    for i, values in enumerate(draws):
        r = rule.stop_at([values])
        counts.append(r)
        low, high = mean_interval(values[:r])  # the ci95 results report (metrics.over_repetitions)
        covered_t += low <= mean <= high
        if bootstrap:
            picks = np.random.default_rng(i).integers(0, r, (N_BOOTSTRAP, r))
            low, high = percentile_interval(values[:r][picks].mean(axis=1))
            covered_boot += low <= mean <= high
    out = {"spread": spread, "coverage_t": covered_t / sims, "mean_repetitions": float(np.mean(counts)),
           "stopped_at_minimum": float(np.mean(np.equal(counts, rule.minimum))),
           "at_maximum": float(np.mean(np.equal(counts, rule.maximum)))}
    if bootstrap:
        out["coverage_percentile_bootstrap"] = covered_boot / sims
    return out


def main(argv: list[str] | None = None) -> int:
    from _common import finish, start_script

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--spreads", nargs="+", type=float, default=[0.005, 0.01, 0.015, 0.02, 0.03, 0.05])
    parser.add_argument("--precision", type=float, default=0.005)
    parser.add_argument("--minimum", type=int, default=10)
    parser.add_argument("--maximum", type=int, default=100)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args, info = start_script(parser, argv)
    rule = StoppingRule(args.maximum, args.minimum, args.block, args.precision)
    rows = [coverage(rule, 0.7, s, args.sims, args.seed + i, bootstrap=True) for i, s in enumerate(args.spreads)]
    finish(args, "stopping_coverage", f"coverage of the 95% interval at the stopping point ({args.sims} sweeps each, "
           f"rule {rule.describe()})", rows, info, rule=rule.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
