"""Progress bars for protocols: fits, folds and epochs done out of how many, with an estimate.

A full protocol on a real dataset runs for minutes to days (label-efficiency on Matek bone
marrow: 100 repetitions x 12 sizes x 3 classifiers), so a silent run looks hung. Tasks get
the on/off switch from ``TaskInput.progress`` (``--quiet`` turns it off) and pass it down;
protocols never look it up elsewhere. Bars go to stderr, which is also where a ``hemabench
sweep`` job's log (``<job id>_0_log.err``) catches them: there, not being a terminal, they
are redrawn at most every ``LOG_INTERVAL`` seconds so a day-long job writes a small log.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0  # seconds between redraws when stderr is a file (job logs)


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "fit", leave: bool = True) -> tqdm:
    """A tqdm bar on stderr (a no-op object when ``enabled`` is False) showing done/total,
    the rate and the estimated time left."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=leave,
                file=sys.stderr, mininterval=0.5 if interactive else LOG_INTERVAL, dynamic_ncols=interactive)


def epoch_callback(bar: tqdm):
    """An ``on_epoch(epoch, model, val_loss)`` hook for :func:`hemabench.protocols.mil.train_mil`
    that advances ``bar`` by one epoch and shows the validation loss."""

    def on_epoch(epoch: int, model, val_loss: float) -> None:
        bar.update(1)
        bar.set_postfix(val_loss=f"{val_loss:.4f}", refresh=False)

    return on_epoch
