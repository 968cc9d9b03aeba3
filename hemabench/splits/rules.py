"""Split rules: seeded, stratified, patient-grouped, and stable under small data changes.

Each group (a patient where known, else one file) gets a uniform number from a keyed
sha256 of (seed, rule name, group key); its part follows from that number alone. So the
assignment does not depend on file-system order, and adding or removing files never moves
another file between parts. Stratification holds in expectation for every class; for
classes so small that a part would be empty, the group nearest that part's interval is
moved into it (only such tiny classes can see a file move when others are added).

A ``balanced`` rule is for small fixed samples instead: within each class the groups are
ranked by that number and dealt out by rank, so every part gets its exact share of every
class (25 cells per class in 5 folds: 5 per fold); the seed still decides which go where.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hemabench.datasets.records import group_keys

KINDS = ("holdout", "kfold", "official")


def unit_hash(seed: int, rule: str, key: str) -> float:
    """A deterministic number in [0, 1) for one group under one rule and seed."""
    digest = hashlib.sha256(f"{seed}\x1f{rule}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class SplitRule:
    """A named, versioned rule that assigns each record one part name."""

    name: str
    kind: str
    version: int = 1
    seed: int = 0
    fractions: dict[str, float] = field(default_factory=dict)  # holdout: part -> fraction, in order
    k: int = 0  # kfold: number of folds
    roles: tuple[str, ...] = ("train", "test")  # kfold: ('train','val','test') rotates a validation fold
    official: dict[str, str] = field(default_factory=dict)  # official: official_split value -> part
    stratify: str = "label"
    balanced: bool = False  # exact per-class shares by rank (small fixed samples), not in expectation
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"split rule {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "holdout" and abs(sum(self.fractions.values()) - 1) > 1e-9:
            raise ValueError(f"split rule {self.name!r}: fractions must sum to 1")
        if self.kind == "kfold" and self.k < 2:
            raise ValueError(f"split rule {self.name!r}: kfold needs k >= 2")

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    def parts(self) -> list[str]:
        if self.kind == "holdout":
            return list(self.fractions)
        if self.kind == "kfold":
            return [f"fold{i}" for i in range(self.k)]
        return list(dict.fromkeys(self.official.values()))

    def rotations(self) -> list[dict[str, list[str]]]:
        """The train/val/test roles of the parts, once per fold (a single one for a holdout)."""
        if self.kind != "kfold":  # further parts (Raabin's TestB) are extra, never merged into test
            parts = self.parts()
            return [{"train": [parts[0]], "test": [parts[1]]}]
        folds = self.parts()
        out = []
        for i in range(self.k):
            test = [folds[i]]
            val = [folds[(i + 1) % self.k]] if "val" in self.roles else []
            out.append({"train": [f for f in folds if f not in test + val], **({"val": val} if val else {}), "test": test})
        return out

    # -- assignment -----------------------------------------------------------------------
    def _part_of(self, u: float) -> str:
        if self.kind == "kfold":
            return f"fold{min(int(u * self.k), self.k - 1)}"
        edge = 0.0
        for part, fraction in self.fractions.items():
            edge += fraction
            if u < edge:
                return part
        return list(self.fractions)[-1]

    def _interval_centre(self, part: str) -> float:
        if self.kind == "kfold":
            return (int(part[4:]) + 0.5) / self.k
        edge = 0.0
        for name, fraction in self.fractions.items():
            if name == part:
                return edge + fraction / 2
            edge += fraction
        raise KeyError(part)

    def assign(self, records: pd.DataFrame) -> pd.Series:
        """Part name per record (index aligned with ``records``)."""
        if self.kind == "official":
            unknown = sorted(set(records["official_split"].dropna()) - set(self.official) | (
                {"<none>"} if records["official_split"].isna().any() else set()))
            if unknown:
                raise ValueError(f"split rule {self.name!r}: records with official split {unknown} have no part")
            return records["official_split"].map(self.official).rename("part")
        groups = group_keys(records)
        strata = records[self.stratify].astype(str).groupby(groups).agg(lambda s: s.value_counts().sort_index().idxmax())
        table = pd.DataFrame({"stratum": strata})
        table["u"] = [unit_hash(self.seed, self.name, key) for key in table.index]
        position = table["u"]
        if self.balanced:  # rank within the class, centred in [0, 1): exact shares per part
            by_stratum = table.groupby("stratum")["u"]
            position = (by_stratum.rank(method="first") - 0.5) / by_stratum.transform("size")
        table["part"] = [self._part_of(u) for u in position]
        for _, members in table.groupby("stratum"):
            table.loc[members.index, "part"] = self._fill_empty_parts(members)
        return groups.map(table["part"]).rename("part")

    def _fill_empty_parts(self, members: pd.DataFrame) -> pd.Series:
        """Move the nearest groups into empty parts of a small stratum, never emptying a donor."""
        parts = members["part"].copy()
        for target in self.parts():
            counts = parts.value_counts()
            if counts.get(target, 0) or not (counts > 1).any():
                continue
            centre = self._interval_centre(target)
            donors = members.index[parts.map(counts).gt(1).to_numpy()]
            gap = (members.loc[donors, "u"] - centre).abs()
            distance = np.minimum(gap, 1 - gap)  # circular: fold intervals wrap around
            parts[distance.idxmin()] = target
        return parts
