"""Published numbers on the site: paper rows beside the runs, reproduced-vs-reported pairs, and
boards that exist only because a paper reports them.

A reported value (``hemabench.published.values``) carries the trust tier "paper": it is shown with
a badge, its table and protocol note, and it is never ranked or put in a tie group. A
*pair* is a run and a reported value of the same encoder, task, dataset and metric on a
board whose protocol matches the value's (``hemabench.published.protocol``: task version,
parameters, split, class set, encoder weights); its difference is shown with the run's
interval moved by the reported value, and flagged "differs beyond both intervals" only when
the run's 95% interval excludes the reported value AND the paper's ± sd (where printed)
excludes the run's mean. A value whose protocol does not match stays out of the board's
metric columns and is listed with the reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hemabench.leaderboard.collect import Board, digest, slug
from hemabench.leaderboard.tables import pct, plain
from hemabench.published.values import EXTERNAL, Reported, run_value
from hemabench.tasks import TASKS

FLAG = "differs beyond both intervals"
TRAINED_ON = re.compile(r"hemabench datasets?:\s*([a-z0-9][a-z0-9, -]*)", re.IGNORECASE)


def task_family(task: str) -> str:
    """The family a task's index columns are grouped under: the task's own ``family`` (its name where
    unregistered, e.g. a task a paper reports that this package does not run)."""
    return TASKS.get(task).family if task in TASKS else task


def trained_on(training_data: str) -> list[str]:
    """The hemabench datasets an encoder spec says it was trained on ("hemabench datasets: a, b")."""
    match = TRAINED_ON.search(training_data or "")
    return sorted({d.strip() for d in match.group(1).split(",") if d.strip()}) if match else []


TRAINED_MARK = "† = the encoder was trained on (part of) this dataset"


def trained_datasets(encoder: str) -> list[str]:
    """The hemabench datasets a registered encoder was trained on (none for an external or unregistered one)."""
    from hemabench.encoders import ENCODERS

    if encoder.startswith(EXTERNAL) or encoder not in ENCODERS:
        return []
    return trained_on(ENCODERS.get(encoder).training_data)


def mark_trained(cell: dict, dataset: str, trained: list[str]) -> dict:
    """A value cell with † when its encoder was trained on (part of) ``dataset``."""
    if dataset in trained and cell.get("text") != "–":
        cell = {**cell, "text": f"{cell['text']} †", "cls": f"{cell.get('cls') or ''} trained".strip(),
                "title": f"{cell.get('title') or ''} (this encoder was trained on {dataset})".strip()}
    return cell


@dataclass
class PaperBoard:
    """A task on a dataset that only papers report so far: shown with reported rows only."""

    task: str
    dataset: str
    version: int
    main_metric: str
    values: list[Reported] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"{slug(self.task)}--{slug(self.dataset)}--reported-{digest([self.task, self.dataset])}"


@dataclass(frozen=True)
class Pair:
    """One run and one reported value for the same encoder, task, dataset and metric."""

    encoder: str
    metric: str
    run: dict  # the run's metric entry: mean, std, ci95
    reported: Reported

    @property
    def remaining(self) -> list[str]:
        """What stays different between the run and the paper although the protocol matches."""
        return self.reported.protocol.remaining()

    @property
    def difference(self) -> float:
        return float(self.run["mean"]) - self.reported.value

    @property
    def interval(self) -> tuple[float, float] | None:
        """The run's 95% interval minus the reported value (an interval for the difference, reported fixed)."""
        ci = self.run.get("ci95") or [None, None]
        if ci[0] is None or ci[1] is None:
            return None
        return float(ci[0]) - self.reported.value, float(ci[1]) - self.reported.value

    @property
    def outside_run(self) -> bool:
        """The reported value lies outside the run's 95% interval."""
        interval = self.interval
        return interval is not None and not interval[0] <= 0.0 <= interval[1]

    @property
    def outside_paper(self) -> bool:
        """The run's mean lies outside the paper's value ± sd; True when the paper prints no sd."""
        sd = self.reported.sd
        return sd is None or abs(self.difference) > sd

    @property
    def flagged(self) -> bool:
        """Differs beyond both intervals: the run's CI excludes the paper's value and the paper's ± sd
        (where printed) excludes the run's mean (docs/leaderboard.md)."""
        return self.outside_run and self.outside_paper

    def cell(self) -> dict:
        interval = self.interval
        sub = f"[{pct(interval[0], 2)}, {pct(interval[1], 2)}]" if interval else None
        flag = FLAG if self.flagged else ""
        return plain(f"{'+' if self.difference >= 0 else ''}{pct(self.difference, 2)}", self.difference, sub=sub,
                     cls="delta flagged" if self.flagged else "delta", badge="≠" if self.flagged else None,
                     title=f"run {self.run['mean']!r} minus {self.reported.source} {self.reported.value!r}, "
                           f"percentage points; interval = the run's 95% interval minus the reported value"
                           + (f"; {flag}" if flag else "") + "; still different: " + (", ".join(self.remaining) or "nothing"),
                     data={"diff": repr(self.difference), "flagged": str(self.flagged).lower()})


