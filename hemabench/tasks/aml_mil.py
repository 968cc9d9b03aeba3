"""AML genetic subtype from a blood smear: attention MIL over each patient's cell embeddings.

Protocol (protocols.md section 5, docs/protocols-aml-mil.md): one bag per patient (all its
decodable cells); the split's five patient folds rotate as 3 train / 1 validation / 1 test,
and every rotation is trained with three seeds, so each head gives 15 runs. Predictions are
per patient and run, with class probabilities, so every metric (and its spread over runs)
is recomputed from the result file; the main head's top-attention cells are kept per test
patient so the leaderboard can show which cells decided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from hemabench.compute.backends import job_count
from hemabench.compute.device import resolve_device
from hemabench.datasets.aml_hehr import BLAST_COLUMNS
from hemabench.errors import HemabenchError
from hemabench.protocols.mil import HEAD_NAMES, TrainConfig, cpu_threads, make_head, predict_bags, train_mil
from hemabench.protocols.progress import epoch_callback, progress_bar
from hemabench.results.calibration import slice_payload
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, join_columns
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import boolean, choice_list, number, optional, positive_int, str_list

NEEDS = Needs(frozenset({"patients", "bag-labels"}), split="patient-cv5", validation=True)
ROLES = ("train", "val", "test")
VALIDATION_SLICE = "validation patients of each run (the early-stopping fold; never fitted on, never tested)"
CITATION = ("Hehr et al., PLOS Digital Health 2023; Kazeminia et al., 2023 (SSL for MIL); "
            "Koch et al., DinoBloom, MICCAI 2024")


@dataclass
class Bags:
    """One row per patient; ``rows`` are its cells' row numbers in the records."""

    patients: np.ndarray
    labels: np.ndarray
    parts: np.ndarray
    rows: list[np.ndarray]

    def subset(self, keep: np.ndarray) -> Bags:
        return Bags(self.patients[keep], self.labels[keep], self.parts[keep],
                    [r for r, k in zip(self.rows, keep) if k])

    def summary(self) -> dict:
        sizes = np.array([len(r) for r in self.rows])
        return {"patients": len(sizes), "cells": int(sizes.sum()), "min_cells": int(sizes.min()),
                "median_cells": float(np.median(sizes)), "max_cells": int(sizes.max()),
                "per_label": {str(k): int(v) for k, v in zip(*np.unique(self.labels, return_counts=True))}}


def make_bags(data: TaskInput, label_column: str = "label") -> Bags:
    """Bags from the valid cells; a patient with two labels or two split parts is a data error."""
    valid = np.flatnonzero(data.valid)
    patient = data.records["patient"].to_numpy()[valid]
    if pd.isna(patient).any():
        raise HemabenchError("aml-mil needs a patient id for every cell (layout <label>/<patient>/<image>)")
    frame = pd.DataFrame({"patient": patient.astype(str), "row": valid,
                          "label": data.records[label_column].to_numpy()[valid].astype(str),
                          "part": np.asarray(data.parts, dtype=object)[valid].astype(str)})
    groups = frame.groupby("patient", sort=True)
    for column, what in (("label", "bag labels"), ("part", "split parts")):
        mixed = groups[column].nunique()
        if (mixed > 1).any():
            raise HemabenchError(f"patients {list(mixed.index[mixed > 1][:5])} have cells with several {what}: "
                                 "a patient must be one bag")
    first = groups.first()
    return Bags(first.index.to_numpy(), first["label"].to_numpy(), first["part"].to_numpy(),
                [g["row"].to_numpy() for _, g in groups])


