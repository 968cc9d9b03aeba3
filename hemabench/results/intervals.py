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
- The interval of a **mean of repetitions** (``metrics.over_repetitions``: repetitions redrawn, the
  replicate statistic is the mean itself, unbiased) and the **paired difference** a rank test reads
  (``leaderboard.ranking``) pass no estimate: plain percentiles.

A band over repetitions (``spread95``: what one run may give) is a spread of single runs, not a
confidence interval, and is not computed here.
"""

from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 1000  # replicates of every bootstrap whose interval a result stores or a rank test reads
ALPHA = 0.05  # 95% intervals
PROPORTION = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)  # a difference of two proportions (a drop)
UNBOUNDED = (-np.inf, np.inf)


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
