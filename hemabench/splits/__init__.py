"""Standardized, versioned, fingerprinted splits."""

from hemabench.splits.catalog import get_rule, split_names
from hemabench.splits.materialise import MaterialisedSplit, fingerprint
from hemabench.splits.rules import SplitRule

__all__ = ["MaterialisedSplit", "SplitRule", "fingerprint", "get_rule", "split_names"]
