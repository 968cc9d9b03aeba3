"""Downloads written by ``leaderboard build``: every rendered table as CSV, each board and the whole
leaderboard as JSON, under ``downloads/`` next to the pages (relative links, works from file://).

A CSV holds exactly what the page shows in that table, cell by cell (text, badge, rank and
the small second line, space-separated), so a reader can check one against the other; the
JSON files hold the numbers at full precision.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hemabench.leaderboard.collect import slug
from hemabench.results import Score

FOLDER = "downloads"


FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would evaluate a cell starting with one of these


def cell_text(cell: dict) -> str:
    """A cell as the page shows it (the order of the table macro: text, badge, rank, sub); text from a
    submission that a spreadsheet would run as a formula gets a leading apostrophe (numbers stay as they are)."""
    parts = [cell.get("text"), cell.get("badge"), cell.get("rank"), cell.get("sub")]
    text = " ".join(str(p) for p in parts if p not in (None, ""))
    if text.startswith(FORMULA) and not _number(text.split(" ")[0]):
        return "'" + text
    return text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_csv(table: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([cell_text(c) for c in table["columns"]])
    for row in table["rows"]:
        writer.writerow([cell_text(row["head"])] + [cell_text(c) for c in row["cells"]])
    return out.getvalue()


class Downloads:
    """Called from the table macro while a page renders: writes the table's CSV, returns its link."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.page, self.prefix, self.written = "index", "", 0

    def start_page(self, rel: str) -> None:
        self.page = slug(rel.rsplit(".", 1)[0].replace("/", "--"))
        self.prefix = "../" if "/" in rel else ""

    def table(self, table: dict) -> str:
        name = f"{self.page}--{slug(str(table['id']))}.csv"
        self._write(name, table_csv(table))
        return f"{self.prefix}{FOLDER}/{name}"

    def text(self, name: str, text: str) -> str:
        """Any prepared file (a tidy CSV), linked like the others."""
        self._write(name, text)
        return f"{FOLDER}/{name}"

    def json(self, name: str, payload) -> str:
        self._write(name, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
        return f"{FOLDER}/{name}"

    def docs(self, names=("protocols.md", "protocols-aml-mil.md", "protocols-breakhis.md", "metrics.md")) -> dict:
        """Ship the protocol docs with the site (they are cited on every page): name -> link from the index."""
        folder = Path(__file__).resolve().parents[2] / "docs"
        shipped = {}
        for name in names:
            if (folder / name).is_file():
                self._write(name, (folder / name).read_text(encoding="utf-8"))
                shipped[name] = f"{FOLDER}/{name}"
        return shipped

    def _write(self, name: str, text: str) -> None:
        path = self.out / FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.written += 1


def score_json(score: Score | dict | None) -> dict | None:
    """mean, std, ci95 (of the mean) and, for repeated runs, spread95 (of single runs)."""
    if not score:
        return None
    if isinstance(score, Score):
        score = {"mean": score.mean, "std": score.std, "ci95": list(score.ci95),
                 **({"spread95": list(score.spread95)} if score.spread95 else {})}
    return {k: score.get(k) for k in ("mean", "std", "ci95", "spread95") if k in score}


def board_json(board, pairs, reported) -> dict:
    """One board: its protocol, each run's main score, rank and cost, the paper rows (with why a paper
    table's protocol does not match this board, where it does not) and the pairs."""
    from hemabench.leaderboard.reported import comparable

    reasons = comparable(board, reported)[1]
    return {
        "task": board.task, "dataset": board.dataset, "task_version": board.version,
        "params_digest": board.params_digest, "main_metric": board.main_metric,
        "runs": [{"encoder": e, "tier": board.entries[e].trust[0], "rank": board.ranks.get(e),
                  "origin": board.entries[e].origin, "max_iter": list(board.entries[e].result.max_iter_fits),
                  "main": score_json(board.entries[e].main), "encoder_cost": board.entries[e].result.encoder_cost,
                  "metrics": {k: score_json(v) for k, v in board.entries[e].result.metrics.items()}}
                 for e in board.sorted_encoders()],
        "reported": [{**reported_json(r), "not_comparable_here": reasons.get(r.source, [])} for r in reported],
        "reproduced_minus_reported": [{"encoder": p.encoder, "metric": p.metric, "difference": p.difference,
                                       "interval": p.interval, "flagged": p.flagged, "source": p.reported.source,
                                       "still_different": p.remaining}
                                      for p in pairs],
    }


def reported_json(r) -> dict:
    return {"encoder": r.encoder, "tier": r.tier, "task": r.task, "dataset": r.dataset, "metric": r.metric,
            "value": r.value, "sd": r.sd, "paper": r.paper, "table": r.table, "citation": r.citation, "note": r.note,
            "protocol": {"split": r.protocol.split, "paper_split": r.protocol.paper_split,
                         "still_different": r.protocol.remaining()}}
