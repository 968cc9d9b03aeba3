"""Acquisition perturbations (hemabench/images/perturb.py): deterministic, identity at 0, stronger with severity."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hemabench.images.perturb import FAMILIES, LEVELS, PERTURBATION_VERSION, SEVERITIES, parameters, perturb

CELLS = sorted((Path(__file__).resolve().parents[1] / "hemabench" / "data" / "acevedo_mini").rglob("*.jpg"))[::40]


def _load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _high_frequency_energy(image: Image.Image) -> float:
    """Mean squared discrete Laplacian of the grey image."""
    g = _pixels(image).mean(axis=2)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float((lap ** 2).mean())


def test_every_family_has_five_documented_severities():
    assert len(FAMILIES) == 6 and LEVELS == 5
    assert all(len(levels) == LEVELS for levels in SEVERITIES.values())
    assert parameters("defocus", 3) == {"sigma": 1.5} and parameters("jpeg", 5) == {"quality": 10}
    assert parameters("noise", 0) == {}
    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    for family, levels in SEVERITIES.items():  # the page prints every value the code uses
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{family}`"))
        for level in levels:
            for value in level.values():
                assert f"{value:g}" in row, (family, value)
    assert f"version {PERTURBATION_VERSION}" in doc


@pytest.mark.parametrize("family", FAMILIES)
def test_severity_zero_is_the_image_itself(family):
    image = _load(CELLS[0])
    assert np.array_equal(_pixels(perturb(image, family, 0, "x.jpg")), _pixels(image))


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_per_image_and_different_between_images(family):
    image = _load(CELLS[0])
    a = perturb(image, family, 3, "basophil/BA_1.jpg")
    assert np.array_equal(_pixels(a), _pixels(perturb(image.copy(), family, 3, "basophil/BA_1.jpg")))
    assert a.size == image.size and a.mode == "RGB"
    assert not np.array_equal(_pixels(a), _pixels(image))  # severity 3 changes the pixels
    if family not in ("defocus", "jpeg"):  # random parts are drawn per image id
        others = [_pixels(perturb(image, family, 3, f"basophil/BA_{i}.jpg")) for i in range(2, 6)]
        assert any(not np.array_equal(_pixels(a), o) for o in others)


@pytest.mark.parametrize("path", CELLS, ids=lambda p: p.name)
def test_blur_removes_high_frequencies_monotonically(path):
    image = _load(path)
    energy = [_high_frequency_energy(perturb(image, "defocus", s, path.name)) for s in range(LEVELS + 1)]
    assert all(a > b for a, b in zip(energy, energy[1:])), energy


@pytest.mark.parametrize("family", ["stain", "illumination", "noise", "jpeg", "defocus"])
def test_distance_from_the_clean_image_grows_with_severity(family):
    """Mean over cells of the mean absolute pixel change, strictly increasing from severity 1 to 5."""
    change = np.zeros(LEVELS)
    for path in CELLS:
        image = _load(path)
        for s in range(1, LEVELS + 1):
            change[s - 1] += np.abs(_pixels(perturb(image, family, s, path.name)) - _pixels(image)).mean()
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_noise_variance_follows_the_poisson_gaussian_model():
    flat = Image.new("RGB", (256, 256), (100, 100, 100))
    p = parameters("noise", 4)
    out = _pixels(perturb(flat, "noise", 4, "flat.jpg"))
    expected = np.sqrt(p["gain"] * 100 + p["read"] ** 2)  # independent of the code: the model's std
    assert abs(out.std() - expected) / expected < 0.03
    assert abs(out.mean() - 100) < 0.5


def test_stain_jitter_moves_optical_density_along_the_stain_vectors():
    """Only a shift (alpha 0): every pixel's optical density moves by the same vector, a combination of
    the three Ruifrok-Johnston stain vectors with coefficients within +-beta."""
    from hemabench.images import perturb as module

    image = Image.new("RGB", (8, 8), (180, 120, 200))
    out = module._stain(image, {"alpha": 0.0, "beta": 0.1}, np.random.default_rng(3))
    od = lambda x: -np.log(np.maximum(_pixels(x), 1.0) / 255.0)  # noqa: E731
    shift = (od(out) - od(image)).reshape(-1, 3).mean(axis=0)
    stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    coefficients = np.linalg.solve(stains.T, shift)
    assert np.all(np.abs(coefficients) <= 0.1 + 0.01) and np.abs(coefficients).max() > 0.01


def test_jpeg_matches_pil_at_the_level_quality():
    image = _load(CELLS[1])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=30)
    with Image.open(io.BytesIO(buffer.getvalue())) as expected:
        assert np.array_equal(_pixels(perturb(image, "jpeg", 4, "a.jpg")), _pixels(expected.convert("RGB")))


def test_bad_family_or_severity_is_a_clear_error():
    image = Image.new("RGB", (4, 4))
    with pytest.raises(ValueError, match="unknown perturbation family 'blur'; defined: stain"):
        perturb(image, "blur", 1, "a")
    with pytest.raises(ValueError, match="severity must be an integer from 0 to 5, got 6"):
        perturb(image, "noise", 6, "a")
