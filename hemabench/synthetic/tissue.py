"""Synthetic BreakHis: H&E-like breast tumour tissue seen at 40X, 100X, 200X and 400X.

Each patient is one tissue described in continuous world coordinates (units ~ 1 um):
capsule-shaped regions (lumens, mucin pools, epithelium, papilla cores), a list of nuclei
(position, size, elongation, orientation, darkness, irregularity) and a stroma fibre field.
Every image is a view of that same tissue, rendered at the magnification's pixel size, so
40X shows architecture (glands, nests, mucin) and 400X shows nuclear detail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.special import expit

from hemabench.synthetic import shapes as sh

BREAKHIS_SUBTYPES = {
    "A": ("B", "adenosis", "adenosis"), "F": ("B", "fibroadenoma", "fibroadenoma"),
    "PT": ("B", "phyllodes_tumor", "phyllodes tumour"), "TA": ("B", "tubular_adenoma", "tubular adenoma"),
    "DC": ("M", "ductal_carcinoma", "ductal carcinoma"), "LC": ("M", "lobular_carcinoma", "lobular carcinoma"),
    "MC": ("M", "mucinous_carcinoma", "mucinous carcinoma"),
    "PC": ("M", "papillary_carcinoma", "papillary carcinoma"),
}
MAGNIFICATIONS = (40, 100, 200, 400)
IMAGE_SIZE = (92, 140)          # (h, w): the 460x700 BreakHis aspect at 1/5 scale
WORLD = (1400.0, 2100.0)        # tissue extent in world units (h, w)
UNITS_PER_PX_40X = 10.0         # a 40X image spans 1400 x 920 units, 400X spans 140 x 92
CYST, MUCIN, EPI, LUMEN, CORE = range(5)   # region kinds, in drawing order (later on top)
H_OD = sh.od((0.35, 0.30, 0.62))   # haematoxylin, per unit density
E_OD = sh.od((0.93, 0.45, 0.70))   # eosin
MUCIN_OD = sh.od((0.84, 0.85, 0.93))


class World:
    """One patient's tissue: capsules (kind, a, b, radius) + nuclei + stroma texture."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.caps: list[np.ndarray] = []
        self.nuc: list[np.ndarray] = []
        self.stroma = rng.uniform(0.45, 0.65)
        self.fibre_angle = rng.uniform(0, np.pi)
        self.fibre_amp = 0.35
        self.fibre = self._waves(self.fibre_angle + np.pi / 2 + rng.normal(0, 0.35, 24), rng.uniform(4, 60, 24))
        self.tex = self._waves(rng.uniform(0, 2 * np.pi, 10), rng.uniform(2.0, 80.0, 10))

    def _waves(self, angle, wavelength) -> tuple[np.ndarray, np.ndarray]:
        k = 2 * np.pi / wavelength
        return np.stack([k * np.sin(angle), k * np.cos(angle)], 1), self.rng.uniform(0, 2 * np.pi, len(k))

    def cap(self, kind, a, b, r) -> None:
        a, b = np.asarray(a, dtype=np.float64).reshape(-1, 2), np.asarray(b, dtype=np.float64).reshape(-1, 2)
        r = np.broadcast_to(np.asarray(r, dtype=np.float64), (len(a),))
        self.caps.append(np.column_stack([np.full(len(a), kind), a, b, r]))

    def nuclei(self, pos, r, aspect=1.0, angle=None, dens=1.3, irr=0.05) -> None:
        pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
        n = len(pos)
        angle = self.rng.uniform(0, np.pi, n) if angle is None else np.ravel(angle)
        cols = [pos[:, 0], pos[:, 1], np.ravel(r), aspect, angle, np.ravel(dens), irr,
                self.rng.uniform(0, 2 * np.pi, n)]
        self.nuc.append(np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)) for c in cols], 1))

    def inside(self, pts, kinds=(CYST, MUCIN, EPI, LUMEN), margin=0.0) -> np.ndarray:
        """Which points lie inside any capsule of the given kinds."""
        caps = np.concatenate(self.caps) if self.caps else np.zeros((0, 6))
        caps = caps[np.isin(caps[:, 0], kinds)]
        pts = np.asarray(pts).reshape(-1, 2)
        if len(caps) == 0 or len(pts) == 0:
            return np.zeros(len(pts), bool)
        d, _ = sh.segment_distance(pts[None, :, 0], pts[None, :, 1], caps[:, None, 1:3], caps[:, None, 3:5])
        return (d < caps[:, 5:6] + margin).any(0)

    def uniform(self, n, margin=0.0) -> np.ndarray:
        return self.rng.uniform((margin, margin), (WORLD[0] - margin, WORLD[1] - margin), size=(int(n), 2))

    def finalise(self) -> World:
        self.cap_arr = np.concatenate(self.caps) if self.caps else np.zeros((0, 6))
        self.nuc_arr = np.concatenate(self.nuc) if self.nuc else np.zeros((0, 8))
        return self


