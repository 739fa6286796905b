"""Paper-ready figures of runs and evaluations: one palette per run, ROC curves in one panel per level, the
attribution confusion matrix and the training curves, each saved as a PNG at print resolution and a PDF beside it.

Every builder returns a matplotlib ``Figure`` (no pyplot state, nothing to close) so tests can read its titles,
legend entries, colours and line styles; ``save_figure`` writes the files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_bytes_atomic
from data.protocols import MISSING_VALUE, OVERALL

FIGURE_DPI = 200  # the PNG; the PDF beside it is vector
# Okabe & Ito's colour-blind-safe palette: real and fake keep one colour in every figure, overall is black.
REAL_COLOUR = "#0072B2"  # blue
FAKE_COLOUR = "#D55E00"  # vermillion
OVERALL_COLOUR = "#000000"
FIXED_COLOURS = {"real": REAL_COLOUR, "fake": FAKE_COLOUR, OVERALL: OVERALL_COLOUR}
# Members of a level (generators, forgery types, datasets), in the order their sorted names take them: the rest of
# Okabe-Ito, then tab10's colours that are far from both real's blue and fake's vermillion.
MEMBER_COLOURS = (
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#9467BD",  # purple
    "#8C564B",  # brown
    "#BCBD22",  # olive
    "#7F7F7F",  # grey
    "#56B4E9",  # sky blue: late, as it is the nearest to real's blue
    "#F0E442",  # yellow
    "#17BECF",  # cyan
)
# Within a panel every curve gets its own dash pattern and marker, so curves that coincide (several at AUC 1.0)
# still show each colour in turn; overall alone is solid.
MEMBER_DASHES = (
    (0, (6.0, 2.0)),
    (0, (1.5, 1.5)),
    (0, (8.0, 2.0, 1.5, 2.0)),
    (3, (3.0, 3.0)),
    (0, (10.0, 2.5, 1.5, 2.5, 1.5, 2.5)),
    (1, (4.0, 1.5, 4.0, 4.0)),
    (2, (2.0, 4.0)),
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LEVEL_TITLES = {"forgery_type": "forgery type", "generator": "generator", "source_dataset": "dataset"}
ROC_MAX_POINTS = 2000  # vertices drawn per curve: below one pixel of error on a 6 inch panel at 200 dpi
ROC_MAX_NAMED = 16  # member curves a panel names in its legend; above it, the lowest and highest AUCs are named
OTHERS_COLOUR = "#BBBBBB"


def group_palette(names: Iterable[str]) -> dict[str, str]:
    """Colour of every name of one level: real, fake and overall fixed, the others by their sorted order.

    Give every name the level takes in the run's CSV (not only those one figure shows), so that a generator keeps
    its colour in every figure of the run.
    """
    members = sorted({str(n) for n in names} - set(FIXED_COLOURS))
    palette = {name: MEMBER_COLOURS[i % len(MEMBER_COLOURS)] for i, name in enumerate(members)}
    return {**palette, **FIXED_COLOURS}


def table_palettes(table, columns: Iterable[str] = tuple(LEVEL_TITLES)) -> dict[str, dict[str, str]]:
    """One palette per group column of a SplitTable, over all of its rows."""
    palettes = {}
    for column in columns:
        if table.has(column):
            names = set(table.column(column))
            palettes[column] = group_palette(names - {""} | ({MISSING_VALUE} if "" in names else set()))
    return palettes


def colour_of(palettes: Mapping[str, Mapping[str, str]], level: str, name: str) -> str:
    """The colour of ``name`` in ``level``; real, fake and overall mean the same in every level."""
    return palettes.get(level, {}).get(name) or FIXED_COLOURS.get(name) or group_palette([name])[name]


def describe_run(detector: str | None, protocol: str | None, fold: str | None = None, data: str | None = None) -> str:
    """A figure title from what the run is (detector, protocol, training fold, data), not from its folder name."""
    parts = [detector, f"protocol {protocol}" if protocol else None, f"trained on {fold}" if fold else None]
    text = ", ".join(p for p in parts if p)
    return f"{text}: {data}" if data else text


def set_title(figure, title: str, *, fontsize: float = 10) -> None:
    """The figure's title, each line wrapped at ', ' / ': ' / spaces to the figure's width (a long title of a
    one-panel figure was cut on both sides)."""
    import textwrap

    # an average character of the default sans-serif font is about 0.55 em wide
    width = max(20, int(figure.get_figwidth() * 72 / (0.55 * fontsize)))
    lines = [
        wrapped for line in title.split("\n") for wrapped in textwrap.wrap(line, width, break_on_hyphens=False) or [""]
    ]
    figure.suptitle("\n".join(lines), fontsize=fontsize)


def save_figure(
    figure, png_path: Path, *, dpi: int = FIGURE_DPI, figure_hook: Callable[[Any], None] | None = None
) -> list[Path]:
    """Write ``png_path`` and a PDF beside it (TrueType fonts embedded, no creation date), each atomically."""
    import matplotlib

    if figure_hook is not None:
        figure_hook(figure)
    png_path = Path(png_path)
    written = []
    for suffix, options in ((".png", {"dpi": dpi}), (".pdf", {"metadata": {"CreationDate": None}})):
        buffer = io.BytesIO()
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            figure.savefig(buffer, format=suffix[1:], **options)
        written.append(write_bytes_atomic(png_path.with_suffix(suffix), buffer.getvalue()))
    return written


def new_figure(panels: int, *, panel_size=(4.6, 4.4), columns: int = 3):
    """A Figure (no pyplot: garbage-collected like any object) with ``panels`` axes in rows of ``columns``."""
    from matplotlib.figure import Figure

    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows + 0.5), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes[panels:]:
        axis.set_visible(False)
    return figure, list(axes[:panels])


# --------------------------------------------------------------------------------------------------------------- ROC
def roc_vertices(labels, scores, *, log_fpr: bool = False, max_points: int = ROC_MAX_POINTS):
    """(FPR, TPR) of the ROC with only the vertices that change it at plot resolution: at most ``max_points``.

    The curve is monotone, so its length along x + y splits into ``max_points / 2`` equal bins and the first and
    last vertex of each bin are kept: no kept segment is longer than one bin. On a log FPR axis x is log(FPR).
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=True)
    floor = 0.5 / max(1, int(np.sum(np.asarray(labels) == 0)))
    if log_fpr:  # (0, 0) has no place on a log axis: it starts at half the smallest FPR step
        fpr = np.maximum(fpr, floor)
    if len(fpr) <= max_points:
        return fpr, tpr
    x = np.log10(fpr) / -math.log10(floor) + 1.0 if log_fpr else fpr
    bins = np.floor((x + tpr) / 2.0 * (max_points // 2 - 1)).astype(np.int64)
    keep = np.ones(len(fpr), dtype=bool)
    keep[1:-1] = (bins[1:-1] != bins[:-2]) | (bins[1:-1] != bins[2:])
    return fpr[keep], tpr[keep]


def roc_panels(groups: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Level -> [(group key, member name)] in the groups' order; ``overall`` alone when there is no level."""
    panels: dict[str, list[tuple[str, str]]] = {}
    for group in groups:
        if group != OVERALL:
            level, name = group.split("=", 1)
            panels.setdefault(level, []).append((group, name))
    return panels or {OVERALL: []}


def style_of(position: int) -> dict[str, Any]:
    """Dash pattern and marker of the ``position``-th member curve of a panel."""
    return {
        "linestyle": MEMBER_DASHES[position % len(MEMBER_DASHES)],
        "marker": MARKERS[position % len(MARKERS)],
        "markersize": 4.5,
        "markerfacecolor": "none",
    }


def with_markers(fpr, tpr, position: int, *, log_fpr: bool = False, per_curve: int = 8):
    """The curve with ``per_curve`` points added on its segments, evenly along its length (x + y), and their indices.

    Curves that coincide (several at AUC 1.0, all on the two edges) put their markers at different places: the
    ``position``-th curve of a panel starts a fraction of a step later than the one before.
    """
    x = np.log10(fpr) - np.log10(fpr[0]) if log_fpr else fpr
    x = x / max(float(x[-1]), 1e-12)
    length = x + tpr  # non-decreasing: the ROC is monotone
    step = float(length[-1]) / per_curve
    targets = step * (np.arange(per_curve) + ((position % len(MEMBER_DASHES)) + 0.5) / len(MEMBER_DASHES))
    order = np.argsort(np.concatenate([length, targets]), kind="stable")
    added = np.flatnonzero(order >= len(fpr))
    fpr = np.concatenate([fpr, np.interp(targets, length, fpr)])[order]
    tpr = np.concatenate([tpr, np.interp(targets, length, tpr)])[order]
    return fpr, tpr, added


def named_members(members: list[tuple[str, str]], auc: Mapping[str, float], most: int = ROC_MAX_NAMED):
    """(named, others): every member is named when there are at most ``most``; otherwise the ``most // 2`` lowest and
    the ``most - most // 2`` highest AUCs are (a panel of 40 generators with 40 legend entries covers its curves), in
    the members' order, and the others are drawn thin and grey without a legend entry of their own."""
    if len(members) <= most:
        return members, []
    ranked = sorted(members, key=lambda member: (auc[member[0]], member[1]))
    chosen = {group for group, _ in ranked[: most // 2] + ranked[len(ranked) - (most - most // 2) :]}
    return [m for m in members if m[0] in chosen], [m for m in members if m[0] not in chosen]


UNSEEN = "unseen"  # the curve of a fold's test rows without those of its own (training) fold


def fold_groups(groups: Iterable[str], fold: str | None) -> tuple[str, str] | None:
    """(level, group key) of the group that is a fold's own (``generator=StyleGAN2`` for fold StyleGAN2): the test
    rows of what the run trained on, in-domain; None without a fold or when no group is the fold's."""
    if fold is None:
        return None
    for group in groups:
        level, _, name = group.partition("=")
        if group != OVERALL and name == fold:
            return level, group
    return None


def unseen_rows(table, rows: np.ndarray, level: str, fold: str) -> np.ndarray:
    """``rows`` without those of the fold's own value in ``level`` (its training generator's fakes, its training
    dataset's rows): what a cross-generator, cross-forgery or cross-dataset result means by unseen."""
    return rows[np.asarray(table.column(level), dtype=object)[rows] != fold]


def roc_figure(
    table, groups, scores, results, *, title: str, log_fpr: bool = False, palettes=None, fold: str | None = None
):
    """One ROC panel per level (forgery type, generator, dataset), overall in black in each; AUC in the legends.

    ``groups``: group key -> test rows; ``results[group]['clean']['auc']`` (None: not drawn, it has no AUC). A panel
    with more than ``ROC_MAX_NAMED`` members names its lowest and highest AUCs and draws the rest thin and grey.
    ``fold``: the fold the run trained on; its own group is marked "trained on", overall says that it pools that
    in-domain group with the unseen ones, and the unseen rows alone get a curve of their own (black, dashed; its AUC
    is sklearn's roc_auc_score of those rows, recomputable from predictions.csv).
    """
    from sklearn.metrics import roc_auc_score

    palettes = palettes if palettes is not None else table_palettes(table)
    drawn = [g for g in groups if results[g]["clean"].get("auc") is not None]
    auc = {g: results[g]["clean"]["auc"] for g in drawn}
    panels = roc_panels(drawn)
    figure, axes = new_figure(len(panels))
    own = fold_groups(drawn, fold)
    rows_of = dict(groups)
    labels = {OVERALL: OVERALL}
    if own is not None and OVERALL in drawn:
        level, own_group = own
        kind = LEVEL_TITLES.get(level, level)
        labels[OVERALL] = f"overall: {fold} + unseen"
        labels[own_group] = f"{fold}, trained on"
        unseen = unseen_rows(table, np.asarray(groups[OVERALL]), level, fold)
        unseen = unseen[np.isfinite(scores[unseen])]
        if len(np.unique(table.labels[unseen])) == 2:
            rows_of[UNSEEN], auc[UNSEEN] = unseen, float(roc_auc_score(table.labels[unseen], scores[unseen]))
            labels[UNSEEN] = f"unseen {kind}s only"  # overall without the fold's own rows

    def vertices(group):
        rows = rows_of[group]
        rows = rows[np.isfinite(scores[rows])]
        return roc_vertices(table.labels[rows], scores[rows], log_fpr=log_fpr)

    for axis, (level, members) in zip(axes, panels.items()):
        named, others = named_members(members, auc)
        pooled = [(g, g) for g in (OVERALL, UNSEEN) if g in rows_of and (g == UNSEEN or OVERALL in drawn)]
        curves = pooled + named
        for position, (group, name) in enumerate(curves):
            fpr, tpr = vertices(group)
            style = {"linestyle": "-" if group == OVERALL else "--", "lw": 2.2}
            colour = OVERALL_COLOUR if group in (OVERALL, UNSEEN) else colour_of(palettes, level, name)
            if group not in (OVERALL, UNSEEN):
                fpr, tpr, marked = with_markers(fpr, tpr, position - len(pooled), log_fpr=log_fpr)
                style = {**style_of(position - len(pooled)), "markevery": list(marked), "lw": 1.5}
            axis.plot(
                fpr,
                tpr,
                color=colour,
                label=f"{labels.get(group, name)} (AUC {100 * auc[group]:.2f})",
                **style,
            )
        if others:  # drawn under the named curves (zorder), with one legend entry, the last
            low, high = (100 * f(auc[group] for group, _ in others) for f in (min, max))
            label = f"{len(others)} others (AUC {low:.2f}-{high:.2f}; all in the table)"
        for count, (group, _) in enumerate(others):
            axis.plot(*vertices(group), color=OTHERS_COLOUR, lw=0.6, zorder=1, label=label if count == 0 else "_")
        _roc_axes(axis, level, log_fpr, of=len(members) if others else None)
    set_title(figure, title)
    return figure


def _roc_axes(axis, level: str, log_fpr: bool, of: int | None = None) -> None:
    if log_fpr:
        axis.set_xscale("log")
        axis.set_xlim(left=min(1e-3, axis.get_xlim()[0]), right=1.0)
    else:
        axis.plot([0, 1], [0, 1], color="#999999", ls=":", lw=0.8)
        axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)  # curves along the edges (AUC 1.0 or 0.0) stay clear of the frame
    title = OVERALL if level == OVERALL else f"by {LEVEL_TITLES.get(level, level)}"
    if of is not None:
        title += f": the {ROC_MAX_NAMED // 2} lowest and {ROC_MAX_NAMED - ROC_MAX_NAMED // 2} highest AUCs of {of}"
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("false positive rate (real called fake)" + (", log scale" if log_fpr else ""), fontsize=8)
    axis.set_ylabel("true positive rate (fake detected)", fontsize=8)
    axis.tick_params(labelsize=7)
    count = len([line for line in axis.get_lines() if not line.get_label().startswith("_")])
    axis.legend(fontsize=6.5, loc="lower right", ncol=2 if count > 9 else 1, handlelength=3.2)


def plot_roc(
    path: Path,
    table,
    groups: Mapping[str, np.ndarray],
    scores: np.ndarray,
    results,
    title: str,
    *,
    log_fpr: bool = False,
    palettes=None,
    figure_hook=None,
    fold: str | None = None,
) -> list[Path]:
    """``roc_figure`` written to ``path`` (PNG) and the PDF beside it."""
    figure = roc_figure(table, groups, scores, results, title=title, log_fpr=log_fpr, palettes=palettes, fold=fold)
    return save_figure(figure, path, figure_hook=figure_hook)


# --------------------------------------------------------------------------------------------- confusion, curves
def confusion_figure(matrix: np.ndarray, names: Sequence[str], title: str, *, palette: Mapping[str, str] | None = None):
    """Counts of true (rows) x predicted (columns) classes; class names in their group colour."""
    size = 1.6 + 0.55 * len(names)
    figure, (axis,) = new_figure(1, panel_size=(max(size, 3.6), max(size, 3.0)))
    image = axis.imshow(matrix, cmap="Greys")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(names)), names, fontsize=7)
    palette = palette or group_palette(names)
    for label in [*axis.get_xticklabels(), *axis.get_yticklabels()]:
        label.set_color(palette.get(label.get_text(), OVERALL_COLOUR))
    dark = np.asarray(matrix) > 0.5 * max(1, np.max(matrix))
    for (i, j), count in np.ndenumerate(np.asarray(matrix)):
        axis.text(j, i, int(count), ha="center", va="center", fontsize=7, color="white" if dark[i, j] else "black")
    axis.set_xlabel("predicted", fontsize=8)
    axis.set_ylabel("true", fontsize=8)
    figure.colorbar(image, ax=axis, shrink=0.8).ax.tick_params(labelsize=7)
    set_title(figure, title, fontsize=9)
    return figure


def plot_confusion(
    path: Path, matrix: np.ndarray, names: Sequence[str], title: str, *, palette=None, figure_hook=None
) -> list[Path]:
    return save_figure(confusion_figure(matrix, names, title, palette=palette), path, figure_hook=figure_hook)


CURVE_STYLES = {  # key -> (label, colour, line style, marker): the same in every run's curves
    "train_loss": ("train loss", OVERALL_COLOUR, "-", "o"),
    "val_loss": ("validation loss", MEMBER_COLOURS[0], "--", "s"),
    "val_auc": ("validation AUC", OVERALL_COLOUR, "-", "o"),
    "val_ap": ("validation AP", MEMBER_COLOURS[1], "--", "s"),
    "val_acc": ("validation accuracy at 0.5", MEMBER_COLOURS[2], ":", "^"),
}


def curves_figure(history: Sequence[Mapping[str, Any]], title: str, selected_epoch: int | None = None):
    """Loss (left) and validation metrics (right) per epoch, the epoch best.pt holds marked."""
    from matplotlib.ticker import MaxNLocator

    figure, (left, right) = new_figure(2, panel_size=(5.0, 3.8))
    epochs = [r["epoch"] for r in history]
    for axis, keys in ((left, ("train_loss", "val_loss")), (right, ("val_auc", "val_ap", "val_acc"))):
        for key in keys:
            values = [r.get(key) for r in history]
            if any(v is not None for v in values):
                label, colour, linestyle, marker = CURVE_STYLES[key]
                values = [math.nan if v is None else v for v in values]
                axis.plot(epochs, values, color=colour, ls=linestyle, marker=marker, ms=4, label=label)
        axis.set_xlabel("epoch", fontsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.tick_params(labelsize=7)
        if selected_epoch is not None:
            axis.axvline(selected_epoch, color="#999999", ls="--", lw=1.0, label=f"best.pt (epoch {selected_epoch})")
        axis.legend(fontsize=7)
    left.set_ylabel("loss", fontsize=8)
    left.set_title("loss", fontsize=9)
    right.set_ylabel("validation metric (0-1)", fontsize=8)
    right.set_title("validation", fontsize=9)
    set_title(figure, title)
    return figure
