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
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from hemabench.leaderboard.names import metric_label  # noqa: E402

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
            ax.set_xticks(ticks, [str(t) for t in ticks])  # the measured n, not powers of ten or two
            ax.minorticks_off()
            if len(ticks) > 6:  # 250, 500, 1000 ... would run into each other
                ax.tick_params(axis="x", labelrotation=45)
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


def _log_ticks(ax, axis: str, values) -> None:
    """A log axis sized to ``values`` (a quarter of the span as margin), ticked at 1-2-5 steps inside it, or
    at the smallest and largest value when no step falls inside, labelled as plain numbers."""
    lo, hi = float(min(values)), float(max(values))
    pad = max((hi / lo) ** 0.25, 1.25)
    low, high = lo / pad, hi * pad
    ticks = [t for t in LogLocator(subs=(1, 2, 5)).tick_values(low, high) if low <= t <= high]
    if len(ticks) < 2:
        ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(low, high)
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _label_points(ax, xs, ys, names) -> None:
    """Encoder names beside their points, to the left of points in the right half so no name leaves the axes."""
    x0, x1 = (np.log10(v) for v in ax.get_xlim())
    for x, y, name in zip(xs, ys, names):
        right = (np.log10(x) - x0) / (x1 - x0) > 0.5
        ax.annotate(name, (x, y), fontsize=7, xytext=(-4 if right else 4, 3), textcoords="offset points",
                    ha="right" if right else "left")


def pareto_figure(path: Path, frame: pd.DataFrame, title: str, metric: str) -> str:
    """Main score against forward images/s and against GFLOPs per image, the Pareto front drawn.

    ``frame``: columns encoder, score (fraction), images_per_s, gflops, device. Points are
    coloured by device: images/s from different devices are not comparable, and the panel
    title says so when there is more than one. A panel with fewer than two measured values
    lists them as text instead of plotting one point on an arbitrary axis; axes span the data,
    names stay inside them and the device legend sits outside."""
    devices = sorted(frame["device"].unique())
    palette = dict(zip(devices, sns.color_palette("colorblind", len(devices))))
    panels = [("images_per_s", "forward images/s (log)", True, "{:.1f} images/s"),
              ("gflops", "GFLOPs per image (log)", False, "{:.2f} GFLOPs")]
    ylabel = f"{metric_label(metric)}, %"
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
        for ax, (x, label, higher, unit) in zip(axes[0], panels):
            data = frame.dropna(subset=[x])
            data = data[data[x] > 0]
            missing = sorted(set(frame["encoder"]) - set(data["encoder"]))
            note = "" if x == "gflops" or len(devices) < 2 else "\n(different devices: speeds not comparable)"
            if data[x].nunique() < 2:  # nothing to compare: the values as text
                lines = [f"{r.encoder}: {unit.format(getattr(r, x))}" + (f" on {r.device}" if x == "images_per_s" else "")
                         + f", score {100 * r.score:.1f}%" for r in data.itertuples()]
                lines += [f"not measured: {', '.join(missing)}"] if missing else []
                ax.text(0.5, 0.5, "\n".join([label.removesuffix(" (log)"), *lines, "(fewer than two measured values: "
                                             "nothing to plot)"]), transform=ax.transAxes, ha="center", va="center",
                        fontsize=8, wrap=True)
                ax.set_axis_off()
                ax.set_title(f"{title}{note}")
                continue
            for device, group in data.groupby("device", sort=True):
                ax.scatter(group[x], 100 * group["score"], color=palette[device], label=device, s=22, zorder=3)
            _log_ticks(ax, "x", data[x])
            scores = 100 * data["score"]
            margin = max(0.1 * (scores.max() - scores.min()), 1.0)
            ax.set_ylim(scores.min() - margin, scores.max() + 2 * margin)  # room for the names above the points
            _label_points(ax, data[x], scores, data["encoder"])
            if x == "gflops" or len(devices) == 1:  # a speed front across devices would compare them
                front = _front(data, x, higher)
                if len(front) > 1:
                    ax.plot(front[x], 100 * front["score"], color="grey", linestyle="--", linewidth=1, zorder=2)
            if missing:
                ax.text(0.01, 0.01, "not measured: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                        color="grey", va="bottom")
            ax.set(xlabel=label, ylabel=ylabel, title=f"{title}{note}")
            ax.grid(alpha=0.3)
        handles = next((h for h in (a.get_legend_handles_labels() for a in axes[0]) if h[0]), None)
        if handles:  # below both panels, off every point
            fig.legend(*handles, fontsize=7, title="device", title_fontsize=7, loc="upper center",
                       bbox_to_anchor=(0.5, 0.0), ncol=max(1, len(handles[0])), frameon=False)
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
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # off the lines
        return _save(fig, path)