def _unit(angle):
    return np.array([np.sin(angle), np.cos(angle)])


def _stadium(a, b, q, m, rng) -> tuple[np.ndarray, np.ndarray]:
    """``m`` points around each stadium outline at distance ``q`` from segments a-b (n of
    them) and the outline's tangent angle there; shapes (n, m, 2) and (n, m)."""
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    q = np.broadcast_to(np.asarray(q, float), (len(a),))[:, None, None]
    length = np.hypot(*(b - a).T)[:, None, None]
    u = np.where(length[:, 0] > 1e-6, (b - a) / np.maximum(length[:, 0], 1e-6), [0.0, 1.0])[:, None]
    nrm = np.stack([u[..., 1], -u[..., 0]], -1)
    a, b = a[:, None], b[:, None]
    s = (np.arange(m)[None, :, None] + rng.uniform(0, 1, (len(a), 1, 1))) / m * (2 * length + 2 * np.pi * q)
    phi = np.clip((s - length) / q, 0, np.pi)
    phi2 = np.clip((s - 2 * length - np.pi * q) / q, 0, np.pi)
    regions = [s < length, s < length + np.pi * q, s < 2 * length + np.pi * q]
    pts = np.select(regions, [a + s * u + q * nrm, b + q * (np.cos(phi) * nrm + np.sin(phi) * u),
                              b - (s - length - np.pi * q) * u - q * nrm],
                    a - q * (np.cos(phi2) * nrm + np.sin(phi2) * u))
    tan = np.select(regions, [u + 0 * s, np.cos(phi) * u - np.sin(phi) * nrm, -u + 0 * s],
                    np.sin(phi2) * nrm - np.cos(phi2) * u)
    return pts, np.arctan2(tan[..., 0], tan[..., 1])


def _glands(w: World, a, b, ro, lumen_frac, nuc_r=3.4, two_layer=True, dens=1.0) -> None:
    """Ducts/glands (vectorised over a, b): epithelial ring around a lumen, luminal nuclei
    and (benign) a flat outer myoepithelial layer."""
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    ro = np.broadcast_to(np.asarray(ro, float), (len(a),))
    rl = ro * lumen_frac
    w.cap(EPI, a, b, ro)
    w.cap(LUMEN, a, b, rl)
    length = float(np.median(np.hypot(*(b - a).T)))
    layers = [(rl + 0.45 * (ro - rl), 2.3, nuc_r, 1.3, np.pi / 2, dens)]
    if two_layer:
        layers.append((ro - 0.8 * nuc_r, 4.0, 0.7 * nuc_r, 2.6, 0.0, dens * 1.1))
    for q, spacing, r, aspect, turn, dd in layers:
        m = max(3, int((2 * length + 2 * np.pi * float(np.median(q))) / (spacing * nuc_r)))
        pts, tan = _stadium(a, b, q, m, w.rng)
        w.nuclei(pts, r * w.rng.uniform(0.9, 1.1, tan.size), aspect, tan + turn, dd)


