"""``hemabench leaderboard build``: result files -> a static site that works opened from disk.

No server and no network: pages link to each other with relative paths, figures are SVG
files beside them, the small sorting script and the stylesheet are inlined. Every string
that came from a result or a submission goes through jinja2's autoescaping and into file
names only after ``slug``; attention-cell images are read only from inside a dataset root
the user names (``--data-root``) and are copied as downscaled thumbnails.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jinja2

import hemabench
from hemabench.errors import HemabenchError
from hemabench.leaderboard.clinical import load_cost_models
from hemabench.leaderboard.collect import Board, Entry, anchor, board_href, encoder_href, group_boards, load_entries
from hemabench.leaderboard.context import paper_board_context
from hemabench.leaderboard.downloads import Downloads, board_json, reported_json
from hemabench.leaderboard.index import index_context
from hemabench.leaderboard.manifest import prepare_out, write_manifest
from hemabench.leaderboard.pages import board_context, encoder_context
from hemabench.leaderboard.ranking import tie_ranks
from hemabench.leaderboard.reported import for_board, pairs, paper_boards
from hemabench.leaderboard.tables import short_hash, words
from hemabench.leaderboard.tidy import board_rows, reported_rows, tidy_csv
from hemabench.published.values import load_reported
from hemabench.submissions.trust import ranked

HERE = Path(__file__).resolve().parent
OWNED = ("index.html", "tasks", "encoders", "figures", "thumbs", "downloads")  # what a rebuild replaces in --out
THUMB_SIZE = 96


@dataclass
class BuildReport:
    out: Path
    results: int = 0
    boards: int = 0
    pages: int = 0
    figures: int = 0
    thumbnails: int = 0
    downloads: int = 0
    reported: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class Site:
    """Writes figures and thumbnails under the output folder; returns links relative to a sub-page."""

    def __init__(self, out: Path, data_root: str | None, report: BuildReport, figures: bool = True) -> None:
        self.out, self.data_root, self.report, self.figures = out, data_root, report, figures
        self._roots: dict[str, Path | None] = {}
        self.custom_sources: dict[str, str] = {}  # custom-<name> -> folder:/hf-disk: text, from local runs only
        self._custom: dict[str, object] = {}

    def figure(self, name: str, draw, *args) -> str | None:
        if not self.figures:
            return None
        try:
            draw(self.out / "figures" / name, *args)
        except Exception as exc:  # a figure must never cost the page its numbers
            self.report.warnings.append(f"figure {name} not drawn: {exc!r}")
            return None
        self.report.figures += 1
        return f"../figures/{name}"

    def _root(self, dataset: str) -> Path | None:
        if dataset not in self._roots:
            self._roots[dataset] = None
            try:
                from hemabench.datasets import DATASETS, find_root

                spec = DATASETS.get(dataset)
                if spec.synthetic:  # shown when already generated; a site build never generates data
                    folder = spec.generated_folder()
                    self._roots[dataset] = spec.locate(folder).resolve() if folder.is_dir() else None  # its anchor
                else:
                    self._roots[dataset] = find_root(spec, data_root=self.data_root).resolve()
            except Exception as exc:  # unknown or missing dataset: paths are shown instead
                self.report.warnings.append(f"no thumbnails for {dataset}: {exc}".splitlines()[0])
        return self._roots[dataset]

    def _custom_images(self, dataset: str):
        """A user dataset's images (files or arrow rows), only where it lies inside --data-root."""
        if dataset not in self._custom:
            self._custom[dataset] = None
            text = self.custom_sources[dataset]
            kind, _, location = text.partition(":")
            inside = Path(location).expanduser().resolve()
            if kind not in ("folder", "hf-disk") or Path(self.data_root).resolve() not in (inside, *inside.parents):
                self.report.warnings.append(f"no thumbnails for {dataset}: {text} is not inside --data-root")
                return None
            try:
                from hemabench.datasets import get_dataset

                self._custom[dataset] = get_dataset(text).discover().image_source()
            except Exception as exc:  # missing or changed data: paths are shown instead
                self.report.warnings.append(f"no thumbnails for {dataset}: {exc}".splitlines()[0])
        return self._custom[dataset]

    def images_note(self, dataset: str) -> str:
        """Why a dataset's images cannot be shown here ("" when they can be)."""
        from hemabench.datasets import DATASETS

        spec = DATASETS.get(dataset) if dataset in DATASETS else None
        if spec is not None and spec.synthetic:
            return "" if spec.generated_folder().is_dir() else (
                f"images not shown: the synthetic twin {dataset} is not generated on the machine that built this site "
                f"(`hemabench data generate {dataset}`, then rebuild)")
        if spec is not None and spec.bundled:
            return ""
        if self.data_root is None:
            return f"images not shown: {dataset} is not shipped with hemabench; rebuild with --data-root to show them"
        return "" if self._root(dataset) is not None or dataset in self.custom_sources else \
            f"images not shown: {dataset} was not found under --data-root"

    def thumbnail(self, dataset: str, rel: str, fmt: str = "PNG") -> str | None:
        """A downscaled copy (PNG or JPEG) of a dataset image, only for a plain relative path inside the root."""
        from hemabench.datasets import DATASETS

        if self.data_root is None and not (dataset in DATASETS and DATASETS.get(dataset).embedded):
            return None  # a bundled sample ships with the package, a generated twin lies in the cache: no --data-root
        pure = PurePosixPath(rel)
        if not rel or "\\" in rel or pure.is_absolute() or any(p in ("..", "") for p in pure.parts):
            return None
        images = self._custom_images(dataset) if dataset in self.custom_sources else None
        if images is not None:
            source = None
        else:
            root = None if dataset in self.custom_sources else self._root(dataset)
            if root is None:
                return None
            source = (root / pure).resolve()
            if root not in source.parents or not source.is_file():
                return None
        name = hashlib.sha256(f"{dataset}\0{rel}".encode()).hexdigest()[:20] + (".jpg" if fmt == "JPEG" else ".png")
        target = self.out / "thumbs" / name
        if not target.exists():
            from PIL import Image

            from hemabench.images.check import to_rgb

            try:
                with (images.open(rel) if source is None else Image.open(source)) as image:
                    image = to_rgb(image)
                    image.thumbnail((THUMB_SIZE, THUMB_SIZE))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    image.save(target, format=fmt, optimize=True, **({"quality": 80} if fmt == "JPEG" else {}))
            except (OSError, ValueError, IndexError) as exc:  # IndexError: a row the arrow files lack
                self.report.warnings.append(f"thumbnail of {dataset}:{rel} failed: {exc}")
                return None
            self.report.thumbnails += 1
        return f"../thumbs/{name}"


