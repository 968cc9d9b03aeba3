"""Numpy rendering primitives shared by the cell and tissue generators.

Everything is drawn as soft (anti-aliased) density maps in [0, 1] and composed in
optical-density space (Beer-Lambert), so overlapping stains mix the way dyes do and
stain jitter can be applied per dye before the image is formed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import expit


def od(rgb) -> np.ndarray:
    """Optical density of a dye whose full-strength transmitted colour is ``rgb``."""
    return -np.log(np.clip(np.asarray(rgb, dtype=np.float64), 1e-3, 1.0))


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) as float arrays of shape (h, w)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y, x


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean, unit std (texture fields)."""
    n = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-9)


def harmonics(rng: np.random.Generator, amplitude: float, orders=(2, 3, 4, 5)) -> list:
    """Random Fourier terms for an irregular outline; higher orders get smaller."""
    return [(k, amplitude * rng.uniform(0.3, 1.0) / (k - 1), rng.uniform(0, 2 * np.pi)) for k in orders]


def blob(y, x, cy, cx, r, aspect=1.0, angle=0.0, terms=(), soft=0.7) -> np.ndarray:
    """Soft mask of an ellipse with radius modulated by ``terms`` (irregular / lobed outline).

    ``y``, ``x`` come from :func:`grid`; ``aspect`` > 1 makes it longer along ``angle``;
    ``soft`` is the edge width in pixels. Only the bounding box is evaluated (speed).
    """
    out = np.zeros_like(y)
    reach = r * max(aspect, 1.0) * (1 + sum(abs(a) for _, a, _ in terms)) + 8 * soft
    rows = slice(max(int(cy - y[0, 0] - reach), 0), max(int(cy - y[0, 0] + reach) + 2, 0))
    cols = slice(max(int(cx - x[0, 0] - reach), 0), max(int(cx - x[0, 0] + reach) + 2, 0))
    dy, dx = y[rows, cols] - cy, x[rows, cols] - cx
    if dy.size == 0:
        return out
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / aspect
    v = -dx * s + dy * c
    d = np.hypot(u, v)
    rr = np.full_like(d, float(r))
    if terms:
        th = np.arctan2(v, u)
        for k, a, ph in terms:
            rr += r * a * np.cos(k * th + ph)
    out[rows, cols] = expit((rr - d) / soft)
    return out


def segment_distance(py, px, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (py, px) to segments a->b, and the position t in [0, 1] of the
    closest point on the segment. Broadcasts: ``a``, ``b`` have shape (..., 2) as (y, x)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ey, ex = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    qy, qx = py - a[..., 0], px - a[..., 1]
    t = np.clip((qy * ey + qx * ex) / np.maximum(ey * ey + ex * ex, 1e-9), 0.0, 1.0)
    return np.hypot(qy - t * ey, qx - t * ex), t


def path_mask(y, x, points, radii, soft=0.7) -> np.ndarray:
    """Soft mask of a thick polyline (a 'sausage') through ``points`` (m, 2) with per-point
    radius ``radii`` (m,) interpolated along each segment; used for band nuclei, rods, strands."""
    points = np.asarray(points, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(points),))
    d, t = segment_distance(y[None], x[None], points[:-1, None, None], points[1:, None, None])
    r = radii[:-1, None, None] * (1 - t) + radii[1:, None, None] * t
    return expit((r - d) / soft).max(axis=0)


def arc_points(cy, cx, radius, start, sweep, n=12) -> np.ndarray:
    """Points along a circular arc, shape (n, 2) as (y, x)."""
    th = start + np.linspace(0.0, sweep, n)
    return np.stack([cy + radius * np.sin(th), cx + radius * np.cos(th)], axis=1)


def sample_in_mask(rng: np.random.Generator, mask: np.ndarray, n: int, threshold=0.5) -> np.ndarray:
    """``n`` random (y, x) positions where ``mask`` > threshold (sub-pixel jittered)."""
    ys, xs = np.nonzero(mask > threshold)
    if len(ys) == 0 or n <= 0:
        return np.zeros((0, 2))
    idx = rng.integers(0, len(ys), size=n)
    return np.stack([ys[idx], xs[idx]], axis=1) + rng.uniform(-0.5, 0.5, size=(n, 2))


