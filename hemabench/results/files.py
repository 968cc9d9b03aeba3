"""Result files: one versioned JSON per (encoder, task, dataset), documented by result.schema.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hemabench.results.packing import pack_proba
from hemabench.results.result import SCHEMA_VERSION, Result


def result_path(out: Path, encoder: str, task: str, dataset: str) -> Path:
    return Path(out) / encoder / task / f"{dataset}.json"


def predictions_payload(preds) -> dict:
    """JSON form of a task's predictions: per variant, columns sorted by (fold, id)."""
    payload = {}
    for variant, columns in preds.variants.items():
        if "confusions" in columns:
            payload[variant] = {"fold": [str(f) for f in columns["fold"]],
                                "confusions": np.asarray(columns["confusions"]).astype(int).tolist()}
            continue
        order = np.lexsort((np.asarray(columns["id"], dtype=str), np.asarray(columns["fold"], dtype=str)))
        payload[variant] = {k: (v if isinstance(v, dict)  # e.g. ``calibration``: a held-out training slice
                                else np.asarray(v)[order].tolist() if k != "proba"
                                else pack_proba(np.asarray(v)[order]))  # rounded list, or packed when large
                            for k, v in columns.items()}
    return payload


def _split_info(split) -> dict:
    return {"dataset": split.dataset, "name": split.rule.name, "version": split.rule.version, "kind": split.rule.kind,
            "seed": split.rule.seed, "fingerprint": split.fingerprint}


def build_result(*, task, dataset_spec, split, encoder, labels: list[str], predictions: dict, scores: dict,
                 extra: dict, excluded: dict[str, str], provenance: dict, source_split=None, panel_splits=(),
                 encoder_cost: dict | None = None) -> Result:
    """The result of one run; ``encoder_cost`` (``hemabench/embeddings/cost.py``) where it was measured."""
    return Result.from_dict({
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "task_version": task.version,
        "task_metadata": task.metadata(),
        "dataset": dataset_spec.name,
        "dataset_info": {**dataset_spec.info(), "n_records": int(len(split.assignment))},
        "split": {**_split_info(split), "folds": scores["folds"]},
        **({"source_split": _split_info(source_split)} if source_split is not None else {}),
        **({"panel_splits": [_split_info(s) for s in panel_splits]} if panel_splits else {}),
        "encoder": {"name": encoder.spec.name, "weights_sha256": encoder.weights_sha256,
                    "weights_source": encoder.weights_source, "spec": encoder.spec.to_dict()},
        "main_metric": task.main_metric,
        "labels": labels,
        "metrics": scores["metrics"],
        "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"],
        "predictions": predictions,
        "excluded": [{"path": p, "reason": r} for p, r in sorted(excluded.items())],
        "extra": extra,
        "provenance": provenance,
        **({"encoder_cost": encoder_cost} if encoder_cost is not None else {}),
    })
