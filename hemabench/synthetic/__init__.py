"""Seeded, procedurally generated demo data ("embedded synthetic data").

Lets the whole benchmark run on a machine with no real data. The datasets mimic the layout
and names of the real ones (Matek bone marrow, Matek/Acevedo blood, AML Hehr bags, BreakHis)
and are built so that shape and texture matter: classes cannot be told apart by mean colour.
Everything derives from the seed; the same seed gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

from hemabench.synthetic.cells import (
    AML_LABELS,
    BLOOD_B_CLASSES,
    BLOOD_CLASSES,
    BM_CLASSES,
    generate_aml,
    generate_cells,
)
from hemabench.synthetic.tissue import BREAKHIS_SUBTYPES, generate_breakhis

GENERATOR_VERSION: str = "1"  # bump when the generated output changes

# SIZES[size][dataset name] -> keyword arguments of that dataset's generator.
SIZES: dict[str, dict] = {
    "small": {
        "synth-bm": {"n_per_class": 60},
        "synth-blood": {"n_per_class": 60},
        "synth-blood-b": {"n_per_class": 40},
        "synth-aml": {"patients_per_label": 8, "cells_per_patient": 40},
        "synth-breakhis": {"patients_per_subtype": 3, "images_per_magnification": 6},
    },
    "medium": {
        "synth-bm": {"n_per_class": 240},
        "synth-blood": {"n_per_class": 240},
        "synth-blood-b": {"n_per_class": 160},
        "synth-aml": {"patients_per_label": 16, "cells_per_patient": 80},
        "synth-breakhis": {"patients_per_subtype": 6, "images_per_magnification": 12},
    },
}

_GENERATORS = {
    "synth-bm": lambda out, seed, kw: generate_cells(out, "bm", seed=seed, **kw),
    "synth-blood": lambda out, seed, kw: generate_cells(out, "blood", seed=seed, **kw),
    "synth-blood-b": lambda out, seed, kw: generate_cells(out, "blood-b", seed=seed, **kw),
    "synth-aml": lambda out, seed, kw: generate_aml(out, seed=seed, **kw),
    "synth-breakhis": lambda out, seed, kw: generate_breakhis(out, seed=seed, **kw),
}


def generate(name: str, out: Path, size: str = "small", seed: int = 0) -> None:
    """Generate dataset ``name`` ('synth-bm', 'synth-blood', 'synth-aml', 'synth-breakhis')
    with the counts of ``SIZES[size]`` into ``out``."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown synthetic dataset {name!r}; known: {', '.join(_GENERATORS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    _GENERATORS[name](Path(out), seed, SIZES[size][name])


__all__ = [
    "AML_LABELS", "BLOOD_B_CLASSES", "BLOOD_CLASSES", "BM_CLASSES", "BREAKHIS_SUBTYPES", "GENERATOR_VERSION", "SIZES",
    "generate", "generate_aml", "generate_breakhis", "generate_cells",
]