def dots(shape, positions, sigma: float, weights=None) -> np.ndarray:
    """Gaussian dots (granules, nucleoli, platelets) of width ``sigma`` at ``positions``;
    each dot peaks near ``weights`` (default 1)."""
    canvas = np.zeros(shape)
    if len(positions) == 0:
        return canvas
    iy = np.clip(np.round(positions[:, 0]).astype(int), 0, shape[0] - 1)
    ix = np.clip(np.round(positions[:, 1]).astype(int), 0, shape[1] - 1)
    w = np.ones(len(iy)) if weights is None else np.asarray(weights, dtype=np.float64)
    np.add.at(canvas, (iy, ix), w)
    return gaussian_filter(canvas, sigma) * (2 * np.pi * sigma**2)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (h, w[, c]) image in the spatial axes only (defocus)."""
    if sigma <= 0:
        return img
    sig = (sigma, sigma, 0) if img.ndim == 3 else sigma
    return gaussian_filter(img, sig)


# YIQ lets one 3x3 matrix rotate hue, scale saturation and brightness at once.
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def colour_matrix(hue: float, saturation: float, brightness: float) -> np.ndarray:
    """RGB->RGB matrix: hue rotation (radians), saturation and brightness scaling."""
    c, s = np.cos(hue), np.sin(hue)
    m = np.array([[brightness, 0, 0], [0, saturation * c, -saturation * s], [0, saturation * s, saturation * c]])
    return _YIQ2RGB @ m @ _RGB2YIQ


def compose(od_img: np.ndarray, background, matrix=None, gamma=1.0) -> np.ndarray:
    """Beer-Lambert image ``background * exp(-od)`` followed by a colour matrix and gamma."""
    rgb = np.asarray(background)[None, None, :] * np.exp(-od_img)
    if matrix is not None:
        rgb = rgb @ matrix.T
    return np.clip(rgb, 0.0, 1.0) ** gamma


def to_uint8(rgb: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Add sensor noise and quantise to uint8."""
    if noise > 0:
        rgb = rgb + rng.normal(0.0, noise, size=rgb.shape)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def stain_jitter(rng: np.random.Generator, strength: float = 1.0) -> dict:
    """Random per-image (or per-slide) staining/scanning variation.

    Returned dict: per-channel OD gain, global dye amount, and a hue/saturation/brightness
    matrix plus gamma. ``strength`` scales all deviations (0 = none).
    """
    return {
        "gain": np.exp(rng.normal(0.0, 0.12 * strength, size=3)),
        "amount": float(np.exp(rng.normal(0.0, 0.2 * strength))),
        "matrix": colour_matrix(
            rng.normal(0.0, 0.32 * strength),
            float(np.exp(rng.normal(0.0, 0.3 * strength))),
            float(np.exp(rng.normal(0.0, 0.08 * strength))),
        ),
        "gamma": float(np.exp(rng.normal(0.0, 0.12 * strength))),
    }


def combine_jitter(outer: dict, inner: dict) -> dict:
    """Compose two stain jitters, e.g. a per-slide one with a milder per-image one."""
    return {"gain": outer["gain"] * inner["gain"], "amount": outer["amount"] * inner["amount"],
            "matrix": outer["matrix"] @ inner["matrix"], "gamma": outer["gamma"] * inner["gamma"]}


def finish(od_img, background, jitter: dict, rng, blur_sigma: float, noise: float) -> np.ndarray:
    """Apply dye jitter, form the RGB image, defocus, add noise; returns uint8 RGB."""
    od_img = od_img * (jitter["gain"] * jitter["amount"])[None, None, :]
    rgb = compose(od_img, background, jitter["matrix"], jitter["gamma"])
    return to_uint8(blur(rgb, blur_sigma), rng, noise)
