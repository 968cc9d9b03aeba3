"""Synthetic single white-cell images (bone-marrow and blood domains) and AML patient bags.

Classes are defined by morphology (cell size, nucleus shape / lobes / chromatin texture,
granules), not by colour: cytoplasm tints overlap between classes and every image gets a
strong random stain jitter, so a mean-colour classifier does clearly worse than one that
looks at shape and texture. The two domains share the morphology rules but differ in
palette, magnification, background (red cells vs neighbouring marrow cells), blur and noise.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from hemabench.synthetic import shapes as sh

# Full-strength transmitted colours of the dyes / structures (Giemsa-like).
DYES = {
    "chromatin": (0.40, 0.20, 0.55), "baso": (0.60, 0.70, 0.92), "sky": (0.70, 0.82, 0.96),
    "lilac": (0.84, 0.75, 0.88), "pink": (0.93, 0.79, 0.83), "grey": (0.74, 0.76, 0.87),
    "poly": (0.72, 0.70, 0.86), "salmon": (0.96, 0.72, 0.64), "azur": (0.55, 0.22, 0.50),
    "eos": (0.97, 0.55, 0.33), "eos_abn": (0.42, 0.22, 0.38), "basgran": (0.25, 0.13, 0.42),
    "neut": (0.82, 0.66, 0.82), "auer": (0.62, 0.18, 0.40), "rbc": (0.93, 0.58, 0.56),
    "platelet": (0.50, 0.35, 0.66),
}
OD = {k: sh.od(v) for k, v in DYES.items()}

BM_CLASSES = {
    "BLA": "blast", "PMO": "promyelocyte", "MYB": "myelocyte", "MMZ": "metamyelocyte",
    "NGB": "band neutrophil", "NGS": "segmented neutrophil", "EOS": "eosinophil", "BAS": "basophil",
    "LYT": "lymphocyte", "MON": "monocyte", "EBO": "erythroblast",
}
BLOOD_CLASSES = {k: BM_CLASSES[k] for k in ("BAS", "EOS", "LYT", "MON", "NGS", "NGB", "MYB", "PMO")}
BLOOD_B_CLASSES = {k: BM_CLASSES[k] for k in ("BAS", "EOS", "LYT", "MON", "NGS", "NGB")}
AML_LABELS = {
    "control": "normal blood (healthy donor)", "PML_RARA": "APL with PML::RARA",
    "NPM1": "AML with mutated NPM1", "CBFB_MYH11": "AML with CBFB::MYH11",
    "RUNX1_RUNX1T1": "AML with RUNX1::RUNX1T1",
}
CYTO_TINTS = ("baso", "sky", "lilac", "pink", "grey", "poly", "salmon")

# Morphology per cell type. size: cell radius relative to the domain's base radius;
# ratio: nucleus radius / cell radius; chrom: (density, texture scale rel. to cell, amplitude);
# gran: (dye, count range, granule size rel. to cell, covers nucleus, strength).
_BASE = dict(size=1.0, nuc="round", ratio=0.6, offset=0.15, chrom=(1.1, 0.05, 0.25), nucleoli=(0, 0),
             cyto="pink", cyto_d=0.8, gran=None, rods=(0, 0), vacuoles=(0, 0), rim=0.03)
SPECS = {
    "BLA": dict(size=1.0, ratio=0.80, offset=0.08, chrom=(0.80, 0.03, 0.12), nucleoli=(1, 3), cyto="baso"),
    "PMO": dict(size=1.18, nuc="oval", ratio=0.58, offset=0.28, chrom=(0.9, 0.04, 0.18), nucleoli=(0, 2),
                cyto="baso", cyto_d=0.7, gran=("azur", (40, 80), 0.05, False, 0.9)),
    "MYB": dict(size=1.02, nuc="oval", ratio=0.52, offset=0.3, chrom=(1.1, 0.05, 0.3), cyto="lilac",
                gran=("neut", (30, 60), 0.035, False, 0.55)),
    "MMZ": dict(size=0.95, nuc="kidney", ratio=0.56, offset=0.22, chrom=(1.2, 0.055, 0.35), cyto="pink",
                gran=("neut", (25, 50), 0.03, False, 0.5)),
    "NGB": dict(size=0.9, nuc="band", chrom=(1.35, 0.05, 0.3), cyto="pink",
                gran=("neut", (20, 40), 0.03, False, 0.4)),
    "NGS": dict(size=0.9, nuc="segmented", chrom=(1.4, 0.05, 0.3), cyto="pink",
                gran=("neut", (20, 40), 0.03, False, 0.4)),
    "EOS": dict(size=0.97, nuc="bilobed", chrom=(1.25, 0.05, 0.3), cyto="pink",
                gran=("eos", (70, 120), 0.055, False, 0.9)),
    "BAS": dict(size=0.85, nuc="irregular", ratio=0.5, offset=0.1, chrom=(1.0, 0.05, 0.3), cyto="lilac",
                gran=("basgran", (25, 50), 0.07, True, 1.3)),
    "LYT": dict(size=0.62, ratio=0.86, offset=0.1, chrom=(1.5, 0.07, 0.45), cyto="sky", cyto_d=0.9),
    "MON": dict(size=1.22, nuc="folded", ratio=0.62, offset=0.15, chrom=(0.95, 0.045, 0.22), cyto="grey",
                vacuoles=(2, 8), rim=0.08),
    "EBO": dict(size=0.58, ratio=0.6, offset=0.05, chrom=(2.0, 0.05, 0.12), cyto="poly", cyto_d=0.9),
    # Abnormal cells that only occur in the AML bags.
    "BLA_CUP": dict(size=1.0, nuc="cup", ratio=0.78, offset=0.08, chrom=(0.8, 0.03, 0.12), nucleoli=(1, 2),
                    cyto="baso"),
    "PMO_AUER": dict(size=1.2, nuc="kidney", ratio=0.55, offset=0.2, chrom=(0.9, 0.04, 0.18), cyto="baso",
                     cyto_d=0.7, gran=("azur", (90, 150), 0.05, True, 1.0), rods=(2, 5)),
    "MONOBLAST": dict(size=1.28, nuc="folded", ratio=0.72, offset=0.1, chrom=(0.75, 0.03, 0.12),
                      nucleoli=(1, 2), cyto="grey", vacuoles=(0, 3), rim=0.07),
    "EOS_ABN": dict(size=1.0, nuc="bilobed", chrom=(1.2, 0.05, 0.3), cyto="pink",
                    gran=("eos_abn", (60, 110), 0.06, False, 1.0)),
    "BLA_AUER": dict(size=1.05, ratio=0.72, offset=0.15, chrom=(0.8, 0.03, 0.12), nucleoli=(1, 2),
                     cyto="salmon", cyto_d=1.0, rods=(1, 1)),
}
SPECS = {k: {**_BASE, **v} for k, v in SPECS.items()}

DOMAINS = {
    "bm": dict(size=80, radius=21.0, background=(0.92, 0.87, 0.90), gain=(1.0, 1.08, 0.9), hue=0.12,
               blur=0.35, noise=0.025, rbc=(0, 4), neighbours=(1, 3), plasma=0.10, domain_id=1),
    "blood": dict(size=64, radius=13.5, background=(0.96, 0.93, 0.88), gain=(0.95, 1.0, 1.08), hue=-0.12,
                  blur=0.75, noise=0.012, rbc=(3, 9), neighbours=(0, 0), plasma=0.02, domain_id=2),
    # A second blood lab: another stain (bluer, hue turned the other way), another scanner
    # (higher magnification, softer focus, more sensor noise). Morphology rules are shared.
    "blood-b": dict(size=72, radius=16.0, background=(0.90, 0.93, 0.98), gain=(1.12, 0.88, 1.05), hue=0.35,
                    blur=1.1, noise=0.03, rbc=(2, 6), neighbours=(0, 0), plasma=0.06, domain_id=3),
}


def _nucleus(y, x, kind, cy, cx, rc, rn, ang, rng) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus mask for a nucleus type plus an extra 'crease' density map (folds)."""
    crease = np.zeros_like(y)
    rot = (np.sin(ang), np.cos(ang))
    if kind in ("round", "oval", "irregular", "kidney", "folded", "cup"):
        aspect = rng.uniform(1.15, 1.4) if kind == "oval" else rng.uniform(0.92, 1.12)
        rough = {"irregular": 0.16, "folded": 0.09}.get(kind, 0.04)
        orders = (3, 4, 5, 6, 7, 8) if kind == "folded" else (2, 3, 4, 5)
        m = sh.blob(y, x, cy, cx, rn, aspect, ang, sh.harmonics(rng, rough, orders))
        dent = {"kidney": (1.0, 0.55, 1.0), "folded": (0.8, 0.62, 1.0), "cup": (0.42, 0.36, 0.9)}.get(kind)
        if dent:
            dist, r_dent, depth = dent[0] * rn, dent[1] * rn * rng.uniform(0.85, 1.15), dent[2]
            m = m * (1 - depth * sh.blob(y, x, cy + dist * rot[0], cx + dist * rot[1], r_dent, soft=0.8))
        if kind == "folded":
            a2 = ang + np.pi / 2 + rng.normal(0, 0.3)
            p = [(cy - 0.6 * rn * np.sin(a2), cx - 0.6 * rn * np.cos(a2)), (cy, cx),
                 (cy + 0.6 * rn * np.sin(a2 + 0.5), cx + 0.6 * rn * np.cos(a2 + 0.5))]
            crease = 0.4 * sh.path_mask(y, x, p, max(0.6, 0.05 * rc), soft=0.6) * m
        return m, crease
    if kind == "band":
        ra = rc * rng.uniform(0.42, 0.58)
        sweep = rng.uniform(2.6, 4.4)
        pts = sh.arc_points(cy, cx, ra, ang - sweep / 2, sweep, 14)
        pts -= pts.mean(0) - (cy, cx)
        t = rc * rng.uniform(0.15, 0.21) * (1 + 0.15 * np.sin(np.linspace(0, np.pi, 14)))
        return sh.path_mask(y, x, pts, t), crease
    n = 2 if kind == "bilobed" else int(rng.choice([3, 4, 4, 5]))
    if n == 2:
        sep = rc * rng.uniform(0.28, 0.38)
        centres = np.array([(cy + s * sep * rot[0], cx + s * sep * rot[1]) for s in (-1, 1)])
        r_lobe = rc * rng.uniform(0.25, 0.31)
    else:
        sweep = rng.uniform(3.2, 4.8)
        centres = sh.arc_points(cy, cx, rc * rng.uniform(0.4, 0.52), ang - sweep / 2, sweep, n)
        centres += rng.normal(0, 0.06 * rc, centres.shape)
        centres -= centres.mean(0) - (cy, cx)
        r_lobe = rc * rng.uniform(0.2, 0.25)
    lobes = [sh.blob(y, x, py, px, r_lobe * rng.uniform(0.85, 1.15), rng.uniform(1.0, 1.3),
                     rng.uniform(0, np.pi), sh.harmonics(rng, 0.05)) for py, px in centres]
    strand = sh.path_mask(y, x, centres, max(0.55, 0.045 * rc), soft=0.5)
    return np.maximum(np.max(lobes, axis=0), strand), crease