def _polyline(w: World, start, n, step, turn) -> np.ndarray:
    """Random-walk polyline (ducts, clefts, single-file rows, papillae)."""
    ang = w.rng.uniform(0, 2 * np.pi)
    pts = [np.asarray(start, float)]
    for _ in range(n - 1):
        ang += w.rng.normal(0, turn)
        pts.append(pts[-1] + step * _unit(ang))
    return np.array(pts)


def _fill(w: World, caps, spacing, r, dens, irr, pleo=0.1, nucleoli=0.0) -> None:
    """Fill the union of capsules (list of (a, b, r)) with crowded nuclei on a jittered grid."""
    a, b, ro = (np.array([c[i] for c in caps], dtype=np.float64) for i in range(3))
    lo, hi = np.minimum(a, b).min(0) - ro.max(), np.maximum(a, b).max(0) + ro.max()
    gy, gx = np.mgrid[lo[0]:hi[0]:spacing, lo[1]:hi[1]:spacing]
    pts = np.stack([gy.ravel(), gx.ravel()], 1) + w.rng.normal(0, 0.2 * spacing, (gy.size, 2))
    d, _ = sh.segment_distance(pts[None, :, 0], pts[None, :, 1], a[:, None], b[:, None])
    pts = pts[(d < ro[:, None] - 0.6 * r).any(0)]
    rr = r * np.exp(w.rng.normal(0, pleo, len(pts)))
    w.nuclei(pts, rr, w.rng.uniform(1.0, 1.4, len(pts)), None, dens * w.rng.uniform(0.85, 1.15, len(pts)), irr)
    if nucleoli:
        keep = w.rng.random(len(pts)) < nucleoli
        w.nuclei(pts[keep] + w.rng.normal(0, 0.2, (keep.sum(), 2)) * rr[keep, None], 0.22 * rr[keep], 1.0,
                 None, 1.2, 0.0)


def _stroma_cells(w: World, density, r, aspect, lymph=0.0) -> None:
    """Spindle fibroblast nuclei aligned with the fibres, plus scattered lymphocytes."""
    pts = w.uniform(density * WORLD[0] * WORLD[1] / 1e4)
    pts = pts[~w.inside(pts, margin=r)]
    w.nuclei(pts, r * w.rng.uniform(0.8, 1.2, len(pts)), aspect * w.rng.uniform(0.7, 1.3, len(pts)),
             w.fibre_angle + w.rng.normal(0, 0.3, len(pts)), 1.1, 0.05)
    if lymph:
        pts = w.uniform(lymph * WORLD[0] * WORLD[1] / 1e4)
        w.nuclei(pts[~w.inside(pts, margin=3)], 2.8, 1.05, None, 1.9, 0.03)


def _normal_tissue(w: World) -> None:
    """Fat and normal lobules found next to any lesion: shared by all subtypes, so the
    subtype must be read from the lesion, not from whether fat or glands are present."""
    rng = w.rng
    for centre in w.uniform(rng.integers(0, 4), 100):
        ra = rng.uniform(28, 45)
        gy, gx = np.mgrid[-5:6, -5:6]
        cells = centre + ra * 1.9 * np.stack([gy.ravel() + 0.5 * (gx.ravel() % 2), 0.87 * gx.ravel()], 1)
        cells = cells[np.hypot(*(cells - centre).T) < rng.uniform(100, 300) * rng.uniform(0.7, 1.3, len(cells))]
        cells = cells + rng.normal(0, 0.12 * ra, cells.shape)
        w.cap(CYST, cells, cells + rng.normal(0, 0.15 * ra, cells.shape), ra * rng.uniform(0.85, 1.0, len(cells)))
    for centre in w.uniform(rng.integers(0, 3), 150):
        a = centre + rng.normal(0, 60, (rng.integers(6, 14), 2))
        _glands(w, a, a + rng.normal(0, 5, a.shape), rng.uniform(9, 13, len(a)), rng.uniform(0.2, 0.4))


