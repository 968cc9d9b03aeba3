"""A split applied to one dataset's records: parts, per-class counts, fingerprint, manifest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_write_text
from hemabench.splits.rules import SplitRule


def fingerprint(paths: pd.Series, parts: pd.Series) -> str:
    """sha256 over the sorted (path, part) pairs: equal iff every file is in the same part."""
    digest = hashlib.sha256()
    for path, part in sorted(zip(paths, parts)):
        digest.update(f"{path}\t{part}\n".encode())
    return digest.hexdigest()


@dataclass
class MaterialisedSplit:
    dataset: str
    rule: SplitRule
    assignment: pd.DataFrame  # columns path, label, part (+ patient)
    fingerprint: str

    @classmethod
    def build(cls, dataset: str, rule: SplitRule, records: pd.DataFrame) -> MaterialisedSplit:
        missing = int(records[rule.stratify].isna().sum()) if rule.stratify in records else len(records)
        if missing:  # patient-cv5 on own data without bag labels once failed with "argmax of an empty sequence"
            hint = " (own data: a metadata sheet with patient and bag_label columns, see --patient-column and " \
                   "--bag-label-column)" if rule.stratify == "bag_label" else ""
            raise HemabenchError(f"{dataset}: split {rule.id} is stratified by {rule.stratify}, which {missing} of "
                                 f"{len(records)} images lack{hint}")
        columns = list(dict.fromkeys(["path", "label", rule.stratify, "patient"]))
        table = records[columns].copy()
        table["part"] = rule.assign(records).to_numpy()
        return cls(dataset, rule, table, fingerprint(table["path"], table["part"]))

    def counts(self, column: str = "label", patients: bool = False) -> pd.DataFrame:
        """Rows = classes, columns = parts (in rule order), plus a total; images or distinct patients."""
        rows = self.assignment.dropna(subset=["patient"]).drop_duplicates("patient") if patients else self.assignment
        table = pd.crosstab(rows[column], rows["part"])
        table = table.reindex(columns=[p for p in self.rule.parts() if p in table.columns])
        table["total"] = table.sum(axis=1)
        return table

    def patient_overlap(self) -> dict[str, list[str]]:
        """Patients found in more than one part (must be empty)."""
        known = self.assignment.dropna(subset=["patient"])
        parts = known.groupby("patient")["part"].nunique()
        return {p: sorted(known.loc[known["patient"] == p, "part"].unique()) for p in parts[parts > 1].index}

    def summary(self) -> dict:
        return {
            "dataset": self.dataset,
            "split": self.rule.name,
            "version": self.rule.version,
            "seed": self.rule.seed,
            "kind": self.rule.kind,
            "fingerprint": self.fingerprint,
            "parts": {part: int(n) for part, n in self.assignment["part"].value_counts().reindex(self.rule.parts(), fill_value=0).items()},
            "stratify": self.rule.stratify,
            "counts": _nested(self.counts(self.rule.stratify)),
            **({"patient_counts": _nested(self.counts(self.rule.stratify, patients=True))}
               if self.assignment["patient"].notna().any() else {}),
            "rotations": self.rule.rotations(),
            "patients_in_two_parts": len(self.patient_overlap()),
        }

    # -- frozen manifests ------------------------------------------------------------------
    def write_manifest(self, path: str | os.PathLike) -> None:
        payload = {**{k: v for k, v in self.summary().items() if k != "counts"},
                   "assignment": dict(zip(self.assignment["path"], self.assignment["part"]))}
        atomic_write_text(Path(path), json.dumps(payload, indent=1, sort_keys=True))

    def check_manifest(self, path: str | os.PathLike) -> list[str]:
        """Differences against a frozen manifest, as readable lines (empty when identical)."""
        try:
            frozen = json.loads(Path(path).read_text())
            frozen_parts: dict[str, str] = frozen["assignment"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HemabenchError(f"{path}: not a readable split manifest ({exc})") from None
        problems = []
        stored = frozen.get("fingerprint")
        recomputed = fingerprint(pd.Series(list(frozen_parts)), pd.Series(list(frozen_parts.values())))
        if stored != recomputed:
            problems.append(f"manifest fingerprint {str(stored)[:12]} does not match its own assignment ({recomputed[:12]})")
        if recomputed == self.fingerprint:
            return problems
        current = dict(zip(self.assignment["path"], self.assignment["part"]))
        problems.append(f"fingerprint {self.fingerprint[:12]} differs from the manifest's {recomputed[:12]}")
        for p in sorted(set(frozen_parts) - set(current)):
            problems.append(f"missing: {p} (manifest part {frozen_parts[p]})")
        for p in sorted(set(current) - set(frozen_parts)):
            problems.append(f"new: {p} (part {current[p]})")
        for p in sorted(set(current) & set(frozen_parts)):
            if current[p] != frozen_parts[p]:
                problems.append(f"moved: {p} ({frozen_parts[p]} -> {current[p]})")
        return problems


def _nested(table: pd.DataFrame) -> dict:
    return {str(label): {str(k): int(v) for k, v in row.items()} for label, row in table.iterrows()}