def _rbc_layer(y, x, rng, n, r) -> np.ndarray:
    """Red-cell discs with central pallor."""
    layer = np.zeros_like(y)
    h, w = y.shape
    for _ in range(n):
        cy, cx, rr = rng.uniform(-4, h + 4), rng.uniform(-4, w + 4), r * rng.uniform(0.85, 1.15)
        disc = sh.blob(y, x, cy, cx, rr, rng.uniform(1.0, 1.15), rng.uniform(0, np.pi), soft=0.8)
        layer = np.maximum(layer, disc * (0.6 - 0.32 * sh.blob(y, x, cy, cx, 0.45 * rr, soft=1.5)))
    return layer


def _background(y, x, rng, dom, r) -> np.ndarray:
    """Optical density behind the cell: plasma haze, red cells, platelets, neighbour cells."""
    h, w = y.shape
    bg = dom["plasma"] * (1 + 0.5 * sh.smooth_noise(rng, y.shape, 6.0))[..., None] * OD["lilac"]
    bg = bg + _rbc_layer(y, x, rng, int(rng.integers(*dom["rbc"], endpoint=True)), 0.55 * r)[..., None] * OD["rbc"]
    if dom["domain_id"] in (2, 3):  # platelets / debris in blood smears
        pos = rng.uniform(0, (h, w), size=(int(rng.integers(0, 7)), 2))
        bg = bg + 0.8 * np.clip(sh.dots(y.shape, pos, 0.7), 0, 1)[..., None] * OD["platelet"]
    for _ in range(int(rng.integers(*dom["neighbours"], endpoint=True))):
        side = rng.uniform(0, 2 * np.pi)
        rr = r * rng.uniform(0.6, 1.1)
        cy, cx = h / 2 + (h / 2 + 0.3 * rr) * np.sin(side), w / 2 + (w / 2 + 0.3 * rr) * np.cos(side)
        cell = sh.blob(y, x, cy, cx, rr, terms=sh.harmonics(rng, 0.05))
        nuc = sh.blob(y, x, cy, cx, rr * rng.uniform(0.4, 0.8), rng.uniform(1, 1.4), side,
                      sh.harmonics(rng, 0.1))
        bg = bg + cell[..., None] * OD[rng.choice(CYTO_TINTS)] * 0.8 + nuc[..., None] * OD["chromatin"] * 1.1
    return bg


