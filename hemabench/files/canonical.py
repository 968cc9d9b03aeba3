"""The canonical JSON of a value and its sha256: the one definition behind every hash or
comparison of structured data (a whole result, a parameter set, a cache key).

Canonical means sorted keys and non-JSON values written as ``str``. Results are hashed in the
compact form (no spaces: ``submissions.ledger.result_sha256``, the maintainers' ledger). Cache keys and the
site's parameter-set names were first computed with ``json``'s default ``", "``/``": "``
separators and keep them (``spaced=True``), so existing caches and page addresses stay valid.
"""

from __future__ import annotations

import hashlib
import json


def canonical_json(value, *, spaced: bool = False) -> str:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, sort_keys=True, separators=separators, default=str, allow_nan=True)


def canonical_sha256(value, *, spaced: bool = False) -> str:
    """Hex sha256 of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value, spaced=spaced).encode()).hexdigest()


def same_json(a, b) -> bool:
    """Equal as JSON data (key order ignored): a parameter compared with its default."""
    return canonical_json(a) == canonical_json(b)
