"""Building a ready-to-run encoder from its spec: architecture, weights, read-out, preprocessing.

``load_encoder`` is the one entry point. Models are created under a forked, seeded RNG so
random baselines are identical on every machine and the caller's global RNG is untouched;
weights are loaded with strict key matching after conversion to timm's layout.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from hemabench.encoders.convert import to_state_dict
from hemabench.encoders.spec import ENCODERS, EncoderSpec
from hemabench.encoders.weights import (
    EncoderWeightsInvalid,
    ResolvedWeights,
    file_sha256,
    read_checkpoint,
    resolve_weights,
)
from hemabench.errors import HemabenchError
from hemabench.images.check import to_rgb


@dataclass
class LoadedEncoder:
    spec: EncoderSpec
    model: nn.Module  # eval mode; forward(normalised batch [B,3,H,W]) -> [B, embed_dim]
    transform: Callable[[Image.Image], torch.Tensor]
    weights_sha256: str
    weights_source: str
    preprocessing: dict  # JSON-able; part of the embedding cache key


# -- architectures timm lacks -------------------------------------------------------------------
class ConvStem(nn.Module):
    """CTransPath's convolutional patch embedding, for timm's Swin (which wants NHWC output)."""

    def __init__(self, img_size=224, patch_size=4, in_chans=3, embed_dim=96, norm_layer=None, **_: object) -> None:
        super().__init__()
        if patch_size != 4 or embed_dim % 8:
            raise ValueError("ConvStem needs patch_size 4 and embed_dim divisible by 8")
        size = img_size if isinstance(img_size, (tuple, list)) else (img_size, img_size)
        self.img_size, self.patch_size = tuple(size), (patch_size, patch_size)
        self.grid_size = (size[0] // patch_size, size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        layers: list[nn.Module] = []
        width_in, width_out = in_chans, embed_dim // 8
        for _ in range(2):  # two stride-2 3x3 convs: 4x downsampling, like a patch-4 embedding
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width_out),
                       nn.ReLU(inplace=True)]
            width_in, width_out = width_out, width_out * 2
        layers.append(nn.Conv2d(width_in, embed_dim, kernel_size=1))
        self.proj = nn.Sequential(*layers)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def ctranspath(**kwargs) -> nn.Module:
    """CTransPath (Wang et al. 2022): Swin-T with a convolutional stem. Weights: ctranspath.pth."""
    return timm.create_model("swin_tiny_patch4_window7_224", embed_layer=ConvStem, **kwargs)


# -- read-outs ----------------------------------------------------------------------------------
class TruncatedResNet(nn.Module):
    """A ResNet cut after layer3 and globally average-pooled (1024-d for ResNet50, as DinoBloom's baseline)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool)
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        self.num_features = next(f["num_chs"] for f in resnet.feature_info if f["module"] == "layer3")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.stem(x)))).mean(dim=(2, 3))


def _import(path: str) -> Callable[..., nn.Module]:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise HemabenchError(f"architecture {path!r} cannot be imported: {exc}") from None


def create_architecture(spec: EncoderSpec, weights_follow: bool = False) -> nn.Module:
    """The bare network with its classifier removed and the spec's pooling. ``weights_follow``:
    every parameter is about to be overwritten, so skip timm's (slow) init where it allows."""
    kwargs = {"num_classes": 0, **spec.arch_kwargs}
    if spec.embedding == "cls":
        kwargs.setdefault("global_pool", "token")
    if ":" in spec.arch:
        create = _import(spec.arch)
    elif timm.is_model(spec.arch):
        def create(**kw):
            return timm.create_model(spec.arch, pretrained=False, **kw)
    else:
        raise HemabenchError(f"encoder {spec.name!r}: timm {timm.__version__} has no architecture {spec.arch!r}")
    if weights_follow and "weight_init" not in kwargs:
        try:
            return create(weight_init="skip", **kwargs)
        except TypeError:  # architectures without the option (e.g. ResNet) initialise fast anyway
            pass
    return create(**kwargs)


def apply_readout(spec: EncoderSpec, model: nn.Module) -> nn.Module:
    if spec.embedding == "resnet50-layer3":
        model = TruncatedResNet(model)
    width = getattr(model, "num_features", spec.embed_dim)
    if width != spec.embed_dim:
        raise HemabenchError(f"encoder {spec.name!r}: the network gives {width}-d features, "
                             f"its spec says embed_dim {spec.embed_dim}")
    return model


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Run ``build`` under a private RNG seeded with ``seed``; the global RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over (name, shape, dtype, bytes) of every state-dict tensor, in sorted name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# -- loading weights ----------------------------------------------------------------------------
def _drop_unused_classifier(state: dict, model: nn.Module) -> dict:
    """Pretrained classifier weights are not needed by a headless (num_classes=0) model."""
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    if not classifier or getattr(model, "num_classes", None) != 0:
        return state
    names = [classifier] if isinstance(classifier, str) else list(classifier)
    return {k: v for k, v in state.items() if not any(k.startswith(f"{c}.") for c in names)}