def render_cell(code: str, rng: np.random.Generator, domain: str = "bm", jitter: dict | None = None) -> np.ndarray:
    """One cell of type ``code`` (a key of SPECS) as an RGB uint8 array.

    ``jitter`` (from :func:`shapes.stain_jitter`) fixes the staining, e.g. per patient;
    by default a fresh strong jitter is drawn per image.
    """
    spec, dom = SPECS[code], DOMAINS[domain]
    s = dom["size"]
    y, x = sh.grid(s, s)
    mag = np.exp(rng.normal(0, 0.06))
    rc = dom["radius"] * spec["size"] * mag * np.exp(rng.normal(0, 0.08))
    cy, cx = s / 2 + rng.uniform(-0.08, 0.08, 2) * s
    ang = rng.uniform(0, 2 * np.pi)
    cell = sh.blob(y, x, cy, cx, rc, rng.uniform(1.0, 1.12), ang, sh.harmonics(rng, spec["rim"]))
    off = spec["offset"] * rc * rng.uniform(0.5, 1.2)
    ncy, ncx = cy + off * np.sin(ang + np.pi), cx + off * np.cos(ang + np.pi)
    rn = rc * spec["ratio"] * rng.uniform(0.9, 1.1)
    nuc, crease = _nucleus(y, x, spec["nuc"], ncy, ncx, rc, rn, ang, rng)
    nuc = nuc * cell

    dens, tex, amp = spec["chrom"]
    chrom = dens * rng.uniform(0.85, 1.15) * np.clip(1 + amp * sh.smooth_noise(rng, y.shape, max(0.5, tex * rc)), 0.3, None)
    lo, hi = spec["nucleoli"]
    if hi:
        spots = sh.dots(y.shape, sh.sample_in_mask(rng, nuc, int(rng.integers(lo, hi + 1)), 0.85), 0.07 * rc)
        chrom = chrom * (1 - 0.5 * np.clip(spots, 0, 1))
    cyto = np.clip(cell - nuc, 0, None) * spec["cyto_d"] * rng.uniform(0.7, 1.2)
    cyto *= 1 + 0.15 * sh.smooth_noise(rng, y.shape, 2.0)
    lo, hi = spec["vacuoles"]
    if hi:
        holes = sh.dots(y.shape, sh.sample_in_mask(rng, cyto, int(rng.integers(lo, hi + 1)), 0.3), 0.06 * rc)
        cyto = cyto * (1 - 0.8 * np.clip(holes, 0, 1))
    tint = (1 - (w := rng.uniform(0, 0.4))) * OD[spec["cyto"]] + w * OD[rng.choice(CYTO_TINTS)]
    od_cell = cyto[..., None] * tint + (nuc * chrom + crease)[..., None] * OD["chromatin"]

    if spec["gran"]:
        dye, (lo, hi), size, over, strength = spec["gran"]
        where = cell if over else cell * (1 - nuc)
        pos = sh.sample_in_mask(rng, where, int(rng.integers(lo, hi + 1)), 0.6)
        g = sh.dots(y.shape, pos, max(0.45, size * rc), rng.uniform(0.6, 1.0, len(pos)))
        od_cell = od_cell + (strength * np.clip(g, 0, 1.5))[..., None] * OD[dye]
    lo, hi = spec["rods"]
    for centre in sh.sample_in_mask(rng, cell * (1 - nuc), int(rng.integers(lo, hi + 1)), 0.4):  # Auer rods
        ra = rng.uniform(0, np.pi)
        half = rc * rng.uniform(0.18, 0.28) * np.array([np.sin(ra), np.cos(ra)])
        rod = sh.path_mask(y, x, [centre - half, centre + half], 0.5, soft=0.45)
        od_cell = od_cell + 1.3 * rod[..., None] * OD["auer"]

    total = od_cell + (1 - 0.9 * cell)[..., None] * _background(y, x, rng, dom, dom["radius"])
    total = total * np.asarray(dom["gain"])[None, None, :]
    jit = sh.stain_jitter(rng) if jitter is None else jitter
    jit = {**jit, "matrix": jit["matrix"] @ sh.colour_matrix(dom["hue"], 1.0, 1.0)}
    return sh.finish(total, dom["background"], jit, rng, dom["blur"] * rng.uniform(0.7, 1.4), dom["noise"])


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path, format="PNG")


