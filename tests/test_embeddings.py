"""Embedding cache: content-addressed, resumable to identical numbers, zero work when cached."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import trees
from torchvision.transforms import v2

from hemabench.datasets.records import make_records
from hemabench.embeddings import extract_embeddings, list_entries, remove_entries
from hemabench.embeddings.cache import CHUNK_SIZE


@dataclass(frozen=True)
class TinySpec:
    name: str = "tiny"
    arch: str = "tests:tiny"
    embedding: str = "avgpool"
    embed_dim: int = 8
    arch_kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch}


class TinyEncoder:
    """A seeded conv net with the LoadedEncoder interface."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.spec = TinySpec()
        self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                         torch.nn.Flatten())
        self.transform = v2.Compose([v2.PILToTensor(), v2.Resize((16, 16)), v2.ToDtype(torch.float32, scale=True)])
        self.weights_sha256 = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in self.model.parameters())).hexdigest()
        self.weights_source = f"random seed {seed}"
        self.preprocessing = {"size": 16}


@pytest.fixture
def dataset(tmp_path):
    base = tmp_path / "data"
    rows = []
    for i in range(2 * CHUNK_SIZE + 37):
        label = "AB"[i % 2]
        trees.write_image(base / label / f"{label}_{i:05d}.png", seed=i)
        rows.append({"path": f"{label}/{label}_{i:05d}.png", "label": label})
    return base, make_records(rows), tmp_path / "cache"


def extract(dataset, encoder=None, **kwargs):
    root, records, cache = dataset
    return extract_embeddings(encoder or TinyEncoder(), root, records, cache_base=cache, progress=False,
                              batch_size=32, workers=0, **kwargs)


def test_second_extraction_comes_from_the_cache_with_zero_forward_passes(dataset):
    first, stats = extract(dataset)
    assert stats.images_forwarded == len(first.paths) and not stats.from_cache
    second, again = extract(dataset)
    assert again.images_forwarded == 0 and again.from_cache
    np.testing.assert_array_equal(np.asarray(first.features), np.asarray(second.features))
    assert first.features.dtype == np.float16 and first.paths == list(dataset[1]["path"])


def test_features_equal_a_direct_forward_pass(dataset):
    root, records, _ = dataset
    encoder = TinyEncoder()
    embeddings, _ = extract(dataset, encoder)
    from PIL import Image

    with torch.no_grad():
        batch = torch.stack([encoder.transform(Image.open(root / p).convert("RGB")) for p in records["path"][:5]])
        direct = encoder.model(batch).numpy().astype(np.float16)
    np.testing.assert_array_equal(np.asarray(embeddings.features[:5]), direct)


def test_killed_extraction_resumes_to_identical_embeddings(dataset):
    reference, _ = extract(dataset)
    remove_entries(keys=[reference.key], base=dataset[2])

    def crash_after_first_chunk(chunk):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(dataset, on_chunk=crash_after_first_chunk)
    (partial,) = list_entries(dataset[2])
    assert partial["state"] == "incomplete (resumable)"
    resumed, stats = extract(dataset)
    assert stats.images_forwarded == len(reference.paths) - CHUNK_SIZE  # the finished chunk is not redone
    np.testing.assert_array_equal(np.asarray(resumed.features), np.asarray(reference.features))


def test_key_changes_with_weights_and_records(dataset):
    root, records, cache = dataset
    a, _ = extract(dataset)
    b, _ = extract(dataset, TinyEncoder(seed=1))
    c, _ = extract_embeddings(TinyEncoder(), root, records.iloc[:-1], cache_base=cache, progress=False, workers=0)
    (root / records["path"].iloc[0]).write_bytes(trees.image_bytes("PNG", seed=1234, size=20))  # same name, new content
    d, _ = extract(dataset)
    assert len({a.key, b.key, c.key, d.key}) == 4


def test_broken_image_is_marked_invalid_not_fatal(dataset):
    root, records, _ = dataset
    broken = records["path"].iloc[3]
    Path(root / broken).write_bytes(b"not a png")
    embeddings, _ = extract(dataset)
    assert not embeddings.valid[3] and embeddings.valid.sum() == len(records) - 1
    assert broken in embeddings.failed and embeddings.failed[broken].startswith("failed to decode")


def test_cache_ls_and_rm(dataset):
    extract(dataset)
    (entry,) = list_entries(dataset[2])
    assert entry["n"] == len(dataset[1]) and entry["dim"] == 8 and entry["encoder"] == "tiny"
    assert remove_entries(encoder="tiny", base=dataset[2]) == [entry["key"]]
    assert list_entries(dataset[2]) == []


def test_a_second_process_finishing_the_same_entry_stands_down(dataset):
    """Two extractions of one entry at once: whoever assembles second finds the chunks gone and the
    entry complete, and returns it instead of failing."""
    from hemabench.embeddings.cache import CacheEntry

    first, stats = extract(dataset)
    entry = CacheEntry(stats.key, dataset[2])
    features = np.asarray(first.features).copy()
    entry.assemble(first.paths, 3, 8, "float16", {})  # chunks already removed by the first process
    np.testing.assert_array_equal(np.asarray(entry.load().features), features)
    assert not (entry.dir / "chunks").exists()
    entry.dir.joinpath("meta.json").unlink()
    with pytest.raises(FileNotFoundError):  # an incomplete entry with its chunks missing is still an error
        entry.assemble(first.paths, 3, 8, "float16", {})