def load_weights_into(model: nn.Module, state: dict, path: Path) -> None:
    """timm's own checkpoint filter for the architecture (pos-embed resizing, DINOv2/Swin key
    conversions), then a strict load that names every missing or unexpected key."""
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    try:
        if filter_fn is not None:
            state = filter_fn(state, model)
        state = _drop_unused_classifier(state, model)
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, AttributeError, KeyError, ValueError) as exc:
        raise EncoderWeightsInvalid(f"weights file {path} does not fit architecture "
                                    f"{type(model).__name__}: {str(exc).strip()[:2000]}") from None
    problems = []
    for label, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            problems.append(f"{label} keys: {shown}")
    if problems:
        raise EncoderWeightsInvalid(f"weights file {path} does not match architecture {type(model).__name__} "
                                    f"after conversion; " + "; ".join(problems))


# -- preprocessing ------------------------------------------------------------------------------
class ToRGB:
    """Grey, palette, RGBA and CMYK images become RGB (a picklable transform for DataLoader workers)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else to_rgb(image)

    def __repr__(self) -> str:
        return "ToRGB()"


def make_transform(spec: EncoderSpec) -> Callable[[Image.Image], torch.Tensor]:
    from timm.data import create_transform

    base = create_transform(input_size=(3, spec.input_size, spec.input_size), is_training=False,
                            interpolation=spec.interpolation, mean=spec.mean, std=spec.std, crop_pct=spec.crop_pct,
                            crop_mode=spec.crop_mode)
    return transforms.Compose([ToRGB(), *base.transforms])


def preprocessing_of(spec: EncoderSpec) -> dict:
    resize = "shorter side, then centre crop" if spec.crop_mode == "center" else "both sides (aspect not kept)"
    return {"input_size": [3, spec.input_size, spec.input_size], "resize": resize, "crop_mode": spec.crop_mode,
            "crop_pct": spec.crop_pct, "interpolation": spec.interpolation, "mean": list(spec.mean), "std": list(spec.std),
            "color": "RGB"}


def check_pinned(spec: EncoderSpec, sha: str, resolved: ResolvedWeights, explicit: bool) -> None:
    """Weights found for a spec that pins sha256s must be one of them (a wrong or corrupted
    download or package file is refused before it is read); a file named with --weights is the
    user's own choice and only noted."""
    pinned = sorted({s.sha256 for s in spec.weights if s.sha256})
    if pinned and sha not in pinned and not explicit:
        fix = "reinstall the package" if resolved.source.startswith("package ") else "delete it to download again"
        raise EncoderWeightsInvalid(f"weights file {resolved.path} has sha256 {sha}, but encoder {spec.name!r} pins "
                                    f"{', '.join(pinned)}: a different or damaged file; {fix}")


# -- the entry point ----------------------------------------------------------------------------
def load_encoder(name: str | EncoderSpec, weights: str | os.PathLike | None = None,
                 weights_dir: str | os.PathLike | None = None, device: str = "cpu") -> LoadedEncoder:
    """Build the encoder ``name`` in eval mode on ``device``, with weights resolved in order:
    ``weights`` (a file), ``weights_dir`` (default ``$HEMABENCH_WEIGHTS`` or ``<cache>/weights``)
    holding ``<name>.safetensors``/``<name>.pth``, the Hugging Face cache, then the hub."""
    spec = name if isinstance(name, EncoderSpec) else ENCODERS.get(name)
    random_source = next((s for s in spec.weights if s.kind == "random"), None)
    if spec.embedding == "handcrafted":
        if weights is not None:
            raise HemabenchError(f"encoder {spec.name!r} is computed, not learned: it takes no --weights")
        from hemabench.encoders.handcrafted import build_handcrafted

        model, sha, source = build_handcrafted(spec)
    elif random_source is not None and weights is None:
        model = seeded(random_source.seed, lambda: apply_readout(spec, create_architecture(spec)))
        sha, source = state_dict_sha256(model), f"random seed {random_source.seed}"
    else:
        resolved = resolve_weights(spec, weights, weights_dir)
        sha, source = file_sha256(resolved.path), resolved.source
        check_pinned(spec, sha, resolved, explicit=weights is not None)
        state, _ = to_state_dict(read_checkpoint(resolved.path), resolved.path)
        network = seeded(0, lambda: create_architecture(spec, weights_follow=True))
        load_weights_into(network, state, resolved.path)
        model = apply_readout(spec, network)
    model.eval().requires_grad_(False)
    return LoadedEncoder(spec=spec, model=model.to(device), transform=make_transform(spec), weights_sha256=sha,
                         weights_source=source, preprocessing=preprocessing_of(spec))