def rotation_roles(bags: Bags, rotation: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Bag indices per role; raises if any patient would be in two of train / val / test."""
    roles = {role: np.flatnonzero(np.isin(bags.parts, rotation.get(role, []))) for role in ROLES}
    for i, first in enumerate(ROLES):
        for second in ROLES[i + 1:]:
            shared = set(bags.patients[roles[first]]) & set(bags.patients[roles[second]])
            if shared:
                raise HemabenchError(f"patients {sorted(shared)[:5]} are in both {first} and {second}: "
                                     "the split leaks patients")
    return roles


def blast_filter(bags: Bags, patients: pd.DataFrame | None, threshold: float,
                 keep_labels: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """Keep controls and AML patients whose peripheral-blood blast-like percentage
    (myeloblast + promyelocyte + myelocyte) reaches ``threshold``; AML patients without
    counts cannot be shown below it and are kept, but listed."""
    need = ", ".join(["patient_id", "bag_label", *BLAST_COLUMNS])
    if patients is None:
        raise HemabenchError(f"the blast filter needs the patient metadata sheet metadata.csv ({need}) beside "
                             "the bags; place it in the dataset root, or run task aml-mil without the filter")
    missing = [c for c in BLAST_COLUMNS if c not in patients.columns]
    if missing:
        raise HemabenchError(f"the patient metadata sheet lacks columns {missing}; the blast filter needs {need}")
    table = patients[list(BLAST_COLUMNS)].apply(pd.to_numeric, errors="coerce").groupby(level=0).first()
    percent = table.reindex(bags.patients).sum(axis=1, min_count=1).to_numpy(dtype=float)
    aml = ~np.isin(bags.labels, keep_labels)
    below = aml & (percent < threshold)
    unknown = aml & np.isnan(percent)
    report = {"threshold": threshold, "columns": list(BLAST_COLUMNS), "kept_labels": list(keep_labels),
              "excluded": [{"patient": str(bags.patients[i]), "label": str(bags.labels[i]),
                            "blast_percent": round(float(percent[i]), 4)} for i in np.flatnonzero(below)],
              "kept_without_counts": [str(p) for p in bags.patients[unknown]]}
    return ~below, report


def top_cells(attention: torch.Tensor, predicted: int, rows: np.ndarray, paths: np.ndarray, k: int) -> list[dict]:
    """The k cells with the highest attention for the predicted class (the only map of a
    single-attention head), as record paths and scores."""
    row = attention[predicted] if len(attention) > 1 else attention[0]
    scores, order = torch.topk(row.float().cpu(), min(k, len(rows)))
    return [{"path": str(paths[rows[i]]), "score": round(float(s), 6)} for s, i in zip(scores, order.tolist())]


CPU_THREADS = 1  # per MIL fit on CPU: tiny models, where more threads only add overhead on shared cores
RULES = {"heads": choice_list(HEAD_NAMES), "abmil_dropout": number(0, 1), "lr": number(0, low_open=True, high=None),
         "momentum": number(0, 1), "nesterov": boolean(), "blast_filter": optional(number(0, 100, high_open=False)).said("null or a percentage in [0, 100]"),
         "keep_labels": str_list(),
         **{key: positive_int() for key in ("attention_hidden", "scorer_hidden", "abmil_hidden", "max_epochs", "patience",
                                            "bags_per_step", "seeds", "top_k")}}


@dataclass(frozen=True)
class AmlMil(Task):
    param_rules = RULES

    def check_params(self) -> str | None:
        p, main_head = self.params, self.main_metric.split("/")[0]
        if problem := super().check_params():
            return problem
        if p["heads"][0] != main_head:
            return f"heads must start with the main head {main_head!r}, got {p['heads']!r}"
        if p["nesterov"] and p["momentum"] <= 0:
            return "nesterov needs a momentum above 0 (set nesterov: false for plain SGD)"
        return None

    def train_config(self) -> TrainConfig:
        p = self.params
        return TrainConfig(lr=p["lr"], momentum=p["momentum"], nesterov=p["nesterov"], max_epochs=p["max_epochs"],
                           patience=p["patience"], bags_per_step=p["bags_per_step"])

    def evaluate(self, data: TaskInput) -> Predictions:
        p = self.params
        bags, extra = make_bags(data, self.label_column), {}
        if p.get("blast_filter") is not None:
            keep, extra["blast_filter"] = blast_filter(bags, data.patients, p["blast_filter"], tuple(p["keep_labels"]))
            bags = bags.subset(keep)
        labels = sorted(set(data.records.loc[data.valid, self.label_column].astype(str)))
        y = np.array([labels.index(label) for label in bags.labels], dtype=np.int64)
        device = resolve_device(data.device)
        features = np.asarray(data.features, dtype=np.float32)
        tensors = [torch.from_numpy(features[rows]).to(device) for rows in bags.rows]
        paths = data.records["path"].to_numpy()
        extra.update(bags=bags.summary(), runs=[], attention={}, cpu_threads=CPU_THREADS,
                     attention_runs="seed 0 (s0) of each patient's test rotation; main head; predicted class")
        columns = {head: {"id": [], "fold": [], "true": [], "pred": [], "proba": []} for head in p["heads"]}
        slices = {head: {"id": [], "fold": [], "true": [], "proba": []} for head in p["heads"]}
        plan = []  # (run, head, seed, roles) in the order results are stored
        for rotation in data.rotations:
            roles = rotation_roles(bags, rotation)
            if any(len(roles[r]) == 0 for r in ROLES):
                raise HemabenchError(f"rotation {rotation} leaves a role without patients: aml-mil needs "
                                     "train, val and test folds (split patient-cv5)")
            plan += [(f"{rotation['test'][0]}/s{s}", head, s, roles) for s in range(p["seeds"]) for head in p["heads"]]
        runs = progress_bar(len(plan), f"{self.name} {data.dataset}", data.progress, unit="run")
        for (run, head, s, roles), (proba, attention, log, val_proba) in zip(
                plan, self.fit_all(plan, tensors, y, data.seed, len(labels), device, data.progress)):
            runs.update(1)
            test, pred = roles["test"], proba.argmax(axis=1)
            for key, value in (("id", bags.patients[test]), ("fold", np.full(len(test), run, dtype=object)),
                               ("true", bags.labels[test]), ("pred", np.asarray(labels, dtype=object)[pred]),
                               ("proba", proba)):
                columns[head][key].append(value)
            val = roles["val"]  # the temperature slice: this run's validation patients, never its test ones
            for key, value in (("id", bags.patients[val]), ("fold", np.full(len(val), run, dtype=object)),
                               ("true", bags.labels[val]), ("proba", val_proba)):
                slices[head][key].append(value)
            extra["runs"].append({"run": run, "head": head, "seed": data.seed + s, **log.summary(),
                                  **{f"n_{r}": int(len(roles[r])) for r in ROLES}})
            if head == p["heads"][0] and s == 0:
                for j, i in enumerate(test):
                    extra["attention"][str(bags.patients[i])] = {
                        "pred": labels[pred[j]], "true": str(bags.labels[i]), "run": run,
                        "cells": top_cells(attention[j], pred[j], bags.rows[i], paths, p["top_k"])}
        runs.close()
        variants = {head: join_columns(cols) for head, cols in columns.items()}
        for head, cols in slices.items():
            variants[head]["calibration"] = slice_payload(*(np.concatenate(cols[k]) for k in ("id", "fold", "true", "proba")),
                                                          slice=VALIDATION_SLICE)
        return Predictions(variants, extra)

    def fit_all(self, plan, tensors, y, seed, n_classes, device, progress):
        """Every run of ``plan``, in order. On CPU each run is single-threaded (``CPU_THREADS``) and
        seeded by its own arguments, so the runs go to joblib's worker processes and give the
        same numbers as one after another (tests/test_aml_mil.py); on a GPU they run in turn,
        each with an epoch bar."""
        if device.type == "cpu":
            return Parallel(n_jobs=job_count(), return_as="generator")(
                delayed(self.fit_predict)(head, run, tensors, y, roles, seed + s, n_classes, device)
                for run, head, s, roles in plan)
        return (self._fit_with_bar(head, run, tensors, y, roles, seed + s, n_classes, device, progress)
                for run, head, s, roles in plan)

    def _fit_with_bar(self, head, run, tensors, y, roles, seed, n_classes, device, progress):
        with progress_bar(self.params["max_epochs"], f"  {head} {run}", progress, unit="epoch", leave=False) as epochs:
            return self.fit_predict(head, run, tensors, y, roles, seed, n_classes, device, epoch_callback(epochs))

    def fit_predict(self, head, run, tensors, y, roles, seed, n_classes, device, on_epoch=None):
        """One run of one head: seeded init and sampling, training, then test probabilities
        (float64, n x C), attention maps, the training log and the validation bags' probabilities
        (the temperature slice). ``on_epoch`` is train_mil's per-epoch hook (a progress bar)."""
        config = self.train_config()
        forked = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked), cpu_threads(CPU_THREADS, device):
            torch.manual_seed(seed)
            model = make_head(head, tensors[0].shape[1], n_classes, self.params).to(device)
            model, log = train_mil(model, tensors, y, roles["train"], roles["val"], config, seed, on_epoch)
            logits, attention = predict_bags(model, [tensors[i] for i in roles["test"]], config.eval_batch)
            val_logits, _ = predict_bags(model, [tensors[i] for i in roles["val"]], config.eval_batch)
        if not torch.isfinite(logits).all():
            raise HemabenchError(f"aml-mil {head} run {run}: training diverged (non-finite logits); "
                                 "embeddings on a large scale may need a smaller lr")
        return (torch.softmax(logits.double(), dim=1).cpu().numpy(), attention, log,
                torch.softmax(val_logits.double(), dim=1).cpu().numpy())

