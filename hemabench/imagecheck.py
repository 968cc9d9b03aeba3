"""Cheap checks that a file is a readable image, so one bad file never crashes a run.

The default check reads the header and looks for the format's end marker (JPEG EOI,
PNG IEND, TIFF strips inside the file), which catches truncated downloads without
decoding pixels. ``full=True`` decodes the whole image.
"""

from __future__ import annotations

import os
from pathlib import Path

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
            if full:
                image.load()
                return None
            return _tail_problem(path, image, size)
    except UnidentifiedImageError:
        return "not an image (content is no known image format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable image: {exc}"
