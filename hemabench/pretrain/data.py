"""What the pretraining loop iterates over: views of single images, or MPCS magnification pairs.

All randomness (augmentations, the partner image of a pair) comes from the process's torch,
NumPy and Python generators, which the trainer checkpoints, or from DataLoader workers that
torch seeds from the loader's own generator; either way a resumed run draws the same numbers.

MPCS pairs (Chhipa et al., WACV 2023). The unit of a pair is the patient: BreakHis images of
one patient at different magnifications are separate fields of view, not registered crops of
one another, so any two images of the same patient at two different magnifications form a
positive pair. (The authors' code pairs images that share a patient and a sequence number,
which is no registration either and drops images whose number is missing elsewhere.) Each
image is an anchor once per epoch; its partner is a random image of the same patient at
the partner magnification, chosen by the strategy:

- ``fixed``: anchors are the 200X images, partners 400X (the paper's fixed pair, 0 degrees of freedom);
- ``ordered``: the partner magnification is looked up from the anchor's: 40->100, 100->200,
  200->400 and 400->200 (the authors' table; the loss is symmetric, so 400->200 is their 200/400 pair);
- ``random``: the partner magnification is drawn uniformly among the patient's other
  magnifications (2 degrees of freedom: the anchor's magnification is random too).

Both images of a pair go through the same random augmentation (the paper's "uniform
stochastic transformation"). Anchors without any usable partner are left out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from hemabench.errors import HemabenchError
from hemabench.images.check import to_rgb

PAIR_STRATEGIES = ("fixed", "ordered", "random")
FIXED_PAIR = (200, 400)
ORDERED_PARTNER = {40: 100, 100: 200, 200: 400, 400: 200}


def load_image(root: Path, rel: str) -> Image.Image:
    with Image.open(root / rel) as image:
        return to_rgb(image)


def select_records(records: pd.DataFrame, max_images: int | None, seed: int) -> pd.DataFrame:
    """All records, or a seeded random subset of ``max_images`` of them (in their original order)."""
    if max_images is None or max_images >= len(records):
        return records.reset_index(drop=True)
    if max_images < 1:
        raise HemabenchError(f"--max-images must be at least 1, got {max_images}")
    return records.sample(n=max_images, random_state=seed).sort_index().reset_index(drop=True)


def label_codes(records: pd.DataFrame) -> np.ndarray:
    """Labels as integers 0..K-1 in sorted label order (only SupCon uses them)."""
    labels = records["label"].astype(str)
    return np.searchsorted(np.array(sorted(labels.unique())), labels.to_numpy())


class ImageViews(Dataset):
    """Item i: (the views of image i, its label code)."""

    def __init__(self, root: Path, records: pd.DataFrame, transform: Callable) -> None:
        self.root, self.paths, self.labels = Path(root), list(records["path"]), label_codes(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(load_image(self.root, self.paths[i])), int(self.labels[i])


@contextmanager
def shared_randomness(seed: int) -> Iterator[None]:
    """Seed torch, NumPy and Python ``random`` with ``seed``; restore all three afterwards."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def sample_keys(records: pd.DataFrame) -> list[tuple[str, int]]:
    """(patient, magnification) of every record, or an error naming what the dataset lacks."""
    missing = [c for c in ("patient", "magnification") if c not in records or records[c].isna().any()]
    if missing:
        raise HemabenchError(f"MPCS needs every record's patient and magnification (BreakHis layout); this "
                             f"dataset lacks {' and '.join(missing)}: use breakhis or synth-breakhis")
    return list(zip(records["patient"].astype(str), records["magnification"].astype(int)))


def pair_plan(records: pd.DataFrame, strategy: str) -> list[tuple[int, tuple[int, ...]]]:
    """For each usable anchor (row position): the magnifications its partner may have."""
    if strategy not in PAIR_STRATEGIES:
        raise HemabenchError(f"unknown MPCS pair strategy {strategy!r}; one of {', '.join(PAIR_STRATEGIES)}")
    keys = sample_keys(records)
    available: dict[str, set[int]] = {}
    for patient, mag in keys:
        available.setdefault(patient, set()).add(mag)
    plan = []
    for i, (patient, mag) in enumerate(keys):
        if strategy == "fixed":
            partners = (FIXED_PAIR[1],) if mag == FIXED_PAIR[0] else ()
        elif strategy == "ordered":
            partners = (ORDERED_PARTNER.get(mag),)
        else:
            partners = tuple(sorted(m for m in available[patient] if m != mag))
        partners = tuple(m for m in partners if m in available[patient])
        if partners:
            plan.append((i, partners))
    return plan


class MagnificationPairs(Dataset):
    """Item i: ([view of anchor i, view of its partner], label code), for MPCS."""

    def __init__(self, root: Path, records: pd.DataFrame, view_transform: Callable, strategy: str) -> None:
        self.root, self.paths, self.labels = Path(root), list(records["path"]), label_codes(records)
        self.transform, self.strategy = view_transform, strategy
        self.plan = pair_plan(records, strategy)
        if not self.plan:
            raise HemabenchError(f"no MPCS pairs with the {strategy!r} strategy: no patient has images at the "
                                 f"needed magnifications (fixed needs 200X and 400X)")
        self.keys = sample_keys(records)
        self.images: dict[tuple[str, int], list[int]] = {}  # (patient, magnification) -> row positions
        for i, key in enumerate(self.keys):
            self.images.setdefault(key, []).append(i)

    def __len__(self) -> int:
        return len(self.plan)

    def partner(self, i: int) -> int:
        """A random image of the anchor's patient at one of its partner magnifications."""
        anchor, mags = self.plan[i]
        mag = mags[int(torch.randint(len(mags), ()))]
        candidates = self.images[(self.keys[anchor][0], mag)]
        return candidates[int(torch.randint(len(candidates), ()))]

    def __getitem__(self, i: int):
        anchor, other = self.plan[i][0], self.partner(i)
        seed = int(torch.randint(2**62, ()))
        views = []
        for index in (anchor, other):
            with shared_randomness(seed):
                views.append(self.transform(load_image(self.root, self.paths[index])))
        return views, int(self.labels[anchor])