def generate_cells(out: Path, domain: str, n_per_class: int, seed: int) -> None:
    """Write ``out/<CODE>/<CODE>_<00001>.png`` for each class of the domain."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown cell domain {domain!r}; known: {', '.join(DOMAINS)}")
    classes = {"bm": BM_CLASSES, "blood": BLOOD_CLASSES, "blood-b": BLOOD_B_CLASSES}[domain]
    dom_id = DOMAINS[domain]["domain_id"]
    for code in classes:
        class_index = list(SPECS).index(code)
        for i in range(1, n_per_class + 1):
            rng = np.random.default_rng(np.random.SeedSequence([seed, dom_id, class_index, i]))
            _save(render_cell(code, rng, domain), Path(out) / code / f"{code}_{i:05d}.png")


# AML bags: normal blood mix plus subtype-specific abnormal cells (fractions of the blasts).
NORMAL_MIX = {"NGS": 0.52, "LYT": 0.28, "MON": 0.08, "NGB": 0.06, "EOS": 0.04, "BAS": 0.02}
ABNORMAL_MIX = {
    "control": {},
    "PML_RARA": {"PMO_AUER": 0.8, "PMO": 0.1, "BLA": 0.1},
    "NPM1": {"BLA_CUP": 0.65, "BLA": 0.25, "MON": 0.1},
    "CBFB_MYH11": {"MONOBLAST": 0.5, "BLA": 0.2, "EOS_ABN": 0.3},
    "RUNX1_RUNX1T1": {"BLA_AUER": 0.6, "BLA": 0.2, "MYB": 0.1, "PMO": 0.1},
}
PB_GROUPS = {"pb_myeloblast": ("BLA", "BLA_CUP", "BLA_AUER", "MONOBLAST"),
             "pb_promyelocyte": ("PMO", "PMO_AUER"), "pb_myelocyte": ("MYB",)}


def _bag_codes(rng: np.random.Generator, label: str, n: int) -> list[str]:
    """Cell types of one patient's bag: a seeded abnormal fraction (sometimes low)."""
    mix = ABNORMAL_MIX[label]
    if mix:
        frac = rng.uniform(0.08, 0.2) if rng.random() < 0.3 else rng.uniform(0.25, 0.75)
    else:
        frac = 0.0
    n_abn = int(round(frac * n))
    codes = list(rng.choice(list(mix), size=n_abn, p=list(mix.values()))) if n_abn else []
    codes += list(rng.choice(list(NORMAL_MIX), size=n - n_abn, p=list(NORMAL_MIX.values())))
    return [str(c) for c in rng.permutation(codes)]


