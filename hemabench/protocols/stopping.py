"""Repetitions that stop at a stated precision: the few-shot sweeps' per-n stopping rule.

Per label budget n, repetitions run in seeded blocks (repetition r always draws the support
set seeded [seed, r], so a shorter run is a prefix of a longer one) until the 95% confidence
interval of the mean balanced accuracy is narrow enough for every classifier fitted at that
n: half-width t(0.975, R - 1) x std(ddof 1) / sqrt(R) <= ``precision``, checked after at
least ``minimum`` repetitions and then after every ``block`` more, and never more than
``maximum``. ``precision`` None is the fixed protocol: exactly ``maximum`` repetitions.

Balanced accuracy here is the mean over classes present in the test set of the diagonal over
the row sum of a stored confusion matrix, so ``hemabench validate`` re-derives every stopping
point from the result file's per-repetition confusions alone (:func:`stopping_problems`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.results.intervals import half_width

DEFAULT_PRECISION, DEFAULT_MINIMUM, DEFAULT_BLOCK = 0.005, 10, 10


def confusion_balanced_accuracy(confusion) -> float:
    """Mean recall over the classes with test cells (rows) of one confusion matrix."""
    cm = np.asarray(confusion, dtype=float)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present])) if present.any() else float("nan")


@dataclass(frozen=True)
class StoppingRule:
    maximum: int
    minimum: int
    block: int = DEFAULT_BLOCK
    precision: float | None = None

    @classmethod
    def from_params(cls, params: dict) -> StoppingRule:
        """The rule a task's parameters state (``repetitions`` is the maximum; results from before
        the rule have no ``precision`` and were fixed)."""
        maximum, precision = int(params["repetitions"]), params.get("precision")
        if precision is None:
            return cls(maximum, maximum)
        return cls(maximum, min(int(params.get("min_repetitions", DEFAULT_MINIMUM)), maximum),
                   int(params.get("repetition_block", DEFAULT_BLOCK)), float(precision))

    def describe(self) -> dict:
        return {"minimum": self.minimum, "maximum": self.maximum, "block": self.block, "precision": self.precision}

    def next_count(self, done: int) -> int:
        """How many repetitions to have after the next block (the first check: ``minimum``)."""
        return self.minimum if done < self.minimum else min(self.maximum, done + self.block)

    def precise(self, values_per_classifier: list) -> bool:
        return self.precision is not None and all(half_width(v) <= self.precision for v in values_per_classifier)

    def stop_at(self, values_per_classifier: list) -> int | None:
        """The stopping point the rule gives on these per-repetition values (one list per
        classifier, in repetition order), or None if they are too few to reach it."""
        available = min(len(v) for v in values_per_classifier)
        count = self.next_count(0)
        while count <= available:
            if count >= self.maximum or self.precise([v[:count] for v in values_per_classifier]):
                return count
            count = self.next_count(count)
        return None


def stopping_problems(rule: StoppingRule, groups: dict, variants: dict) -> list[tuple[str, str]]:
    """(field, message) for each group (the variants fitted on the same support sets, one n)
    whose recorded repetitions are not the rule's stopping point on the stored confusions."""
    problems = []
    for name, entry in groups.items():
        members = entry.get("variants") or []
        stored = entry.get("repetitions")
        missing = [v for v in members if v not in variants or "confusions" not in variants[v]]
        if not members or missing:
            problems.append((f'extra.stopping.groups["{name}"]', f"names variants without stored confusions: "
                                                                 f"{missing or members}"))
            continue
        values = [[confusion_balanced_accuracy(c) for c in variants[v]["confusions"]] for v in members]
        counts = sorted({len(v) for v in values})
        fresh = rule.stop_at(values)
        if counts != [stored] or fresh != stored:
            problems.append((f'extra.stopping.groups["{name}"]',
                             f"records {stored} repetitions, the variants hold {counts} and the rule "
                             f"{rule.describe()} stops at {fresh} on their confusions"))
    return problems
