"""Metric keys in words, with the direction that is better (↑ higher, ↓ lower).

Result files key metrics as ``<variant>/<name>`` (``probe/balanced_accuracy``,
``adapt/n=25/rep000/balanced_accuracy``); a reader needs "balanced accuracy ↑ (adapt, n=25,
repetition 0)". Error-like metrics (calibration errors, risk, drops) are lower-is-better.
"""

from __future__ import annotations

import re

from hemabench.results.metrics import HEADLINE

NAMES = {  # besides the headline metrics, whose words are in their registry (hemabench.results.metrics.HEADLINE)
    "patient_accuracy": "patient accuracy",
    "balanced_accuracy_auc": "area under the balanced-accuracy curve", "mean_balanced_accuracy": "mean balanced accuracy",
    "roc_auc_macro": "ROC AUC (macro)",
    "pr_auc_macro": "PR AUC (macro)", "aurc": "AURC, area under risk-coverage", "brier": "Brier score",
    "ece": "ECE", "classwise_ece": "class-wise ECE", "ece_debiased": "ECE debiased", "nll": "NLL",
    "risk_at_80": "risk at 80% coverage", "robustness_index": "robustness index (PathoROB)",
    "knn_same_class_other_centre": "neighbours of its class from another dataset",
    "knn_other_class_same_centre": "neighbours of another class from its dataset",
}
LOWER = {"aurc", "brier", "ece", "classwise_ece", "ece_debiased", "nll", "risk_at_80", "knn_other_class_same_centre"}
UNITS = {"nll": ("nats", 1.0, 3), "brier": ("0 to 2", 1.0, 3)}  # not fractions: never shown as %
PERCENT = ("%", 100.0, 1)
REP = re.compile(r"^rep0*(\d+)$")
NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def metric_unit(key: str) -> tuple[str, float, int]:
    """(unit, scale, digits) a metric is shown in: NLL in nats and the Brier score (0 to 2) as stored,
    with 3 digits; every other metric is a fraction (accuracies, ECE, risks, drops) shown as %."""
    base = key.rsplit("/", 1)[-1].removesuffix("_ts")
    return UNITS.get(base.removeprefix("drop_"), PERCENT)


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside a text by value: 5pct < 10pct < 100pct, n=5 < n=25."""
    return [(0, float(part), "") if i % 2 else (1, 0.0, part) for i, part in enumerate(NUMBER.split(str(text)))]


def is_lower_better(name: str) -> bool:
    """Whether a smaller value of the metric (last key part) is better."""
    base = name.rsplit("/", 1)[-1].removesuffix("_ts")
    return base in LOWER or base.startswith("drop_")


def metric_name(name: str) -> str:
    """The last key part in words with its arrow: 'ece_ts' -> 'ECE, temperature-scaled ↓'."""
    base = name.rsplit("/", 1)[-1]
    scaled = base.endswith("_ts")
    core = base.removesuffix("_ts")
    if core.startswith("drop_"):
        words = f"drop in {metric_name(core[5:]).rsplit(' ', 1)[0]}"
    elif core.startswith("sensitivity_"):
        words = f"sensitivity of {core[12:]}"
    else:
        words = HEADLINE[core].words if core in HEADLINE else NAMES.get(core, core.replace("_", " "))
    return f"{words}{', temperature-scaled' if scaled else ''} {'↓' if is_lower_better(base) else '↑'}"


def metric_label(key: str) -> str:
    """A full key in words: the metric, then its variant parts in brackets."""
    *variant, name = key.split("/")
    parts = [f"repetition {int(m[1])}" if (m := REP.match(p)) else p for p in variant]
    return metric_name(name) + (f" ({', '.join(parts)})" if parts else "")