def environment(downloads: Downloads | None = None) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([HERE / "templates", HERE / "static"]),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(anchor=anchor, csv_href=downloads.table if downloads else (lambda table: None))
    env.filters["short"] = short_hash  # a 64-hex digest as its first 12 characters (the full one on hover)
    env.filters["words"] = words  # submitted_by -> submitted by, True -> yes
    return env


def page_provenance(entries: list[Entry]) -> dict:
    """What every page states: which hemabench made its results, task versions, split fingerprints."""
    versions = sorted({str(e.result.provenance.get("hemabench_version", "?")) for e in entries})
    tasks = sorted({f"{e.result.task} v{e.result.task_version}" for e in entries})
    splits = sorted({(f"{s.get('dataset', e.result.dataset)} {s.get('name')} v{s.get('version')}", str(s.get("fingerprint")))
                     for e in entries for s in (e.result.split, e.result.source_split) if s})  # (split, fingerprint)
    return {"builder": hemabench.__version__, "versions": versions, "tasks": tasks, "splits": splits}


def build_site(out: str | Path = "leaderboard", submissions: str | Path | None = "submissions",
               results: list[str | Path] | tuple = (), data_root: str | None = None,
               figures: bool = True) -> BuildReport:
    """Build the site into ``out``; ``figures=False`` skips the SVGs (tables only, much faster)."""
    start = time.perf_counter()
    out = Path(out)
    report = BuildReport(out=out)
    entries = load_entries(Path(submissions) if submissions else None, [Path(r) for r in results], report.warnings)
    if not entries:  # before touching --out
        skipped = "".join(f"; {w}" for w in report.warnings[:3])
        raise HemabenchError(f"no result files found in {submissions or ''} {' '.join(map(str, results))}".strip()
                             + skipped)
    boards = group_boards(entries)
    for board in boards:
        board.ranks, board.comparisons = tie_ranks({e: entry.result for e, entry in board.entries.items()
                                                    if ranked(entry.result)})  # never papers, unregistered splits
    values = load_reported()
    only_papers = paper_boards(boards, values)
    foreign = prepare_out(out, OWNED)  # removes only what an earlier build wrote, else refuses
    try:
        _write_site(out, entries, boards, values, only_papers, report, data_root, figures)
    finally:  # a failed build still lists what it wrote, so the next build may replace it
        write_manifest(out, OWNED, foreign)
    report.results, report.boards, report.seconds = len(entries), len(boards), time.perf_counter() - start
    return report


