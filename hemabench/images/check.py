"""Cheap checks that a file is a readable image, so one bad file never crashes a run.

The default check reads the header and looks for the format's end marker (JPEG EOI,
PNG IEND, TIFF strips inside the file), which catches truncated downloads without
decoding pixels. ``full=True`` decodes the whole image.

``to_rgb`` is the one conversion of a decoded image to 8-bit RGB. PIL's ``convert("RGB")``
clips 16-bit images to 255 (almost white) and float ones to 0 (black), which once gave blank
embeddings without a word; high-bit-depth images are scaled instead, or refused naming why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})
_TAIL = 64


def _tail_problem(path: Path, image: Image.Image, size: int) -> str | None:
    """Format-specific end-of-file checks; None when the file looks complete."""
    if image.format in ("JPEG", "PNG"):
        with open(path, "rb") as handle:
            handle.seek(max(0, size - _TAIL))
            tail = handle.read()
        marker = b"\xff\xd9" if image.format == "JPEG" else b"IEND"
        if marker not in tail:
            return f"truncated {image.format} (no end marker)"
    elif image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        offsets, counts = tags.get(273), tags.get(279)  # StripOffsets, StripByteCounts
        if offsets and counts:
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            if max(o + c for o, c in zip(offsets, counts)) > size:
                return "truncated TIFF (image data runs past the end of the file)"
    return None


def check_image(path: str | os.PathLike, full: bool = False) -> str | None:
    """Return None for a readable image, else a short reason why it is not."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot stat file: {exc.strerror or exc}"
    if size == 0:
        return "empty file"
    try:
        with Image.open(path) as image:
            if full or image.mode in WIDE_MODES:  # rare: decoded here, so a scale it cannot take is a skip
                image.load()
                if image.mode in WIDE_MODES:
                    to_rgb(image)
                return None
            return _tail_problem(path, image, size)
    except UnidentifiedImageError:
        return "not an image (content is no known image format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable image: {exc}"


WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})  # single-channel 16/32-bit integer, float


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit images are scaled by 255/65535; 32-bit integer ones likewise, or taken
    as 8-bit when no value exceeds 255; float ones from [0, 1] (x 255) or [0, 255] (as they are).
    Anything else (negative, NaN, beyond those ranges) raises ValueError saying why."""
    if image.mode not in WIDE_MODES:
        return image.convert("RGB")  # a loaded copy, as before (callers may close the file next)
    values = np.asarray(image, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not np.isfinite(values).all() or low < 0:
        raise ValueError(f"{image.mode} image with negative, NaN or infinite values: save it as 8 or 16 bits")
    if image.mode == "F":
        if high > 255:
            raise ValueError(f"float image with values up to {high:g}, beyond [0, 1] and [0, 255]: cannot tell its scale; "
                             "save it as 8 or 16 bits")
        scale = 255.0 if high <= 1.0 else 1.0
    elif image.mode == "I" and high <= 255:
        scale = 1.0
    elif high <= 65535:
        scale = 255.0 / 65535.0
    else:
        raise ValueError(f"32-bit image with values up to {high:g}, beyond 16 bits: save it as 8 or 16 bits")
    grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")  # uint8 (H, W): mode L
