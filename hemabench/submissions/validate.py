"""``hemabench validate``: everything CI checks about a submission before it reaches the leaderboard.

Per submission folder: the layout (safe names, no links, size limits), ``encoder.yaml``
(required metadata filled in, the spec loads and equals the registered one), and per
result: the JSON schema, names matching the layout, the task version, the split and its
fingerprint, safe paths inside the file, every number recomputed from the stored
predictions, and every derived number re-derived from the registered split, the parameters
and the spec (``derived``). Each failure is one line naming the file and the field.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path

from hemabench.files.untrusted import UntrustedInput, load_json, load_yaml
from hemabench.results.result import Result
from hemabench.submissions.derived import derived_problems
from hemabench.submissions.integrity import integrity_problems, verification_problems, weights_problems
from hemabench.submissions.layout import (
    ENCODER_FILE,
    MAX_RESULT_BYTES,
    MAX_TEXT_BYTES,
    README,
    RESULTS,
    Problem,
    layout_problems,
    name_problem,
    safe_relative,
)
from hemabench.submissions.recompute import score_problems, split_problems

SHA256 = re.compile(r"^[0-9a-f]{64}$")
REQUIRED_TEXT = ("submitted_by", "license", "training_data", "statement")
ROOT_FILES = {README, ".gitignore"}


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def _schema_problems(document, shown: str) -> list[Problem]:
    try:
        import jsonschema
    except ImportError:
        return [Problem(shown, "", "cannot check the schema: install jsonschema (pip install 'hemabench[test]')")]
    from hemabench.results.result import schema_validator

    errors = sorted((jsonschema.exceptions.best_match([e]) for e in schema_validator().iter_errors(document)),
                    key=lambda e: list(map(str, e.absolute_path)))  # best_match: the reason inside a oneOf
    return [Problem(shown, "/".join(map(str, e.absolute_path)) or "(top level)", f"schema: {_one_line(e.message)}")
            for e in errors[:10]]


def _one_line(message: str, limit: int = 1000) -> str:
    """A schema message on one line; a long one (a huge offending value) is shortened in the
    middle, so both what was found and what was expected stay readable."""
    text = " ".join(message.split())
    return text if len(text) <= limit else f"{text[:limit // 2]} ... {text[-limit // 2:]}"


def _path_problems(result: Result, shown: str) -> list[Problem]:
    """Paths inside the file (record ids, excluded files, attention cells) must be plain relative paths."""
    found = [(f"excluded[{i}].path", e.get("path")) for i, e in enumerate(result.excluded) if isinstance(e, dict)]
    attention = result.extra.get("attention") or {}
    for patient, info in (attention.items() if isinstance(attention, dict) else []):
        cells = info.get("cells", []) if isinstance(info, dict) else []
        found += [(f'extra.attention["{patient}"].cells[{i}].path', c.get("path") if isinstance(c, dict) else c)
                  for i, c in enumerate(cells)]
    for variant, columns in result.predictions.items():
        found += [(f'predictions["{variant}"].id[{i}]', v) for i, v in enumerate(columns.get("id") or [])]
    bad = [Problem(shown, where, f"{value!r} is not a plain relative path (no '..', no leading '/', no '\\\\')")
           for where, value in found if not safe_relative(value)]
    return bad[:5] + ([Problem(shown, "paths", f"... and {len(bad) - 5} more unsafe paths")] if len(bad) > 5 else [])


def _names(result: Result, shown: str, expect: dict | None) -> list[Problem]:
    values = {"encoder.name": result.encoder, "task": result.task, "dataset": result.dataset}
    problems = [p for f, v in values.items() if (p := name_problem(shown, f, v))]
    for f, wanted in (expect or {}).items():
        if not problems and values[f] != wanted:
            problems.append(Problem(shown, f, f"is {values[f]!r} but the file's place in the layout says {wanted!r}"))
    return problems


def _registry_problems(result: Result, shown: str, meta: dict | None) -> list[Problem]:
    from hemabench.tasks import TASKS

    if result.task not in TASKS:
        return [Problem(shown, "task", f"{result.task!r} is not a registered task")]
    task, problems = TASKS.get(result.task), []
    if result.task_version != task.version:
        problems.append(Problem(shown, "task_version", f"{result.task_version} is not the registered version "
                                f"{task.version}; re-run with this hemabench"))
    if result.main_metric != task.main_metric:
        problems.append(Problem(shown, "main_metric", f"{result.main_metric!r} is not the task's {task.main_metric!r}"))
    if result.main_metric not in result.metrics:
        problems.append(Problem(shown, "metrics", f"has no entry for the main metric {result.main_metric!r}"))
    if meta:
        if result.weights_sha256 != meta.get("weights_sha256"):
            problems.append(Problem(shown, "encoder.weights_sha256", f"{result.weights_sha256} differs from "
                                    f"{ENCODER_FILE}'s weights_sha256 {meta.get('weights_sha256')}"))
        spec = result.encoder_spec
        if isinstance(meta.get("spec"), dict) and meta["spec"] and spec != meta["spec"]:
            keys = sorted(k for k in set(spec) | set(meta["spec"]) if spec.get(k) != meta["spec"].get(k))
            problems.append(Problem(shown, "encoder.spec", f"differs from {ENCODER_FILE}'s spec in {keys}"))
    return problems


def validate_result(path: Path, shown: str, data_root: str | None = None, meta: dict | None = None,
                    expect: dict | None = None) -> list[Problem]:
    """All checks of one result file; later checks run only when earlier ones make them meaningful."""
    if path.is_symlink():
        return [Problem(shown, "", "is a symbolic link")]
    try:
        document = load_json(path, MAX_RESULT_BYTES, shown)
    except UntrustedInput as exc:
        return [Problem(shown, "", str(exc).removeprefix(f"{shown}: "))]
    except OSError as exc:
        return [Problem(shown, "", f"is not readable: {exc.strerror or exc}")]
    problems = _schema_problems(document, shown)
    if problems or not isinstance(document, dict):
        return problems or [Problem(shown, "", "is not a JSON object")]
    result = Result.schema_checked(document, path)
    problems = _names(result, shown, expect) + _path_problems(result, shown)
    if any(p.field in ("task", "dataset") for p in problems):
        return problems
    problems += _registry_problems(result, shown, meta) + weights_problems(result, shown)
    problems += verification_problems(result, shown)
    if any(p.field in ("task", "task_version") for p in problems):
        return problems
    try:
        found = split_problems(result, shown, data_root)
        problems += found
        if not any(p.level == "error" for p in found):  # a wrong split is reported once, not again per fold
            problems += integrity_problems(result, shown)
            problems += derived_problems(result, shown, data_root)
    except Exception as exc:  # an unknown dataset or split rule, or unreadable data
        problems.append(Problem(shown, "split", f"cannot be checked: {exc}"))
    return problems + score_problems(result, shown)


def metadata_problems(folder: Path, shown: str) -> tuple[dict | None, list[Problem]]:
    """encoder.yaml: present, filled in, its spec loads and equals the registered spec."""
    from hemabench.encoders import ENCODERS, SpecError, spec_from_dict

    path, where = folder / ENCODER_FILE, f"{shown}/{ENCODER_FILE}"
    if not path.is_file() or path.is_symlink():
        return None, [Problem(where, "", "is missing; `hemabench submit` writes it")]
    try:
        meta = load_yaml(path, MAX_TEXT_BYTES, where)
    except UntrustedInput as exc:
        return None, [Problem(where, "", str(exc).removeprefix(f"{where}: "))]
    except OSError as exc:
        return None, [Problem(where, "", f"is not readable: {exc.strerror or exc}")]
    if not isinstance(meta, dict):
        return None, [Problem(where, "", "must be a mapping")]
    problems = [p for p in [name_problem(where, "encoder", meta.get("encoder"))] if p]
    if not problems and meta.get("encoder") != folder.name:
        problems.append(Problem(where, "encoder", f"{meta.get('encoder')!r} must equal the folder name {folder.name!r}"))
    if not SHA256.match(str(meta.get("weights_sha256", ""))):
        problems.append(Problem(where, "weights_sha256", "must be the 64-hex-digit sha256 of the weights"))
    submission = meta.get("submission") if isinstance(meta.get("submission"), dict) else {}
    problems += submission_field_problems(meta, where)
    for key in REQUIRED_TEXT:
        value = str(submission.get(key) or "").strip()
        if not value or "TODO" in value:
            problems.append(Problem(where, f"submission.{key}", "is required (still empty or TODO)"))
    if submission.get("not_trained_on_test_splits") is not True:
        problems.append(Problem(where, "submission.not_trained_on_test_splits",
                                "must be true: a statement that the encoder never saw the test splits"))
    if not isinstance(meta.get("spec"), dict):
        return meta, problems + [Problem(where, "spec", f"must be a mapping (the registered spec), not "
                                                        f"{type(meta.get('spec')).__name__}")]
    try:
        spec = spec_from_dict(meta.get("spec") or {}, source=where)
    except (SpecError, TypeError, ValueError, AttributeError) as exc:
        return meta, problems + [Problem(where, "spec", f"does not load: {exc}")]
    if spec.name != meta.get("encoder"):
        problems.append(Problem(where, "spec.name", f"{spec.name!r} differs from encoder {meta.get('encoder')!r}"))
    elif spec.name not in ENCODERS:
        problems.append(Problem(where, "spec", f"{spec.name!r} is not registered: add hemabench/encoders/specs/"
                                               f"{spec.name}.yaml in the same pull request"))
    else:
        registered = ENCODERS.get(spec.name).to_dict()
        changed = sorted(k for k in registered if registered[k] != spec.to_dict().get(k))
        if changed:
            problems.append(Problem(where, "spec", f"differs from the registered spec in {changed}"))
    return meta, problems


def submission_field_problems(meta: dict, where: str) -> list[Problem]:
    """``submission`` is a mapping, its ``date`` an ISO date and ``code_url`` an http(s) address."""
    submission = meta.get("submission")
    if not isinstance(submission, dict):
        return [Problem(where, "submission", f"must be a mapping of the submission fields, not "
                                             f"{type(submission).__name__}")]
    problems = []
    try:
        datetime.date.fromisoformat(str(submission.get("date")))
    except ValueError:
        problems.append(Problem(where, "submission.date", f"{submission.get('date')!r} is not a date (YYYY-MM-DD)"))
    url = submission.get("code_url")
    if url not in (None, "") and not re.match(r"^https?://[^\s]+$", str(url)):
        problems.append(Problem(where, "submission.code_url", f"{str(url)[:80]!r} is not an http(s) address"))
    return problems


def validate_submission(folder: Path, shown: str, data_root: str | None, report: Report) -> None:
    report.problems += layout_problems(folder, shown)
    if not safe_name_of(folder, shown, report):
        return
    meta, problems = metadata_problems(folder, shown)
    report.problems += problems
    results = sorted((folder / RESULTS).glob("*/*.json")) if (folder / RESULTS).is_dir() else []
    if not results:
        report.problems.append(Problem(shown, RESULTS, "holds no result files (results/<task>/<dataset>.json)"))
    for path in results:
        if path.is_symlink() or path.parent.is_symlink():
            continue  # reported by the layout check
        report.files += 1
        expect = {"encoder.name": folder.name, "task": path.parent.name, "dataset": path.stem}
        report.problems += validate_result(path, f"{shown}/{path.relative_to(folder).as_posix()}", data_root,
                                           meta, expect)


def safe_name_of(folder: Path, shown: str, report: Report) -> bool:
    problem = name_problem(shown, "folder name", folder.name)
    if problem:
        report.problems.append(problem)
    return problem is None and not folder.is_symlink()


def validate_paths(paths: list[str], data_root: str | None = None) -> Report:
    """Each path: a submissions root, one submission folder, or one result file."""
    report = Report()
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            report.problems.append(Problem(raw, "", "is a symbolic link"))
        elif path.is_file():
            report.files += 1
            folder = path.parent.parent.parent
            in_layout = path.parent.parent.name == RESULTS and (folder / ENCODER_FILE).is_file()
            meta = metadata_problems(folder, str(folder))[0] if in_layout else None
            expect = {"encoder.name": folder.name, "task": path.parent.name, "dataset": path.stem} if in_layout else None
            report.problems += validate_result(path, raw, data_root, meta, expect)
        elif (path / ENCODER_FILE).exists() or (path / RESULTS).exists():
            validate_submission(path, raw.rstrip("/"), data_root, report)
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                shown = f"{raw.rstrip('/')}/{child.name}"
                if child.is_dir() or child.is_symlink():
                    validate_submission(child, shown, data_root, report)
                elif child.name not in ROOT_FILES:
                    report.problems.append(Problem(shown, "", "unexpected file; each submission is a folder"))
        else:
            report.problems.append(Problem(raw, "", "does not exist"))
    return report
