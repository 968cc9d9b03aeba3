"""Perturbed views: embeddings of some records' images under an acquisition perturbation.

A view is an image source like any other (``open`` a record path, ``digest`` a record
list): it opens the dataset's image and perturbs the decoded pixels (``hemabench.images.perturb``)
before the encoder's preprocessing. Its digest is the clean records' digest plus family,
severity and ``PERTURBATION_VERSION``, so each view is its own content-addressed cache entry
(image, family, severity, version) and a re-run computes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from PIL import Image

from hemabench.embeddings.extract import extract_embeddings, image_source
from hemabench.images.perturb import PERTURBATION_VERSION, check, perturb


class PerturbedImages:
    """The images of ``base`` under one family at one severity (picklable, for DataLoader workers)."""

    def __init__(self, base, family: str, severity: int) -> None:
        check(family, severity)
        self.base, self.family, self.severity = image_source(base), family, int(severity)

    def open(self, rel: str) -> Image.Image:
        with self.base.open(rel) as image:
            return perturb(image, self.family, self.severity, str(rel))

    def digest(self, paths: Iterable[str]) -> str:
        clean = self.base.digest(paths)
        tag = f"perturbed\t{PERTURBATION_VERSION}\t{self.family}\t{self.severity}\t{clean}"
        return hashlib.sha256(tag.encode()).hexdigest()

    def describe(self) -> str:
        return f"{self.base.describe()} [{self.family} s{self.severity}]"


def extract_views(encoder, images, records: pd.DataFrame, views: Iterable[tuple[str, int]], **options):
    """``{(family, severity): (n, D) float32 features}`` of ``records`` (rows in order), and the
    number of images forwarded (0 when every view was cached). ``options`` go to extract_embeddings."""
    out, forwarded = {}, 0
    for family, severity in views:
        embeddings, stats = extract_embeddings(encoder, PerturbedImages(images, family, severity), records,
                                               **options)
        bad = int((~embeddings.valid).sum())
        if bad:  # the clean image decoded (the task only asks for valid rows), so a failure here is the perturbation's
            raise ValueError(f"{bad} image(s) failed under perturbation {family} s{severity}: "
                             f"{next(iter(embeddings.failed.values()))}")
        out[family, int(severity)] = np.asarray(embeddings.features, dtype=np.float32)
        forwarded += stats.images_forwarded
    return out, forwarded