def for_board(task: str, dataset: str, values: list[Reported]) -> list[Reported]:
    return [r for r in values if r.task == task and r.dataset == dataset]


def board_mismatches(board: Board, r: Reported) -> list[str]:
    """Why a reported value does not describe this board's protocol (empty: it does); read from the
    board's first result, since version, parameters and split define the board, and the class set."""
    from hemabench.tasks import TASKS

    first = board.first
    if r.task not in TASKS.names():
        return ["unregistered task"]
    return r.protocol.board_mismatches(TASKS.get(r.task), first) + r.protocol.class_mismatch(first)


def comparable(board: Board, values: list[Reported]) -> tuple[list[Reported], dict[str, list[str]]]:
    """(the board's values whose protocol matches it, paper source -> reasons for those that do not)."""
    shown, reasons = [], {}
    for r in for_board(board.task, board.dataset, values):
        found = board_mismatches(board, r)
        if found:
            reasons.setdefault(r.source, found)
        else:
            shown.append(r)
    return shown, reasons


def pairs(board: Board, values: list[Reported]) -> list[Pair]:
    """Every (run, reported) pair of a board whose protocol matches the value's, in encoder then metric order."""
    from hemabench.tasks import TASKS

    out = []
    for r in comparable(board, values)[0]:
        entry = board.entries.get(r.encoder)
        if entry is None or r.protocol.mismatches(TASKS.get(r.task), r.encoder, entry.result):
            continue
        score = run_value(entry.result, r.metric)
        if score is not None and "mean" in score:
            out.append(Pair(r.encoder, r.metric, score, r))
    return sorted(out, key=lambda p: (p.encoder, p.metric, p.reported.source))


def paper_boards(boards: list[Board], values: list[Reported]) -> list[PaperBoard]:
    """(task, dataset) pairs with published values that no run board's protocol matches yet (none run, or
    only under other parameters, splits or class sets): those values get a board of their own."""
    from hemabench.tasks import TASKS

    shown = {id(r) for b in boards for r in comparable(b, values)[0]}
    out: dict[tuple[str, str], PaperBoard] = {}
    for r in values:
        if id(r) not in shown:
            task = TASKS.get(r.task)
            out.setdefault((r.task, r.dataset), PaperBoard(r.task, r.dataset, task.version, task.main_metric)).values.append(r)
    for board in out.values():  # the task's main metric where papers report it, else their most common one
        metrics = [r.metric for r in board.values]
        if board.main_metric not in metrics:
            board.main_metric = max(dict.fromkeys(metrics), key=metrics.count)
    return sorted(out.values(), key=lambda b: (b.task, b.dataset))


def reported_cell(r: Reported | None, digits: int = 1, source: bool = True) -> dict:
    """value ± sd with the paper badge (and the paper's table below it); the protocol note on hover."""
    if r is None:
        return plain("–")
    text = pct(r.value, digits) + (f" ± {pct(r.sd, digits)}" if r.sd is not None else "")
    return plain(text, r.value, badge="paper", cls="reported", sub=r.source if source else None,
                 title=f"{r.citation}, {r.table}. Protocol: {r.note}",
                 data={"value": repr(r.value), "tier": r.tier})


def by_encoder(values: list[Reported]) -> dict[tuple[str, str], dict[str, Reported]]:
    """(encoder, paper source) -> metric -> value, so one paper table is one row."""
    rows: dict[tuple[str, str], dict[str, Reported]] = {}
    for r in values:
        rows.setdefault((r.encoder, r.source), {})[r.metric] = r
    return rows


def encoder_head(encoder: str, href: str | None, description: str = "") -> dict:
    name = encoder.removeprefix(EXTERNAL)
    return plain(name, name, href=href, badge="paper", title=description or "published result, not a hemabench run",
                 data={"tier": "paper"})