# Stroma cellularity per subtype: (nuclei per 1e4 units^2, radius, elongation, lymphocytes).
STROMA = {"A": (1.5, 3.5, 3.0, 0), "F": (3.0, 3.5, 2.5, 0), "PT": (9.0, 4.2, 2.2, 0), "TA": (1.0, 3.5, 2.5, 0),
          "DC": (1.5, 4.0, 2.5, 2.0), "LC": (1.5, 3.5, 3.0, 0.5), "MC": (1.5, 3.5, 2.5, 0), "PC": (1.5, 3.5, 2.5, 0)}


def _build(code: str, rng: np.random.Generator) -> World:
    """Architecture rules per subtype; malignant nuclei are larger, darker, more irregular."""
    w = World(rng)
    if code == "A":      # adenosis: lobules of many small compressed glands
        for centre in w.uniform(rng.integers(2, 6), 250):
            a = centre + rng.normal(0, 110, (rng.integers(15, 30), 2))
            _glands(w, a, a + rng.normal(0, 10, a.shape), rng.uniform(11, 18, len(a)), rng.uniform(0.15, 0.4))
    elif code in ("F", "PT"):  # fibroadenoma: slit-like ducts in loose stroma; phyllodes: open clefts
        w.stroma *= 0.75 if code == "F" else 1.0
        w.fibre_amp = 0.2 if code == "F" else w.fibre_amp
        step, lumen = ((50, 90), (0.15, 0.3)) if code == "F" else ((70, 120), (0.5, 0.7))
        for start in w.uniform(rng.integers(5, 14), 150):
            pts = _polyline(w, start, rng.integers(2, 7), rng.uniform(*step), 0.45)
            _glands(w, pts[:-1], pts[1:], rng.uniform(10, 14) * (1 if code == "F" else 1.4), rng.uniform(*lumen))
    elif code == "TA":   # tubular adenoma: closely packed small round tubules
        step = rng.uniform(30, 35)
        gy, gx = np.mgrid[40:WORLD[0] - 40:step, 40:WORLD[1] - 40:step]
        a = np.stack([gy.ravel(), gx.ravel()], 1) + rng.normal(0, 3, (gy.size, 2))
        a = a[rng.random(len(a)) < rng.uniform(0.5, 0.9)]
        _glands(w, a, a + rng.normal(0, 3, a.shape), rng.uniform(11, 14.5, len(a)), rng.uniform(0.3, 0.45))
    elif code == "DC":   # ductal carcinoma: irregular nests of crowded pleomorphic nuclei
        for centre in w.uniform(rng.integers(6, 14), 150):
            caps = [(centre + rng.normal(0, 40, 2), centre + rng.normal(0, 60, 2), rng.uniform(35, 90))
                    for _ in range(rng.integers(2, 5))]
            for a, b, r in caps:
                w.cap(EPI, a, b, r)
            r = rng.uniform(6.0, 7.5)
            _fill(w, caps, r * rng.uniform(2.3, 2.7), r, 1.4, 0.2, 0.25, 0.5)
            for a, _, r in caps[: rng.integers(0, 3)]:  # cribriform spaces
                p = a + rng.normal(0, 0.3 * r, 2)
                w.cap(LUMEN, p, p, rng.uniform(6, 14))
    elif code == "LC":   # lobular carcinoma: single-file rows of small, hyperchromatic cells
        for start in w.uniform(rng.integers(50, 100), 50):
            pts = _polyline(w, start, rng.integers(6, 25), rng.uniform(9.5, 11.5), 0.25)
            w.cap(EPI, pts[:-1], pts[1:], 6.0)
            w.nuclei(pts + rng.normal(0, 1.0, pts.shape), rng.uniform(4.3, 5.2, len(pts)), 1.2, None, 1.55, 0.14)
    elif code == "MC":   # mucinous: mucin lakes with floating tumour-cell clusters
        for centre in w.uniform(rng.integers(2, 6), 250):
            b = centre + rng.normal(0, 150, 2)
            r = rng.uniform(120, 300)
            w.cap(MUCIN, centre, b, r)
            for t in rng.uniform(0, 1, rng.integers(5, 14)):
                p = centre + t * (b - centre) + rng.normal(0, 0.5 * r, 2)
                cl = [(p, p + rng.normal(0, 10, 2), rng.uniform(12, 30))]
                w.cap(EPI, *cl[0])
                _fill(w, cl, 11.0, rng.uniform(5.5, 6.5), 1.5, 0.15, 0.2, 0.3)
    elif code == "PC":   # papillary: cysts holding branching fibrovascular cores, columnar lining
        for centre in w.uniform(rng.integers(2, 4), 350):
            w.cap(CYST, centre, centre + rng.normal(0, 80, 2), rng.uniform(200, 300))
            stack = [(centre + rng.normal(0, 60, 2), 0)]
            while stack:
                start, depth = stack.pop()
                pts = _polyline(w, start, 3, rng.uniform(50, 80), 0.4)
                core = rng.uniform(7, 12)
                w.cap(EPI, pts[:-1], pts[1:], core + 13)
                w.cap(CORE, pts[:-1], pts[1:], core)
                m = int((np.hypot(*(pts[1] - pts[0])) + np.pi * (core + 6)) / 7.5)
                side, tan = _stadium(pts[:-1], pts[1:], core + 6, m, rng)
                w.nuclei(side, rng.uniform(4.0, 5.0, tan.size), rng.uniform(1.8, 2.4), tan + np.pi / 2, 1.45, 0.15)
                stack += [(p, depth + 1) for p in pts[1:] if depth < 2 and rng.random() < 0.7]
    lesion = np.concatenate(w.caps)
    w.anchors = lesion[lesion[:, 0] != LUMEN, 1:3]
    _normal_tissue(w)
    dens, r, aspect, lymph = STROMA[code]
    _stroma_cells(w, dens * rng.uniform(0.6, 1.5), r, aspect, lymph)
    return w


