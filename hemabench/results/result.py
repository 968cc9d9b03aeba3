"""One result file as a typed object: what every reader of results asks of it, answered in one place.

The JSON (``result.schema.json``) stays the stored form; :class:`Result` wraps it so the runner,
scoring, submissions, leaderboard and sweep ask for ``result.main``, ``result.detail_variant``
or ``result.params`` instead of each parsing ``"<variant>/<metric>"`` strings and reaching
into nested dicts with their own defaults. Every top-level field of the schema has its accessor;
a change is a new Result (``with_encoder_cost``, ``with_verification``); ``document`` is the whole
JSON object for whole-document uses (hashing, comparing, writing). Outside ``hemabench/results/``
no module reads a field by its key (``tests/test_result_access.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_write_text

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")


@cache
def schema_validator():
    """The result schema's validator, read once per process (``Result.schema_errors`` and ``validate``)."""
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
MAX_LOCAL_BYTES = 2**30  # a local result file; submissions have their own, smaller limit
REQUIRED = ("task", "task_version", "dataset", "encoder", "main_metric", "metrics")


class ResultError(HemabenchError):
    """A file that is not a readable hemabench result (the message names the file)."""


@dataclass(frozen=True)
class Score:
    """One metric entry: the mean over folds or repetitions and its intervals."""

    mean: float
    std: float
    values: tuple[float, ...]
    ci95: tuple[float, float]  # interval for the mean
    spread95: tuple[float, float] | None = None  # 2.5-97.5 percentiles of single repetitions

    @classmethod
    def from_dict(cls, entry: dict) -> Score:
        spread = entry.get("spread95")
        return cls(float(entry["mean"]), float(entry["std"]), tuple(float(v) for v in entry["values"]),
                   (float(entry["ci95"][0]), float(entry["ci95"][1])),
                   (float(spread[0]), float(spread[1])) if spread else None)


