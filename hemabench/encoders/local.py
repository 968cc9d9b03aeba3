"""``local:DIR`` encoders: a folder written by ``hemabench pretrain`` (or by hand) is an encoder.

``DIR/encoder.yaml`` is a spec in the schema of ``hemabench/encoders/specs/*.yaml``; its
``weights`` entry ``local: model.safetensors`` names the weight file, relative to DIR.
``--weights PATH`` still takes precedence, as for registered encoders.

Naming: the encoder is called ``local-<folder name>`` whatever the YAML says, with every
character outside ``[A-Za-z0-9._-]`` replaced by ``-`` (leading/trailing ``-`` and ``.``
dropped), so the name is always one valid path segment of ``<out>/<encoder>/<task>/``. It
follows the folder: a renamed folder is a new name. Two folders with the same last
component share a name; results record the weights' sha256 and are recomputed, never
reused, when the weights differ.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hemabench.encoders.build import LoadedEncoder
from hemabench.encoders.build import load_encoder as load_registered
from hemabench.encoders.spec import EncoderSpec, SpecError, spec_from_dict
from hemabench.errors import HemabenchError
from hemabench.files.untrusted import UntrustedInput, load_yaml

PREFIX = "local:"
SPEC_FILE = "encoder.yaml"
WEIGHTS_FILE = "model.safetensors"


def is_local(name: object) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def local_encoder_name(folder: str | os.PathLike) -> str:
    """``local-<folder name>``, made safe as a single path segment."""
    base = Path(folder).expanduser().resolve().name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "root"
    return f"local-{safe}"


def local_folder(name: str) -> Path:
    folder = Path(name[len(PREFIX):] if is_local(name) else name).expanduser()
    if not (folder / SPEC_FILE).is_file():
        raise HemabenchError(f"encoder {name!r}: {folder / SPEC_FILE} does not exist; a local encoder is a folder "
                             f"written by `hemabench pretrain --out DIR` (an {SPEC_FILE} spec beside its weights)")
    return folder


def local_spec(name: str) -> tuple[EncoderSpec, Path]:
    """The spec of ``local:DIR`` (named after DIR) and its default weight file."""
    folder = local_folder(name)
    path = folder / SPEC_FILE
    try:
        data = load_yaml(path, mapping=True)
    except UntrustedInput as exc:
        raise SpecError(f"encoder spec {exc}") from None
    spec = spec_from_dict({**data, "name": local_encoder_name(folder)}, source=str(path))
    files = [s.filename for s in spec.weights if s.kind == "local"]
    if not files:
        raise SpecError(f"encoder spec {path}: a local encoder needs a weights entry 'local: {WEIGHTS_FILE}'")
    return spec, folder / files[0]


def load_encoder(name: str | EncoderSpec, weights: str | os.PathLike | None = None,
                 weights_dir: str | os.PathLike | None = None, device: str = "cpu") -> LoadedEncoder:
    """``load_encoder`` of the registry, plus ``local:DIR`` names (see the module docstring)."""
    if not is_local(name):
        return load_registered(name, weights=weights, weights_dir=weights_dir, device=device)
    spec, default_weights = local_spec(name)
    return load_registered(spec, weights=weights if weights is not None else default_weights, device=device)
