"""SVG figures for the static site (seaborn on the Agg backend).

Text stays text in the SVG (``svg.fonttype = none``) so figures are small and searchable,
and ids and dates are fixed so an unchanged board rebuilds byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

STYLE = {"svg.fonttype": "none", "svg.hashsalt": "hemabench", "font.size": 9, "axes.titlesize": 10}


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return path.name


def heatmap(path: Path, matrix, rows: list[str], cols: list[str], title: str, xlabel: str, ylabel: str,
            fmt: str = ".0f", vmax: float | None = 100) -> str:
    """An annotated heatmap (values as given; None cells left blank)."""
    frame = pd.DataFrame(np.asarray(matrix, dtype=float), index=rows, columns=cols)
    side = 0.42 * max(len(rows), len(cols)) + 1.6
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(side + 1.2, side))
        sns.heatmap(frame, annot=len(rows) <= 25, fmt=fmt, cmap="Blues", vmin=0, vmax=vmax, square=True,
                    linewidths=0.3, cbar_kws={"shrink": 0.6}, ax=ax, annot_kws={"size": 7})
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.tick_params(axis="x", rotation=90)
        ax.tick_params(axis="y", rotation=0)
        return _save(fig, path)


def confusion_figure(path: Path, counts, labels: list[str], title: str) -> str:
    """Row-normalised confusion matrix in percent (rows = true class)."""
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100 * counts, rows, out=np.full_like(counts, np.nan), where=rows > 0)
    return heatmap(path, percent, labels, labels, title, "predicted", "true")


def curves_figure(path: Path, curves: pd.DataFrame, title: str, references: pd.DataFrame | None = None,
                  chance: float | None = None) -> str:
    """Mean balanced accuracy against n per class, one panel per classifier, a band per encoder.

    ``curves``: columns encoder, classifier, n, mean, low, high; ``references``: encoder,
    label, mean (horizontal lines, e.g. the direct-transfer score); ``chance``: a dotted line at that
    balanced accuracy. Ticks at the measured n, the legend outside the axes."""
    classifiers = list(dict.fromkeys(curves["classifier"]))
    palette = dict(zip(sorted(set(curves["encoder"])), sns.color_palette("colorblind", curves["encoder"].nunique())))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(classifiers), figsize=(4.2 * len(classifiers), 3.4), squeeze=False,
                                 sharey=True)
        for ax, clf in zip(axes[0], classifiers):
            for encoder, group in curves[curves["classifier"] == clf].groupby("encoder", sort=True):
                group = group.sort_values("n")
                ax.plot(group["n"], 100 * group["mean"], marker="o", ms=3, color=palette[encoder], label=encoder)
                ax.fill_between(group["n"], 100 * group["low"], 100 * group["high"], color=palette[encoder],
                                alpha=0.2, linewidth=0)
            for row in (references.itertuples() if references is not None else []):
                ax.axhline(100 * row.mean, color=palette.get(row.encoder, "grey"), linestyle="--", linewidth=1,
                           label=f"{row.encoder} {row.label}")
            if chance is not None:
                ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1, label=f"chance ({100 * chance:.1f})")
            ax.set_xscale("log")
            ticks = sorted(set(curves["n"]))
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            ax.set(title=f"{title}: {clf}", xlabel="labelled samples per class (n)", ylabel="balanced accuracy (%)")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
        return _save(fig, path)


def _front(frame: pd.DataFrame, x: str, higher_x_better: bool) -> pd.DataFrame:
    """Points no other point beats on both x and the score (the Pareto front), sorted by x."""
    order = frame.sort_values(x, ascending=not higher_x_better)
    best, keep = -np.inf, []
    for index, row in order.iterrows():
        if row["score"] > best:
            keep.append(index)
            best = row["score"]
    return frame.loc[keep].sort_values(x)


def pareto_figure(path: Path, frame: pd.DataFrame, title: str, metric: str) -> str:
    """Main score against forward images/s and against GFLOPs per image, the Pareto front drawn.

    ``frame``: columns encoder, score (fraction), images_per_s, gflops, device. Points are
    coloured by device: images/s from different devices are not comparable, and the panel
    title says so when there is more than one."""
    devices = sorted(frame["device"].unique())
    palette = dict(zip(devices, sns.color_palette("colorblind", len(devices))))
    panels = [("images_per_s", "forward images/s (log)", True), ("gflops", "GFLOPs per image (log)", False)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
        for ax, (x, label, higher) in zip(axes[0], panels):
            data = frame.dropna(subset=[x])
            data = data[data[x] > 0]
            for device, group in data.groupby("device", sort=True):
                ax.scatter(group[x], 100 * group["score"], color=palette[device], label=device, s=22, zorder=3)
            for row in data.itertuples():
                ax.annotate(row.encoder, (getattr(row, x), 100 * row.score), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
            if x == "gflops" or len(devices) == 1:  # a speed front across devices would compare them
                front = _front(data, x, higher)
                if len(front) > 1:
                    ax.plot(front[x], 100 * front["score"], color="grey", linestyle="--", linewidth=1, zorder=2)
            if len(data):
                ax.set_xscale("log")
            missing = sorted(set(frame["encoder"]) - set(data["encoder"]))
            if missing:
                ax.text(0.01, 0.01, "not measured: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                        color="grey", va="bottom")
            note = "" if x == "gflops" or len(devices) < 2 else "\n(different devices: speeds not comparable)"
            ax.set(xlabel=label, ylabel=f"{metric} (%)", title=f"{title}{note}")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7, title="device", title_fontsize=7, loc="best")
        return _save(fig, path)


def severity_figure(path: Path, frame: pd.DataFrame, families: list[str], metrics: dict[str, str]) -> str:
    """One panel per (metric, family): the mean against severity 0..5, one line and 95% band per encoder.

    ``frame``: columns encoder, family, severity, metric, mean, low, high; ``metrics``: metric -> axis label
    (balanced accuracy is drawn in %, cosine as is)."""
    palette = dict(zip(sorted(set(frame["encoder"])), sns.color_palette("colorblind", frame["encoder"].nunique())))
    rows = [m for m in metrics if m in set(frame["metric"])]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(rows), len(families), figsize=(2.3 * len(families), 2.4 * len(rows)),
                                 squeeze=False, sharex=True, sharey="row")
        for r, metric in enumerate(rows):
            scale = 100 if metric == "balanced_accuracy" else 1
            for c, family in enumerate(families):
                ax = axes[r][c]
                part = frame[(frame["metric"] == metric) & (frame["family"] == family)]
                for encoder, group in part.groupby("encoder", sort=True):
                    group = group.sort_values("severity")
                    ax.plot(group["severity"], scale * group["mean"], marker="o", ms=3, color=palette[encoder],
                            label=encoder)
                    ax.fill_between(group["severity"], scale * group["low"], scale * group["high"],
                                    color=palette[encoder], alpha=0.2, linewidth=0)
                ax.set(title=family if r == 0 else "", xlabel="severity" if r == len(rows) - 1 else "",
                       ylabel=metrics[metric] if c == 0 else "")
                ax.set_xticks(range(0, 6))
                ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="lower left")
        return _save(fig, path)