PARAMS = {
    "heads": list(HEAD_NAMES),  # the first is the main head (and the one whose attention is stored)
    "attention_hidden": 128, "scorer_hidden": 64, "abmil_hidden": 128, "abmil_dropout": 0.25,
    "lr": 1e-3, "momentum": 0.9, "nesterov": True, "max_epochs": 150, "patience": 20,
    "bags_per_step": 1, "seeds": 3, "top_k": 8, "blast_filter": None, "keep_labels": ["control"],
}
METHOD = {
    "optimizer": "SGD (lr, momentum, nesterov as in params)",
    "scheduler": "cosine annealing stepped per epoch, T_max = max_epochs",
    "early_stopping": "mean cross-entropy over validation bags; best epoch restored",
    "sampling": "class-balanced, with replacement, as many draws per epoch as training bags",
    "intervals": "ci95: patients redrawn within each test fold (a rotation's seeds share the redraw)",
    "calibration": "temperature per run, fitted on that run's validation patients (stored under calibration)",
}
DESCRIPTION = ("Patient-level AML subtype (4 genetic subtypes + control) by attention MIL on cell embeddings: "
               "class-wise multi-head attention (AMiL, main) and gated ABMIL; 5 rotations x 3 seeds")

FAMILY = "AML subtype (MIL)"
# version 2: results also hold calibration metrics (ECE, Brier, NLL, AURC) of the stored probabilities
# version 3: each run's validation patients are stored as its temperature slice (temperature-scaled calibration)
TASKS.add("aml-mil", AmlMil(
    name="aml-mil", version=3, needs=NEEDS, label_column="bag_label", family=FAMILY,
    protocol="docs/protocols-aml-mil.md#aml-mil", description=DESCRIPTION,
    main_metric="amil/weighted_f1", variants=tuple(HEAD_NAMES), params=PARAMS, method=METHOD, citation=CITATION,
))
TASKS.add("aml-mil-blast20", AmlMil(
    name="aml-mil-blast20", version=3, needs=NEEDS, label_column="bag_label", family=FAMILY,
    protocol="docs/protocols-aml-mil.md#aml-mil-blast20", method=METHOD,
    description=DESCRIPTION + "; AML patients with < 20% blood myeloblasts + promyelocytes + myelocytes excluded",
    main_metric="amil/weighted_f1", variants=tuple(HEAD_NAMES), params={**PARAMS, "blast_filter": 20},
    citation=CITATION,
))