def _waves(waves, ys, xs, px) -> np.ndarray:
    """Sum of plane waves on the view grid (1-D ``ys``, ``xs``), anti-aliased for pixel size
    ``px`` by a Gaussian prefilter; separable, so it costs two small matrix products."""
    k, phase = waves
    weight = np.exp(-0.5 * (np.hypot(k[:, 0], k[:, 1]) * 0.7 * px) ** 2) / np.sqrt(len(k) / 2)
    ay, ax = ys[:, None] * k[:, 0], xs[:, None] * k[:, 1] + phase
    return (np.cos(ay) * weight) @ np.cos(ax).T - (np.sin(ay) * weight) @ np.sin(ax).T


def _nuclei_map(w: World, y0, x0, px) -> np.ndarray:
    """Scatter the nuclei near the view as soft ellipses: vectorised fixed-size patches,
    nuclei grouped by patch size. Sub-pixel nuclei keep their integrated density."""
    h, wd = IMAGE_SIZE
    nuc = w.nuc_arr
    fy, fx = (nuc[:, 0] - y0) / px, (nuc[:, 1] - x0) / px
    need = np.ceil(np.minimum(nuc[:, 2] * nuc[:, 3] / px * 1.15 + 1.5, 16)).astype(int)
    keep = (fy > -need) & (fy < h + need) & (fx > -need) & (fx < wd + need)
    out = np.zeros(h * wd)
    point = keep & (nuc[:, 2] * nuc[:, 3] < px)  # sub-pixel: bilinear splat of the mass, then blur
    if point.any():
        mass = np.pi * nuc[point, 2] ** 2 * nuc[point, 3] * nuc[point, 5] / px**2
        py, pxx = fy[point] - 0.5, fx[point] - 0.5
        by, bx = np.floor(py).astype(int), np.floor(pxx).astype(int)
        ty, tx = py - by, pxx - bx
        for oy, ox, wt in ((0, 0, (1 - ty) * (1 - tx)), (0, 1, (1 - ty) * tx), (1, 0, ty * (1 - tx)), (1, 1, ty * tx)):
            ok = (by + oy >= 0) & (by + oy < h) & (bx + ox >= 0) & (bx + ox < wd)
            out += np.bincount(((by + oy) * wd + bx + ox)[ok], (mass * wt)[ok], h * wd)
        out = gaussian_filter(out.reshape(h, wd), 0.5).ravel()
    keep &= ~point
    bucket = np.searchsorted(np.array([2, 3, 4, 6, 8, 11, 16]), need)
    for bk in np.unique(bucket[keep]):
        sel = keep & (bucket == bk)
        rad = (2, 3, 4, 6, 8, 11, 16)[bk]
        nb, fyb, fxb = nuc[sel], fy[sel], fx[sel]
        off = np.arange(-rad, rad + 1)
        iy = np.round(fyb).astype(int)[:, None, None] + off[None, :, None]
        ix = np.round(fxb).astype(int)[:, None, None] + off[None, None, :]
        dy, dx = (iy - fyb[:, None, None]) * px, (ix - fxb[:, None, None]) * px
        r, asp, ang, dens, irr, ph = (nb[:, i, None, None] for i in range(2, 8))
        r_eff = np.maximum(r, 0.7 * px)
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / asp
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        rho = np.maximum(np.hypot(u, v), 1e-9)
        c, s = u / rho, v / rho
        cos3 = (4 * c**3 - 3 * c) * np.cos(ph) - (3 * s - 4 * s**3) * np.sin(ph)  # cos(3 theta + ph)
        m = expit((r_eff * (1 + irr * cos3) - rho) / max(0.45 * px, 0.4)) * (dens * (r / r_eff) ** 2)
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
        out += np.bincount((iy * wd + ix)[ok], m[ok], h * wd)
    return out.reshape(h, wd)