def generate_aml(out: Path, patients_per_label: int, cells_per_patient: int, seed: int) -> None:
    """Write ``out/<label>/<patient id>/image_<n>.png`` and ``out/metadata.csv``."""
    out = Path(out)
    labels = list(AML_LABELS)
    total = len(labels) * patients_per_label
    # Patient numbers are shuffled so an id does not give away the label.
    numbers = np.random.default_rng(np.random.SeedSequence([seed, 3, 0])).permutation(total) + 1
    rows = []
    for li, label in enumerate(labels):
        for p in range(patients_per_label):
            prng = np.random.default_rng(np.random.SeedSequence([seed, 3, 1, li, p]))
            pid = f"SYN-AML-{numbers[li * patients_per_label + p]:03d}"
            n = max(1, int(round(cells_per_patient * prng.uniform(0.75, 1.25))))
            codes = _bag_codes(prng, label, n)
            slide = sh.stain_jitter(prng)
            for k, code in enumerate(codes):
                rng = np.random.default_rng(np.random.SeedSequence([seed, 3, 2, li, p, k]))
                jit = sh.combine_jitter(slide, sh.stain_jitter(rng, 0.35))
                _save(render_cell(code, rng, "blood", jit), out / label / pid / f"image_{k}.png")
            pct = {key: f"{100.0 * sum(c in grp for c in codes) / n:.1f}" for key, grp in PB_GROUPS.items()}
            rows.append({"patient_id": pid, "bag_label": label, **pct})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["patient_id", "bag_label", *PB_GROUPS])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["patient_id"]))