def _write_site(out: Path, entries: list[Entry], boards: list[Board], values, only_papers, report: BuildReport,
                data_root: str | None, figures: bool) -> None:
    """Every page, figure, thumbnail and download of the site."""
    downloads = Downloads(out)
    site, env, models = Site(out, data_root, report, figures), environment(downloads), load_cost_models()
    encoders = sorted({e.encoder for e in entries} | {r.encoder for r in values if not r.external})
    site.custom_sources = {e.result.dataset: str(info["source"]) for e in entries if e.origin == "local run"
                           and (info := e.result.dataset_info).get("custom") and info.get("source")}

    def write(rel: str, template: str, page_entries: list[Entry], **context) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = "../" if "/" in rel else ""
        downloads.start_page(rel)
        path.write_text(env.get_template(template).render(prefix=prefix, provenance=page_provenance(page_entries),
                                                           **context), encoding="utf-8")
        report.pages += 1

    whole = {"boards": [], "papers_only": [{"task": b.task, "dataset": b.dataset, "task_version": b.version,
                                            "reported": [reported_json(r) for r in b.values]} for b in only_papers]}
    board_pairs = {board.key: pairs(board, values) for board in boards}
    for board in boards:
        paired = board_pairs[board.key]
        whole["boards"].append(board_json(board, paired, for_board(board.task, board.dataset, values)))
        downloads.start_page(board_href(board))
        json_href = "../" + downloads.json(f"{board.slug}.json", whole["boards"][-1])
        long_href = "../" + downloads.text(f"{board.slug}--long.csv", tidy_csv(board_rows(board)))
        write(board_href(board), "task.html.j2", list(board.entries.values()),
              **board_context(board, site, models, values, paired), board_json=json_href, board_long=long_href)
    for board in only_papers:
        write(f"tasks/{board.slug}.html", "reported-board.html.j2", [], **paper_board_context(board, values))
    downloads.start_page("index.html")
    leaderboard_json = downloads.json("leaderboard.json", whole)
    leaderboard_long = downloads.text("leaderboard-long.csv", tidy_csv(
        [row for board in boards for row in board_rows(board)] + reported_rows(values)))
    write("index.html", "index.html.j2", entries, **index_context(boards, only_papers, values, downloads),
          title="hemabench leaderboard", docs=downloads.docs(), n_results=len(entries), n_reported=len(values), leaderboard_json=leaderboard_json, leaderboard_long=leaderboard_long)
    for encoder in encoders:
        own: list[Board] = [b for b in boards if encoder in b.entries]
        write(encoder_href(encoder), "encoder.html.j2", [b.entries[encoder] for b in own],
              **encoder_context(encoder, own, values, board_pairs), title=f"encoder {encoder}")
    report.downloads, report.reported = downloads.written, len(values)