def _cap_masks(caps, y, x, px, tex) -> np.ndarray:
    """Union mask per region kind. Capsules small in pixels are drawn as local patches
    (cheap at low magnification, where there are thousands); large ones over the full view."""
    h, wd = IMAGE_SIZE
    masks = np.zeros((5, h * wd))
    y0, x0 = y[0, 0] - 0.5 * px, x[0, 0] - 0.5 * px
    half = (np.hypot(caps[:, 3] - caps[:, 1], caps[:, 4] - caps[:, 2]) / 2 + caps[:, 5]) / px + 2
    cy, cx = (caps[:, 1] + caps[:, 3]) / 2, (caps[:, 2] + caps[:, 4]) / 2
    near = (np.abs(cy - y.mean()) / px < h / 2 + half) & (np.abs(cx - x.mean()) / px < wd / 2 + half)
    soft = max(0.8 * px, 1.5)
    small = near & (half <= 12)
    if small.any():
        c = caps[small]
        rad = int(np.ceil(half[small].max()))
        off = np.arange(-rad, rad + 1)
        iy = np.floor((cy[small] - y0) / px).astype(int)[:, None, None] + off[None, :, None]
        ix = np.floor((cx[small] - x0) / px).astype(int)[:, None, None] + off[None, None, :]
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
        flat = np.where(ok, iy * wd + ix, 0)
        d, _ = sh.segment_distance(y0 + (iy + 0.5) * px, x0 + (ix + 0.5) * px,
                                   c[:, None, None, 1:3], c[:, None, None, 3:5])
        m = expit((c[:, 5, None, None] - d + 2.5 * tex.ravel()[flat]) / soft) * ok
        for kind in np.unique(c[:, 0]).astype(int):
            sel = c[:, 0] == kind
            np.maximum.at(masks[kind], flat[sel].ravel(), m[sel].ravel())
    big = near & ~small
    if big.any():
        c = caps[big]
        d, _ = sh.segment_distance(y[None], x[None], c[:, None, None, 1:3], c[:, None, None, 3:5])
        m = expit((c[:, 5, None, None] - d + 2.5 * tex[None]) / soft).reshape(len(c), -1)
        for kind in np.unique(c[:, 0]).astype(int):
            masks[kind] = np.maximum(masks[kind], m[c[:, 0] == kind].max(0))
    return masks.reshape(5, h, wd)


