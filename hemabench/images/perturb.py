"""Acquisition perturbations of a cell image: what another lab's stain, focus, lamp, camera or
compression does to the pixels, at 5 severities per family (task ``robustness``).

Applied to the decoded RGB image *before* an encoder's own preprocessing, so every encoder
sees the same perturbed pixels. Each family draws its random parts (a stain direction, a
noise field, a rotation sign) once per (image, family) from a seed of the record path, the
family and ``PERTURBATION_VERSION``; the severity only sets the magnitude. So severity
k+1 moves the same image further along the same direction than severity k, a curve over
severities measures magnitude rather than a fresh draw per level, and a re-run gives the
same pixels. Severity 0 is the image itself. ``SEVERITIES`` holds every parameter value
(docs/robustness.md prints them); change one and bump ``PERTURBATION_VERSION``, which is part
of the embedding cache key and of the task's recorded metadata.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageFilter

PERTURBATION_VERSION = 1
LEVELS = 5  # severities 1..5; 0 is the clean image

# Per family, one dict of parameter values per severity 1..5.
SEVERITIES: dict[str, list[dict]] = {
    # HED colour jitter (Tellez et al. 2018): each stain's optical density scaled by 1 + alpha*u and
    # shifted by beta*v, per stain (u, v: see _draw, drawn once per image)
    "stain": [{"alpha": a, "beta": b} for a, b in
              ((0.05, 0.01), (0.10, 0.02), (0.20, 0.04), (0.30, 0.07), (0.40, 0.10))],
    # brightness x(1 + t*u1), contrast about the mean x(1 + t*u2), gamma exp(t*u3) (u: see _draw)
    "illumination": [{"t": t} for t in (0.05, 0.10, 0.20, 0.30, 0.45)],
    # Gaussian blur, sigma in pixels of the original image (acevedo: 360 x 363)
    "defocus": [{"sigma": s} for s in (0.5, 1.0, 1.5, 2.5, 4.0)],
    # Poisson-Gaussian sensor noise: variance gain * x + read^2 (x in 0..255), one normal field per image
    "noise": [{"gain": g, "read": r} for g, r in ((0.25, 2.0), (0.5, 4.0), (1.0, 6.0), (2.0, 9.0), (4.0, 12.0))],
    # JPEG re-encoding at this quality (PIL, 4:2:0 subsampling)
    "jpeg": [{"quality": q} for q in (90, 70, 50, 30, 10)],
    # control: rotation by +-degrees (sign drawn per image) and zoom by 1 + scale*u about the centre
    "geometric": [{"degrees": d, "scale": s} for d, s in ((5, 0.03), (15, 0.06), (30, 0.10), (60, 0.15), (90, 0.20))],
}
FAMILIES = tuple(SEVERITIES)
CONTROL = "geometric"  # a good cell encoder should barely notice it: kept out of the headline mean

# Ruifrok & Johnston's haematoxylin, eosin, DAB optical-density vectors (rows), as scikit-image's rgb2hed
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RGB_FROM_HED = _RGB_FROM_HED / np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)
_LOG_TABLE = (np.maximum(np.arange(256), 1.0) / 255.0).astype(np.float32)  # 0 read as 1: no log(0)


def check(family: str, severity: int) -> None:
    """A clear error for a family or severity that is not defined."""
    if family not in SEVERITIES:
        raise ValueError(f"unknown perturbation family {family!r}; defined: {', '.join(FAMILIES)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= LEVELS:
        raise ValueError(f"perturbation severity must be an integer from 0 to {LEVELS}, got {severity!r}")


def parameters(family: str, severity: int) -> dict:
    """The parameter values of one family at one severity (severity 0: none)."""
    check(family, severity)
    return dict(SEVERITIES[family][severity - 1]) if severity else {}


def image_rng(image_id: str, family: str) -> np.random.Generator:
    """The generator of one image's draws for one family (independent of the severity)."""
    digest = hashlib.sha256(f"{PERTURBATION_VERSION}\t{family}\t{image_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def perturb(image: Image.Image, family: str, severity: int, image_id: str) -> Image.Image:
    """``image`` (any mode; RGB returned) under ``family`` at ``severity``, deterministic per image."""
    p = parameters(family, severity)
    image = image.convert("RGB")
    if not severity:
        return image
    rng = image_rng(image_id, family)
    return _APPLY[family](image, p, rng)


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` factors of random sign and magnitude uniform in [0.5, 1]: every image is moved by at
    least half a level's nominal amount, so a severity means about the same on every cell."""
    return rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)


def _to_image(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _stain(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    u, v = _draw(rng, 3), _draw(rng, 3)
    od = -np.log(_LOG_TABLE[np.asarray(image)])  # optical density per pixel (a 256-entry table: fast)
    # scale and shift in stain space, back to RGB optical density: one 3x3 product and one offset
    mix = (_HED_FROM_RGB * (1 + p["alpha"] * u)) @ _RGB_FROM_HED
    shift = (p["beta"] * v) @ _RGB_FROM_HED
    return _to_image(255.0 * np.exp(-(od @ mix.astype(np.float32) + shift.astype(np.float32))))


def _illumination(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    u = _draw(rng, 3)
    x = np.asarray(image, dtype=np.float32) * np.float32((1 + p["t"] * u[0]) / 255.0)
    mean = x.mean()
    x = (x - mean) * np.float32(1 + p["t"] * u[1]) + mean
    return _to_image(255.0 * np.clip(x, 0, 1) ** np.float32(np.exp(p["t"] * u[2])))


def _defocus(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(p["sigma"]))


def _noise(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    x = np.asarray(image, dtype=np.float32)
    z = rng.standard_normal(x.shape, dtype=np.float32)
    return _to_image(x + np.sqrt(np.float32(p["gain"]) * x + np.float32(p["read"] ** 2)) * z)


def _jpeg(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(p["quality"]))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _geometric(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    sign, u = rng.choice([-1.0, 1.0]), _draw(rng, 1)[0]
    x = np.asarray(image)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    fill = tuple(int(c) for c in np.median(border, axis=0))  # the smear's background, not black corners
    zoom = 1 + p["scale"] * u
    w, h = image.size
    scaled = image.resize((max(1, round(w * zoom)), max(1, round(h * zoom))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (w, h), fill)
    canvas.paste(scaled, ((w - scaled.width) // 2, (h - scaled.height) // 2))
    return canvas.rotate(sign * p["degrees"], resample=Image.Resampling.BILINEAR, fillcolor=fill)


_APPLY = {"stain": _stain, "illumination": _illumination, "defocus": _defocus, "noise": _noise, "jpeg": _jpeg,
          "geometric": _geometric}
