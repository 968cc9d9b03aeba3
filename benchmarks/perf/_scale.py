"""Inputs of protocols_at_scale.py: the real class sizes, synthetic features drawn on demand,
and the registered splits' counts.
Not a benchmark itself (see protocols_at_scale.py)."""

from __future__ import annotations

import math

import numpy as np

# Published class counts (images per class), hard-coded: the benchmark never reads the datasets.
COUNTS = {
    "acevedo": {"BAS": 1218, "EOS": 3117, "EBO": 1551, "MYC": 2895, "LYT": 1214, "MON": 1420, "NGS": 3329,
                "PLA": 2348},
    "matek-blood": {"BAS": 79, "EBO": 78, "EOS": 424, "KSC": 15, "LYA": 11, "LYT": 3937, "MMZ": 15, "MOB": 26,
                    "MON": 1789, "MYB": 42, "MYO": 3268, "NGB": 109, "NGS": 8484, "PMB": 18, "PMO": 70},
    "matek-bm": {"ABE": 8, "ART": 19630, "BAS": 441, "BLA": 11973, "EBO": 27395, "EOS": 5883, "FGC": 47,
                 "HAC": 409, "KSC": 42, "LYI": 65, "LYT": 26242, "MMZ": 3055, "MON": 4040, "MYB": 6557,
                 "NGB": 9968, "NGS": 29424, "NIF": 3538, "OTH": 294, "PEB": 2740, "PLM": 7629, "PMO": 11994},
}
# aml-hehr: 189 patients (81,214 cells) in 5 bag classes; ~430 cells per patient
AML = {"patients": 189, "cells": 430, "classes": 5, "folds": 5, "seeds": 3, "heads": 2}
PROBE_FOLDS = {"acevedo": (5, 0.8), "matek-blood": (1, 0.8), "matek-bm": (1, 0.8)}  # (folds, train fraction)
TRANSFER_TARGETS = ("matek-blood", "acevedo")  # bm-to-blood: source Matek BM
SOURCE_PER_CLASS, PROBE_MAX_ITER = 250, 1000
MIL_EPOCHS, MIL_MAX_EPOCHS = 60, 150


class Synthetic:
    """Features for any rows of a dataset, drawn on demand (never the whole set): each class a
    Gaussian in a LATENT-d subspace (means ``separation`` noise-sd apart), embedded in D
    dimensions plus small isotropic noise, so that (as with real embeddings) most variance
    lies in few directions and the classes are separable but overlap (balanced accuracy of the
    reference SVM around 80-90% at large n on 8 classes)."""

    LATENT, NOISE = 64, 0.2

    def __init__(self, counts: dict[str, int], dim: int, seed: int, separation: float = 4.0):
        self.classes = sorted(counts)
        rng = np.random.default_rng([seed, dim])
        latent = min(self.LATENT, dim)
        self.means = rng.standard_normal((len(self.classes), latent)) * separation / math.sqrt(2 * latent)
        self.basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0].T  # (latent, D), orthonormal rows
        self.dim, self.rng = dim, rng

    def draw(self, per_class: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i, c in enumerate(self.classes):
            k = per_class.get(c, 0)
            if k:
                z = self.means[i] + self.rng.standard_normal((k, len(self.means[i])))
                xs.append(z @ self.basis + self.NOISE * self.rng.standard_normal((k, self.dim)))
                ys.append(np.full(k, c))
        return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def split_counts(counts: dict[str, int], train: float) -> tuple[dict, dict]:
    """Stratified holdout per class: (train counts, test counts)."""
    tr = {c: int(round(n * train)) for c, n in counts.items()}
    return tr, {c: counts[c] - tr[c] for c in counts}


def sample_counts(counts: dict[str, int], total: int) -> dict[str, int]:
    """A class-proportional sample of about ``total`` rows (at least one per class that has any)."""
    n = sum(counts.values())
    return {c: max(1, round(k * total / n)) if k else 0 for c, k in counts.items()}


def support_counts(train: dict[str, int], n: int) -> dict[str, int]:
    return {c: min(n, k) for c, k in train.items()}