def render_view(w: World, cy, cx, mag: int, rng: np.random.Generator, jitter: dict) -> np.ndarray:
    """RGB uint8 image of the tissue centred at (cy, cx) at magnification ``mag``."""
    h, wd = IMAGE_SIZE
    px = UNITS_PER_PX_40X * 40 / mag
    y0, x0 = cy - h / 2 * px, cx - wd / 2 * px
    ys, xs = y0 + (np.arange(h) + 0.5) * px, x0 + (np.arange(wd) + 0.5) * px
    y, x = np.meshgrid(ys, xs, indexing="ij")
    tex = _waves(w.tex, ys, xs, px)
    masks = _cap_masks(w.cap_arr, y, x, px, tex)
    fib = _waves(w.fibre, ys, xs, px)
    od = (w.stroma * (1 + w.fibre_amp * fib))[..., None] * E_OD + 0.06 * H_OD
    layers = [(CYST, 0.03 * E_OD), (MUCIN, (0.7 + 0.25 * fib)[..., None] * MUCIN_OD),
              (EPI, 0.32 * E_OD + 0.14 * H_OD), (LUMEN, 0.03 * E_OD), (CORE, od)]
    for kind, layer_od in layers:
        od = od * (1 - masks[kind][..., None]) + masks[kind][..., None] * layer_od
    nuc = _nuclei_map(w, y0, x0, px) * (1 + 0.2 * tex)
    od = od + np.clip(nuc, 0, 2.0)[..., None] * H_OD
    blur = {40: 0.5, 100: 0.45, 200: 0.55, 400: 0.8}[mag]
    return sh.finish(od, (0.97, 0.95, 0.97), jitter, rng, blur, 0.015)


def _view_centre(w: World, mag: int, rng: np.random.Generator) -> tuple[float, float]:
    """Random view, usually on lesional tissue (as a pathologist would photograph)."""
    px = UNITS_PER_PX_40X * 40 / mag
    half = np.array(IMAGE_SIZE) / 2 * px
    if mag > 40 and len(w.anchors) and rng.random() < 0.85:
        c = w.anchors[rng.integers(len(w.anchors))] + rng.normal(0, 0.3, 2) * half
    else:
        c = rng.uniform(half, np.array(WORLD) - half)
    return tuple(np.clip(c, half, np.array(WORLD) - half))


def generate_breakhis(out: Path, patients_per_subtype: int, images_per_magnification: int, seed: int) -> None:
    """Write the BreakHis v1 folder tree and file names under ``out``."""
    root = Path(out) / "BreaKHis_v1" / "histology_slides" / "breast"
    for si, (code, (tumour, folder, _)) in enumerate(BREAKHIS_SUBTYPES.items()):
        for p in range(patients_per_subtype):
            k = si * patients_per_subtype + p + 1
            year, pid = f"{90 + k % 10:02d}", f"{9000 + k}SY"
            prng = np.random.default_rng(np.random.SeedSequence([seed, 4, si, p]))
            world = _build(code, prng).finalise()
            slide = sh.stain_jitter(prng, 0.6)
            pdir = root / ("benign" if tumour == "B" else "malignant") / "SOB" / folder / f"SOB_{tumour}_{code}_{year}-{pid}"
            for mag in MAGNIFICATIONS:
                (pdir / f"{mag}X").mkdir(parents=True, exist_ok=True)
                for i in range(1, images_per_magnification + 1):
                    rng = np.random.default_rng(np.random.SeedSequence([seed, 4, si, p, mag, i]))
                    img = render_view(world, *_view_centre(world, mag, rng), mag, rng,
                                      sh.combine_jitter(slide, sh.stain_jitter(rng, 0.25)))
                    name = f"SOB_{tumour}_{code}-{year}-{pid}-{mag}-{i:03d}.png"
                    Image.fromarray(img, "RGB").save(pdir / f"{mag}X" / name, format="PNG")
