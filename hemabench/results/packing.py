"""How stored class probabilities are written: a plain list, or a packed blob when large.

Small results keep ``proba`` as rows of numbers rounded to ``PROBA_DECIMALS`` (readable,
diff-able). Above ``PACK_ABOVE`` numbers (a full Matek bone-marrow probe: ~34,000 test cells
x 21 classes, plus its calibration slice) that would make a result tens of MB, so they are
stored inline as float16 (3 significant digits; 6e-8 smallest), zlib-compressed, base64,
with the sha256 of the raw float16 bytes. ``proba_array`` reads either form; a blob whose
hash, shape or size disagrees is refused (and decompression never outgrows the stated shape).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib

import numpy as np

PROBA_DECIMALS = 6  # list form: probabilities rounded to this many decimals
PACK_ABOVE = 200_000  # numbers (cells x classes) above which probabilities are packed
ENCODING = "float16-zlib-base64"


def pack_proba(proba) -> list | dict:
    proba = np.asarray(proba, dtype=float)
    if proba.size <= PACK_ABOVE:
        return np.round(proba, PROBA_DECIMALS).tolist()
    raw = proba.astype("<f2").tobytes()
    return {"encoding": ENCODING, "shape": list(proba.shape), "sha256": hashlib.sha256(raw).hexdigest(),
            "data": base64.b64encode(zlib.compress(raw, 9)).decode("ascii")}


def proba_array(value) -> np.ndarray:
    """(cells, classes) float64 from either stored form."""
    if not isinstance(value, dict):
        return np.asarray(value, dtype=float)
    shape = value.get("shape")
    if value.get("encoding") != ENCODING or not (isinstance(shape, list) and len(shape) == 2 and
                                                all(isinstance(s, int) and 0 <= s < 10**8 for s in shape)):
        raise ValueError(f"packed probabilities need encoding {ENCODING!r} and a 2-d integer shape")
    expected = 2 * shape[0] * shape[1]
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(str(value.get("data", "")), validate=True), expected + 1)
    except (binascii.Error, zlib.error) as exc:
        raise ValueError(f"packed probabilities are not valid base64/zlib: {exc}") from None
    if len(raw) != expected or hashlib.sha256(raw).hexdigest() != value.get("sha256"):
        raise ValueError("packed probabilities do not match their stated shape and sha256")
    return np.frombuffer(raw, dtype="<f2").reshape(shape).astype(float)
