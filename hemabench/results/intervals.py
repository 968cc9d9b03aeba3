"""The one bootstrap interval convention and the one replicate count of hemabench.

Every 95% interval is ``percentile_interval``: the 2.5-97.5 percentiles (linear interpolation) of
the finite replicates, ``N_BOOTSTRAP`` of them unless a caller (a test) asks for fewer.

- An interval printed beside a number computed on **redrawn test units** (a metric on redrawn
  cells or patients: ``results.scoring``, ``tasks.robustness_scores``, ``tasks.blood_shift``) is
  **re-centred**: moved so that the replicates' median sits on the estimate. Redrawing can shift
  every replicate one way for reasons that are artifacts of resampling (a small fold redrawn loses
  a class and its macro F1 drops; duplicated tied scores raise average precision), and a plain
  percentile interval then excludes the number it stands beside. Re-centring keeps the width and
  shape and always contains the estimate; where the replicates are centred (accuracy) it changes
  nothing. Its ends are then clipped to the statistic's ``bounds`` (a proportion lies in [0, 1], a
  difference of two proportions in [-1, 1]; NLL has no upper bound).
- The **paired difference** a rank test reads (``leaderboard.ranking``) passes no estimate: plain
  percentiles (its replicates are centred by construction).

The interval of a **mean of repetitions** (``metrics.over_repetitions``: label-efficiency, bm-to-blood)
is not a bootstrap: it is Student's t interval, mean +- ``half_width``, the same the few-shot stopping
rule reads (``protocols.stopping``). A percentile bootstrap of a mean of 10-20 repetitions is too narrow
(simulated coverage 0.887-0.896 where the rule stops there, ``benchmarks/perf/stopping_coverage.py``);
the t interval is exact for normal repetitions and covered 0.924-0.956 under the stopping rule.

A band over repetitions (``spread95``: what one run may give) is a spread of single runs, not a
confidence interval, and is not computed here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

N_BOOTSTRAP = 1000  # replicates of every bootstrap whose interval a result stores or a rank test reads
ALPHA = 0.05  # 95% intervals
PROPORTION = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)  # a difference of two proportions (a drop)


def percentile_interval(replicates, estimate: float | None = None,
                        bounds: tuple[float, float] = PROPORTION, alpha: float = ALPHA) -> list[float]:
    """[low, high]: the alpha/2 and 1 - alpha/2 percentiles of the finite replicates; with ``estimate``
    re-centred on it and clipped to ``bounds`` (never excluding the estimate). NaNs when no replicate
    is finite."""
    finite = np.asarray(replicates, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return [float("nan")] * 2
    low, median, high = np.quantile(finite, [alpha / 2, 0.5, 1 - alpha / 2])
    if estimate is not None and np.isfinite(estimate):
        shift = estimate - median
        low = max(bounds[0], min(low + shift, estimate))
        high = min(bounds[1], max(high + shift, estimate))
    return [float(low), float(high)]


@lru_cache(maxsize=256)
def t_quantile(dof: int, alpha: float = ALPHA) -> float:
    from scipy.stats import t

    return float(t.ppf(1 - alpha / 2, dof))


def half_width(values) -> float:
    """Half-width of the 95% interval of the mean of ``values`` (Student t); inf below two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.inf
    return t_quantile(len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def mean_interval(values, bounds: tuple[float, float] = PROPORTION) -> list[float]:
    """[low, high]: mean +- ``half_width`` of the finite ``values``, clipped to ``bounds``; NaNs below two."""
    finite = np.asarray(values, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    if len(finite) < 2:
        return [float("nan")] * 2
    mean, width = float(finite.mean()), half_width(finite)
    return [max(bounds[0], mean - width), min(bounds[1], mean + width)]
