"""Embeddings: computed once per (weights, preprocessing, record list), cached by content hash."""

from hemabench.embeddings.cache import CacheEntry, Embeddings, list_entries, remove_entries
from hemabench.embeddings.extract import ExtractionStats, extract_embeddings

__all__ = ["CacheEntry", "Embeddings", "ExtractionStats", "extract_embeddings", "list_entries", "remove_entries"]
