"""Embedding-cache integrity (issue 14): altered, truncated or bit-flipped cache files are never
served; a bad chunk is recomputed, a bad entry rebuilt, each with a warning naming it; two
extractions of one entry at once do not race (the second waits and reuses)."""

from __future__ import annotations

import threading
import time

import numpy as np
from test_embeddings import TinyEncoder, dataset, extract  # noqa: F401 - the fixture is reused

from hemabench.embeddings.cache import CacheEntry
from hemabench.embeddings.integrity import entry_lock


def _entry(dataset, stats) -> CacheEntry:  # noqa: F811
    return CacheEntry(stats.key, dataset[2])


def test_altered_features_are_rebuilt_not_served(dataset, capsys):  # noqa: F811
    first, stats = extract(dataset)
    reference = np.array(first.features)
    path = _entry(dataset, stats).dir / "features.npy"
    values = np.load(path, mmap_mode="r+")
    values[3, 2] = np.inf  # same size, different bytes
    values.flush()
    del values, first
    again, stats2 = extract(dataset)
    assert not stats2.from_cache and stats2.images_forwarded == len(reference)
    assert np.array_equal(np.asarray(again.features), reference)
    assert f"cache entry {path.parent}: features.npy does not match its recorded sha256" in capsys.readouterr().err


def test_truncated_entry_is_rebuilt(dataset, capsys):  # noqa: F811
    first, stats = extract(dataset)
    reference = np.array(first.features)
    del first
    path = _entry(dataset, stats).dir / "features.npy"
    path.write_bytes(path.read_bytes()[:-100])
    again, stats2 = extract(dataset)
    assert not stats2.from_cache and np.array_equal(np.asarray(again.features), reference)
    assert "features.npy has" in capsys.readouterr().err


def test_bit_flipped_chunk_is_recomputed(dataset, capsys):  # noqa: F811
    encoder = TinyEncoder()
    full, _ = extract(dataset, encoder)
    reference = np.array(full.features)
    entry_key = _chunk_run(dataset, encoder)  # a run that stopped before assembling leaves its chunks
    chunk = CacheEntry(entry_key, dataset[2]).chunk_path(0)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    resumed, stats = extract(dataset, encoder)
    assert stats.images_forwarded == 256  # only the bad chunk
    assert np.array_equal(np.asarray(resumed.features), reference)
    assert f"cache chunk {chunk} does not match its recorded sha256" in capsys.readouterr().err


class _Stop(Exception):
    pass


def _stop_after(n: int):
    def hook(chunk: int) -> None:
        if chunk + 1 >= n:
            raise _Stop
    return hook


def _chunk_run(dataset, encoder) -> str:  # noqa: F811
    """Extract all chunks but stop before assembly; returns the entry key."""
    import shutil

    from hemabench.datasets.sources import records_digest
    from hemabench.embeddings.cache import cache_key
    from hemabench.embeddings.extract import encoder_identity

    root, records, cache = dataset
    key = cache_key(encoder_identity(encoder), records_digest(root, records["path"]), "float16")
    entry = CacheEntry(key, cache)
    shutil.rmtree(entry.dir, ignore_errors=True)
    try:
        extract(dataset, encoder, on_chunk=_stop_after(3))
    except _Stop:
        pass
    assert not entry.complete and entry.chunk_path(0).is_file()
    return key


def test_second_extraction_waits_for_the_first_and_reuses_it(dataset, tmp_path):  # noqa: F811
    _, stats = extract(dataset)
    entry = _entry(dataset, stats)
    finished = tmp_path / "finished-entry"
    entry.dir.rename(finished)
    result: dict = {}
    with entry_lock(entry.dir):  # a first extraction holds the entry...
        worker = threading.Thread(target=lambda: result.update(out=extract(dataset)))
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive()  # ...the second waits for it
        finished.rename(entry.dir)  # the first completes its entry and lets go
    worker.join(60)
    embeddings, stats2 = result["out"]
    assert stats2.from_cache and stats2.images_forwarded == 0  # reused, not recomputed
