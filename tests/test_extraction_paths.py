"""The fast extraction path gives the numbers of the plain one: split preprocessing, pixel cache,
batch-size search, model preparation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trees
from PIL import Image

from hemabench.datasets.records import make_records
from hemabench.embeddings import extract_embeddings
from hemabench.embeddings.accel import choose_batch_size, conv_heavy, largest_fitting, prepare_model
from hemabench.embeddings.cache import CHUNK_SIZE
from hemabench.embeddings.pixels import split_transform
from hemabench.encoders import load_encoder
from hemabench.errors import HemabenchError


@pytest.mark.parametrize("encoder", ["dinobloom-s", "resnet50", "handcrafted", "ctranspath"])
def test_split_preprocessing_is_bit_identical_to_the_whole_transform(encoder, tmp_path):
    """uint8 pixels in workers + normalisation on the batch == the encoder's one-piece transform."""
    from hemabench.encoders.build import make_transform
    from hemabench.encoders.spec import ENCODERS

    transform = make_transform(ENCODERS.get(encoder))
    split = split_transform(transform)
    assert split is not None
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(363, 360), (250, 250),
                                                                                          (460, 700), (144, 144)]]
    images += [images[0].convert("L"), images[1].convert("RGBA"), images[2].convert("P")]
    for image in images:
        whole = transform(image)
        pixels = split.pixels(image)
        assert pixels.dtype == torch.uint8
        assert torch.equal(split.normalise(pixels[None])[0], whole)


def test_transforms_that_cannot_be_split_are_kept_whole():
    from torchvision.transforms import v2

    assert split_transform(v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])) is None
    assert split_transform(lambda image: image) is None


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """A chunk and a bit of 40x40 cell-like images, one truncated."""
    base = tmp_path_factory.mktemp("cells")
    rows = []
    for i in range(CHUNK_SIZE + 21):
        label = "AB"[i % 2]
        path = trees.write_image(base / label / f"{label}_{i:04d}.jpg", fmt="JPEG", seed=i)
        rows.append({"path": str(path.relative_to(base)), "label": label})
    trees.write_truncated(base / "A" / "A_0000.jpg")
    return base, make_records(rows)


def embed(cells, encoder, cache, **kwargs):
    root, records = cells
    return extract_embeddings(encoder, root, records, cache_base=cache / "embeddings", pixel_base=cache / "pixels",
                              progress=False, workers=0, **kwargs)


def test_pixel_cache_decodes_each_image_once_for_all_encoders_and_changes_nothing(cells, tmp_path, monkeypatch):
    first, second = load_encoder("handcrafted"), load_encoder("handcrafted")
    plain, _ = embed(cells, first, tmp_path / "plain")
    cached, stats = embed(cells, first, tmp_path / "px", pixel_cache=True)
    assert stats.settings["pixel_cache"] and len(list((tmp_path / "px" / "pixels").glob("*/chunk_*.npy"))) == 2
    np.testing.assert_array_equal(np.asarray(plain.features), np.asarray(cached.features))
    assert cached.failed == plain.failed and list(cached.failed) == ["A/A_0000.jpg"]

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    second.weights_sha256 = "another"  # a different encoder (new embedding cache entry), same geometry
    again, stats = embed(cells, second, tmp_path / "px", pixel_cache=True)
    assert stats.images_forwarded == len(cells[1]) and opened == []  # nothing decoded
    np.testing.assert_array_equal(np.asarray(again.features), np.asarray(plain.features))
    assert again.failed == plain.failed and not again.valid[cells[1]["path"].tolist().index("A/A_0000.jpg")]


def test_pixel_cache_chunks_written_before_a_crash_are_reused(cells, tmp_path):
    encoder = load_encoder("handcrafted")

    def crash(chunk):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed(cells, encoder, tmp_path, pixel_cache=True, on_chunk=crash)
    assert len(list((tmp_path / "pixels").glob("*/chunk_*.npy"))) == 1
    resumed, stats = embed(cells, encoder, tmp_path, pixel_cache=True)
    assert stats.images_forwarded == len(cells[1]) - CHUNK_SIZE
    plain, _ = embed(cells, encoder, tmp_path / "plain")
    np.testing.assert_array_equal(np.asarray(resumed.features), np.asarray(plain.features))


