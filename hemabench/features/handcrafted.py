"""Handcrafted colour + texture + shape features: the offline baseline 'encoder'.

Needs only numpy/scipy, so the benchmark runs end to end with no model weights. Texture and
shape features are computed on a contrast-normalised grey image, so they are largely
invariant to stain colour; colour is summarised separately by moments. Every block is
normalised by image size, so the vector length and meaning do not depend on the resolution.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# Block sizes, in order; HANDCRAFTED_DIM is their sum.
_BLOCKS = {
    "colour_moments": 9,   # RGB mean, std, skewness
    "chroma": 4,           # optical-density mean/std, saturation mean/std
    "region_colour": 6,    # mean RGB of the dark (nucleus) region and of the middle (cytoplasm) region
    "shape_dark": 8,       # nucleus-like region (Otsu on darkness): see _shape()
    "shape_darkest": 8,    # darkest cores (chromatin clumps, dark granules)
    "radial": 8,           # darkness and dark fraction in 4 rings around the image centre
    "gradient": 9,         # gradient-magnitude histogram (8 bins) + mean
    "lbp": 20,             # rotation-invariant uniform LBP histograms at radius 1 and 2
    "granularity": 6,      # difference-of-Gaussians energy at 3 scales, inside/outside nucleus, blob density
}
HANDCRAFTED_DIM = sum(_BLOCKS.values())  # = 78


def mean_colour_features(image: np.ndarray) -> np.ndarray:
    """Mean R, G, B in [0, 1]: the deliberately weak colour-only baseline."""
    return (np.asarray(image, dtype=np.float32)[..., :3].reshape(-1, 3).mean(axis=0) / 255.0).astype(np.float32)


def _otsu(values: np.ndarray, bins: int = 64) -> float:
    """Otsu threshold of values in [0, 1]."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    between = (m0[-1] * w0 - m0) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return float(centres[int(np.argmax(between))])


def _shape(mask: np.ndarray) -> list[float]:
    """Area fraction, perimeter/sqrt(area), log #components, largest-component share,
    its eccentricity and extent, hole fraction, centroid distance from the image centre."""
    h, w = mask.shape
    area = float(mask.sum())
    if area < 3:
        return [area / (h * w), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    interior = ndi.binary_erosion(mask)
    perimeter = float((mask & ~interior).sum())
    labels, n = ndi.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    n_real = int((sizes >= 3).sum())
    big = labels == (int(np.argmax(sizes)) + 1)
    ys, xs = np.nonzero(big)
    cov = np.cov(np.stack([ys, xs])) if len(ys) > 2 else np.eye(2)
    ev = np.sort(np.linalg.eigvalsh(cov + 1e-6 * np.eye(2)))
    ecc = float(np.sqrt(1 - ev[0] / ev[1]))
    extent = len(ys) / float((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
    holes = float(ndi.binary_fill_holes(mask).sum() - area) / area
    my, mx = np.nonzero(mask)
    centre = np.hypot(my.mean() / h - 0.5, mx.mean() / w - 0.5)
    return [area / (h * w), perimeter / np.sqrt(area), np.log1p(n_real), sizes.max() / area, ecc, extent,
            holes, float(centre)]


def _lbp_hist(g: np.ndarray, r: int) -> np.ndarray:
    """Rotation-invariant uniform LBP (8 neighbours at radius r) histogram, 10 bins."""
    c = g[r:-r, r:-r]
    h, w = g.shape
    offs = [(-r, -r), (-r, 0), (-r, r), (0, r), (r, r), (r, 0), (r, -r), (0, -r)]
    bits = np.stack([g[r + dy:h - r + dy, r + dx:w - r + dx] >= c + 0.01 for dy, dx in offs])
    ones = bits.sum(0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(0)
    code = np.where(transitions <= 2, ones, 9)
    return np.bincount(code.ravel(), minlength=10)[:10] / code.size


def handcrafted_features(image: np.ndarray) -> np.ndarray:
    """Feature vector of length HANDCRAFTED_DIM (float32) for one RGB uint8 image."""
    img = np.asarray(image, dtype=np.float64)[..., :3] / 255.0
    h, w = img.shape[:2]
    chans = np.ascontiguousarray(img.transpose(2, 0, 1).reshape(3, -1))
    mean, std = chans.mean(1), chans.std(1)
    dev = chans - mean[:, None]
    skew = (dev * dev * dev).mean(1) / np.maximum(std, 1e-6) ** 3
    dens = -np.log(np.maximum(chans, 1 / 255)).sum(0)
    hi_c, lo_c = chans.max(0), chans.min(0)
    sat = (hi_c - lo_c) / np.maximum(hi_c, 1e-6)
    feats = [mean, std, np.clip(skew, -10, 10), [dens.mean(), dens.std(), sat.mean(), sat.std()]]

    # Darkness normalised to the image's own range: colour- and brightness-robust.
    gray = img.mean(2)
    lo, hi = np.percentile(gray, (1, 99))
    dark = np.clip((hi - gray) / max(hi - lo, 1e-3), 0, 1)
    t1 = _otsu(dark)
    m1 = dark > t1
    m2 = dark > t1 + 0.5 * (1 - t1)
    mid = (dark > 0.5 * t1) & ~m1
    for m in (m1, mid):
        feats.append(img[m].mean(0) if m.any() else mean)
    feats += [_shape(m1), _shape(m2)]

    yy, xx = np.mgrid[0:h, 0:w]
    rad = np.hypot((yy + 0.5) / h - 0.5, (xx + 0.5) / w - 0.5) / np.sqrt(0.5)
    ring = np.minimum((rad * 4).astype(int), 3)
    counts = np.maximum(np.bincount(ring.ravel(), minlength=4), 1)
    feats.append(np.bincount(ring.ravel(), dark.ravel(), 4) / counts)
    feats.append(np.bincount(ring.ravel(), m1.ravel(), 4) / counts)

    g = 1 - dark
    gy, gx = ndi.sobel(g, 0), ndi.sobel(g, 1)
    mag = np.hypot(gy, gx) / 8.0
    feats.append(np.histogram(np.clip(mag, 0, 0.5 - 1e-9), bins=8, range=(0, 0.5))[0] / mag.size)
    feats.append([mag.mean()])
    feats += [_lbp_hist(g, 1), _lbp_hist(g, 2)]

    scale = min(h, w) / 64.0  # DoG scales follow image size
    blurred = [ndi.gaussian_filter(g, s * scale) for s in (0.5, 1.0, 2.0, 4.0)]
    dogs = [blurred[i] - blurred[i + 1] for i in range(3)]
    energy = [float(np.sqrt((d**2).mean())) for d in dogs]
    fine = np.abs(dogs[0])
    inside = fine[m1].mean() if m1.any() else 0.0
    outside = fine[mid].mean() if mid.any() else 0.0
    peaks = (dogs[1] < -0.04) & (dogs[1] == ndi.minimum_filter(dogs[1], size=3))
    feats.append([*energy, inside, outside, peaks.sum() / (h * w) * 100])
    out = np.concatenate([np.ravel(np.asarray(f, dtype=np.float64)) for f in feats]).astype(np.float32)
    assert out.shape == (HANDCRAFTED_DIM,)
    return out
