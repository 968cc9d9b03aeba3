"""The handcrafted baseline as an encoder: same interface, features computed rather than learned.

It receives the same normalised tensor batch as every other encoder, undoes the
normalisation back to 8-bit RGB and calls ``hemabench.features.handcrafted`` per image,
so extraction, caching and probing need no special case for it.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import torch
from torch import nn

from hemabench.encoders.spec import EncoderSpec
from hemabench.errors import HemabenchError

VERSION_NAMES = ("HANDCRAFTED_VERSION", "FEATURES_VERSION", "VERSION", "__version__")


class HandcraftedEncoder(nn.Module):
    """Tensor batch [B,3,H,W] (normalised with the spec's mean/std) -> features [B, HANDCRAFTED_DIM]."""

    def __init__(self, mean, std, features, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.features, self.num_features = features, dim

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = ((batch.float() * self.std + self.mean) * 255).round().clamp(0, 255).to(torch.uint8)
        images = pixels.permute(0, 2, 3, 1).cpu().numpy()
        rows = [np.asarray(self.features(np.ascontiguousarray(image)), dtype=np.float32) for image in images]
        out = np.stack(rows) if rows else np.zeros((0, self.num_features), dtype=np.float32)
        return torch.from_numpy(out).to(batch.device)


def feature_code_version(module) -> str:
    """The feature code's declared version string, else a digest of its source (changes with the code)."""
    for name in VERSION_NAMES:
        if isinstance(getattr(module, name, None), (str, int)):
            return f"{module.__name__} {getattr(module, name)}"
    source = inspect.getsource(module).encode()
    return f"{module.__name__} source-sha256:{hashlib.sha256(source).hexdigest()}"


def build_handcrafted(spec: EncoderSpec) -> tuple[nn.Module, str, str]:
    """(model, weights_sha256, weights_source) for the handcrafted spec."""
    try:
        from hemabench.features import handcrafted as module
    except ImportError as exc:
        raise HemabenchError(f"encoder {spec.name!r} needs hemabench.features.handcrafted: {exc}") from None
    dim = int(module.HANDCRAFTED_DIM)
    if dim != spec.embed_dim:
        raise HemabenchError(f"encoder {spec.name!r}: the feature code gives {dim} features, "
                             f"its spec says embed_dim {spec.embed_dim}")
    version = feature_code_version(module)
    model = HandcraftedEncoder(spec.mean, spec.std, module.handcrafted_features, dim)
    return model, hashlib.sha256(version.encode()).hexdigest(), f"computed features ({version})"