@dataclass(frozen=True)
class Result:
    """A result file's content (``data``) and, when read from disk, its ``path``."""

    data: dict
    path: Path | None = None

    # -- reading and writing ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data, path: Path | str | None = None) -> Result:
        """The minimum every reader relies on is checked here; the full schema by :meth:`schema_errors`."""
        where = f"{path}: " if path is not None else ""
        if not isinstance(data, dict):
            raise ResultError(f"{where}not a hemabench result (a JSON object expected)")
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise ResultError(f"{where}not a hemabench result (missing {', '.join(missing)})")
        if not isinstance(data["encoder"], dict) or not isinstance(data["metrics"], dict):
            raise ResultError(f"{where}not a hemabench result (encoder and metrics must be objects)")
        if data["main_metric"] not in data["metrics"]:
            raise ResultError(f"{where}not a hemabench result (no entry for its main metric {data['main_metric']!r})")
        return cls(data, Path(path) if path is not None else None)

    @classmethod
    def schema_checked(cls, data: dict, path: Path | str | None = None) -> Result:
        """A document ``result.schema.json`` already accepted (``validate``), wrapped as it is: the
        schema does not ask for an entry of the main metric, and ``validate`` reports its absence
        as one finding among the others instead of stopping at it."""
        return cls(data, Path(path) if path is not None else None)

    @classmethod
    def of(cls, value) -> Result:
        """A Result as is, or a result dict wrapped."""
        return value if isinstance(value, Result) else cls.from_dict(value)

    @classmethod
    def load(cls, path: Path | str) -> Result:
        from hemabench.files.untrusted import UntrustedInput, read_text

        try:
            data = json.loads(read_text(path, MAX_LOCAL_BYTES))  # a regular file only: a FIFO never blocks a run
        except UntrustedInput as exc:
            raise ResultError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise ResultError(f"{path}: not readable JSON ({exc})") from None
        return cls.from_dict(data, path)

    @classmethod
    def read(cls, path: Path | str) -> Result | None:
        """The result at ``path``, or None when there is none (or not a readable one)."""
        try:
            return cls.load(path)
        except ResultError:
            return None

    def write(self, path: Path | str) -> None:
        atomic_write_text(Path(path), json.dumps(self.data, indent=1, default=float))

    def as_written(self) -> Result:
        """The result as :meth:`write` stores it (numpy values as plain JSON numbers), e.g. a fresh
        run's result before it is compared with a stored one."""
        return Result(json.loads(json.dumps(self.data, default=float)), self.path)

    def _with(self, key: str, value) -> Result:
        """A copy with one top-level field set (kept in place where present, else last) or, for
        ``value`` None, removed."""
        data = {k: v for k, v in self.data.items() if k != key or value is not None}
        if value is not None:
            data[key] = value
        return Result(data, self.path)

    def with_encoder_cost(self, cost: dict | None) -> Result:
        """A copy with ``encoder_cost`` set, or without one (None: e.g. a malformed cost not shown)."""
        return self._with("encoder_cost", cost)

    def with_verification(self, verification: dict) -> Result:
        """A copy carrying a ``verification`` block (``hemabench check --reproduce``)."""
        return self._with("verification", verification)

    @property
    def document(self) -> dict:
        """The whole stored JSON object, for code that treats it as one document (hashing it,
        comparing two results field by field, writing it into a submission); never for reading
        one field: each has its accessor below."""
        return self.data

    @property
    def vouched_document(self) -> dict:
        """The whole document but its ``verification`` block: what a verification vouches for."""
        return {k: v for k, v in self.data.items() if k != "verification"}

    def schema_errors(self) -> list[str]:
        """Every place the JSON departs from ``result.schema.json`` (empty: valid)."""
        return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in sorted(schema_validator().iter_errors(self.data), key=lambda e: list(map(str, e.absolute_path)))]

    # -- identity --------------------------------------------------------------------------
    @property
    def schema_version(self):
        return self.data.get("schema_version")

    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def task_version(self):
        return self.data["task_version"]

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"])

    @property
    def encoder(self) -> str:
        return str(self.data["encoder"].get("name"))

    @property
    def weights_sha256(self) -> str | None:
        return self.data["encoder"].get("weights_sha256")

    @property
    def weights_source(self) -> str | None:
        return self.data["encoder"].get("weights_source")

    @property
    def encoder_spec(self) -> dict:
        """The encoder spec the result was computed with ({} where none, or not a mapping)."""
        spec = self.data["encoder"].get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def dataset_info(self) -> dict:
        """What the run recorded about the dataset (source, records; ``custom`` for a user's own folder)."""
        return self.data.get("dataset_info") or {}

    @property
    def metadata(self) -> dict:
        return self.data.get("task_metadata") or {}

    @property
    def params(self) -> dict:
        """The task parameters the result was computed with."""
        return self.metadata.get("params") or {}

    @property
    def split(self) -> dict:
        return self.data.get("split") or {}

    @property
    def source_split(self) -> dict:
        return self.data.get("source_split") or {}

    @property
    def has_source_split(self) -> bool:
        return "source_split" in self.data

    @property
    def panel_splits(self) -> list[dict]:
        """The splits of the further datasets a panel task (blood-shift) used, each like ``source_split``."""
        return self.data.get("panel_splits") or []

    @property
    def split_fingerprints(self) -> list:
        """The split's fingerprint, then the source split's where the task has one, then a panel's."""
        return [self.split.get("fingerprint")] + ([self.source_split.get("fingerprint")]
                                                  if self.has_source_split else []) + \
            [s.get("fingerprint") for s in self.panel_splits]

    @property
    def provenance(self) -> dict:
        return self.data.get("provenance") or {}

    @property
    def bootstrap_seed(self) -> int:
        return int((self.provenance.get("seeds") or {}).get("bootstrap", 0))

    @property
    def encoder_cost(self) -> dict | None:
        """What the encoder cost on the run's device (``hemabench/embeddings/cost.py``), as stored; None
        when not measured."""
        return self.data.get("encoder_cost")

    @property
    def excluded(self) -> list:
        """Files left out of the run, as stored: ``{"path": ..., "reason": ...}`` each."""
        return self.data.get("excluded") or []

    @property
    def trust(self) -> dict:
        """A ``trust`` block ({} where none, or not a mapping); ``{"tier": "paper"}`` marks a published number."""
        trust = self.data.get("trust")
        return trust if isinstance(trust, dict) else {}

    @property
    def verification(self) -> dict | None:
        """The ``verification`` block ``hemabench check --reproduce`` wrote, as stored; None when there is none."""
        return self.data.get("verification")

    # -- numbers ---------------------------------------------------------------------------
    @property
    def main_metric(self) -> str:
        return str(self.data["main_metric"])

    @property
    def main_metric_variant(self) -> str:
        """The variant of the main metric ('svm' of 'svm/balanced_accuracy_auc')."""
        return self.main_metric.rsplit("/", 1)[0]

    @property
    def main_metric_name(self) -> str:
        return self.main_metric.rsplit("/", 1)[1]

    @property
    def detail_variant(self) -> str:
        """The variant whose per-class numbers and confusion matrix the result reports (``Task.detail_variant``
        when it was run; by default the main metric's)."""
        return self.metadata.get("detail_variant") or self.main_metric_variant

    @property
    def metrics(self) -> dict[str, dict]:
        return self.data["metrics"]

    def score(self, key: str) -> Score:
        return Score.from_dict(self.metrics[key])

    @cached_property
    def main(self) -> Score:
        return self.score(self.main_metric)

    @property
    def intervals(self) -> dict[str, dict[str, tuple[float, float]]]:
        """metric -> {"ci95": ..., and "spread95" for repeated runs}."""
        out = {}
        for key in self.metrics:
            score = self.score(key)
            out[key] = {"ci95": score.ci95, **({"spread95": score.spread95} if score.spread95 else {})}
        return out

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.data.get("labels") or []]

    @property
    def variants(self) -> list[str]:
        """Variants with stored predictions."""
        return list(self.data.get("predictions") or {})

    @property
    def predictions(self) -> dict:
        return self.data.get("predictions") or {}

    def variant_predictions(self, variant: str) -> dict | None:
        return self.predictions.get(variant)

    @property
    def per_class(self) -> dict:
        return self.data.get("per_class") or {}

    @property
    def confusion_matrix(self) -> dict:
        return self.data.get("confusion_matrix") or {}

    @property
    def extra(self) -> dict:
        return self.data.get("extra") or {}

    @property
    def max_iter_fits(self) -> tuple[int, int]:
        """(fits that stopped at max_iter, fits recorded) of a probe task; (0, 0) for others."""
        fits = self.extra.get("solver")
        fits = [f for f in fits if isinstance(f, dict)] if isinstance(fits, list) else []
        return sum(str(f.get("status")) == "max_iter" for f in fits), len(fits)

    @property
    def max_iter_note(self) -> str:
        """'max_iter k/n' where probe fits stopped at max_iter (shown beside the number), else ''."""
        stopped, fits = self.max_iter_fits
        return f"max_iter {stopped}/{fits}" if stopped else ""

    def is_current(self, task, fingerprints: list[str], weights_sha256: str) -> bool:
        """Reusable: nothing that determines it (schema, task version and parameters, splits, weights) changed."""
        return self.schema_version == SCHEMA_VERSION and self.task_version == task.version and \
            self.split_fingerprints == fingerprints and self.weights_sha256 == weights_sha256 and \
            self.params == json.loads(json.dumps(task.params))