def out_of_memory_above(limit: int, calls: list[int]):
    def trial(n: int) -> None:
        calls.append(n)
        if n > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return trial


@pytest.mark.parametrize("fits, expected", [(1000, 256), (256, 256), (100, 64), (8, 8), (5, 4), (1, 1)])
def test_batch_size_search_finds_the_largest_power_of_two_that_fits(fits, expected):
    calls: list[int] = []
    assert largest_fitting(out_of_memory_above(fits, calls), limit=256) == expected
    assert len(calls) <= 8


def test_batch_size_search_reports_a_model_too_large_and_passes_other_errors_on():
    with pytest.raises(HemabenchError, match="does not fit"):
        largest_fitting(out_of_memory_above(0, []), limit=256)

    def broken(n):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        largest_fitting(broken, limit=256)


def test_batch_size_on_cpu_and_when_given():
    runner = prepare_model(torch.nn.Flatten(), torch.device("cpu"))
    sample = torch.zeros(3, 8, 8)
    assert choose_batch_size("auto", runner, sample, CHUNK_SIZE) == 64
    assert choose_batch_size(500, runner, sample, CHUNK_SIZE) == CHUNK_SIZE
    assert choose_batch_size(12, runner, sample, CHUNK_SIZE) == 12


def test_channels_last_only_for_convolutional_networks_on_cuda():
    resnet, vit = load_encoder("resnet18-random").model, load_encoder("vits14-random").model
    assert conv_heavy(resnet) and not conv_heavy(vit)
    runner = prepare_model(resnet, torch.device("cpu"))
    assert runner.describe() == {"device": "cpu", "autocast": "off", "channels_last": False, "compiled": False}


def test_batch_size_changes_no_embedding(cells, tmp_path):
    encoder = load_encoder("handcrafted")
    a, stats_a = embed(cells, encoder, tmp_path / "a", batch_size=64)
    b, stats_b = embed(cells, encoder, tmp_path / "b", batch_size=256)
    assert (stats_a.batch_size, stats_b.batch_size) == (64, 256)
    np.testing.assert_allclose(np.asarray(a.features, dtype=np.float32), np.asarray(b.features, dtype=np.float32),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_matches_cpu(cells, tmp_path):  # pragma: no cover - runs where a GPU is
    encoder = load_encoder("resnet18-random")
    cpu, _ = embed(cells, encoder, tmp_path / "cpu", device="cpu")
    gpu, stats = embed(cells, load_encoder("resnet18-random"), tmp_path / "gpu", device="cuda", pixel_cache=True)
    assert stats.settings["autocast"] == "bfloat16" and stats.settings["channels_last"]
    cos = (np.asarray(cpu.features, np.float32) * np.asarray(gpu.features, np.float32)).sum(1) / (
        np.linalg.norm(np.asarray(cpu.features, np.float32), axis=1) * np.linalg.norm(np.asarray(gpu.features, np.float32), axis=1))
    assert cos.min() > 0.99


@pytest.mark.slow
def test_compiled_encoder_gives_the_embeddings_of_the_eager_one(cells, tmp_path):
    """``--compile`` (inductor, here on CPU) changes speed, not the features beyond float noise."""
    from test_embeddings import TinyEncoder

    eager, _ = embed(cells, TinyEncoder(), tmp_path / "eager", batch_size=32)
    compiled, stats = embed(cells, TinyEncoder(), tmp_path / "compiled", batch_size=32, compile=True)
    assert stats.settings["compiled"]
    np.testing.assert_allclose(np.asarray(compiled.features, np.float32), np.asarray(eager.features, np.float32),
                               rtol=2e-3, atol=2e-3)
