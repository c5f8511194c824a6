"""Figures from run folders (matplotlib, Agg, no pyplot state), each written as PNG (200 dpi)
and PDF, named `<kind>_<dataset>_<model>[_<overrides>]` with the overrides spelled out
(`alpha-0.1_beta-1`; a hash is added only to names longer than MAX_NAME characters).

- `alpha_beta_<model>[_<overrides>]`: SDCIB Fig. 2 style, ACC and NMI over the (model.alpha,
  model.beta) pairs read from .hydra/config.yaml, one row of panels per dataset.
- `curves_<dataset>_<model>[_<overrides>]`: metrics.csv per epoch, mean over seeds ± std: the
  loss, then one panel per named loss term (each on its own axis: SDCIB's compression term is
  thousands of nats, its other terms near 0), then the evaluations; legends outside the axes.
- `confusion_<...>`: predictions.npz, true class vs predicted cluster after Hungarian matching,
  summed over the group's runs (each matched on its own); class names from results.json.
- `tsne_<...>`: t-SNE of embedding.npz (`features`, N x d; `y_pred` optional) of the group's
  first run that has one, at most MAX_TSNE_POINTS points; each cluster drawn in the colour of
  the class the Hungarian matching gives it, with legends.
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.optimize import linear_sum_assignment

from clusterbench.metrics import contingency_table
from clusterbench.report.runs import Group, Run, config_value, relevant_overrides

MAX_TSNE_POINTS = 2000
MAX_NAME = 120  # characters of a figure's file name (without suffix) before it is cut and hashed
DPI = 200
FORMATS = ("png", "pdf")
MAX_LEGEND_ENTRIES = 20
EMBEDDING_FILE = "embedding.npz"
# metrics.csv columns that are evaluations or the collapse monitor, not loss terms
EVALUATION_COLUMNS = ("acc", "nmi", "ari", "purity")
MONITOR_COLUMNS = ("nonempty_clusters", "largest_cluster_share", "assignment_entropy")
NOT_LOSS_TERMS = {"epoch", "loss", "last_batch_loss", *EVALUATION_COLUMNS, *MONITOR_COLUMNS}


@dataclass
class FigureReport:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why


def overrides_slug(overrides: str) -> str:
    """`model.alpha=0.1 model.beta=1.0` -> `alpha-0.1_beta-1.0`: each override as its last key
    and value (the full key where two last keys would clash), file-name-safe."""
    items = [o.lstrip("+~").split("=", 1) for o in overrides.split()]
    last = [key.rsplit(".", 1)[-1] for key, *_ in items]
    parts = []
    for (key, *value), short in zip(items, last):
        name = short if last.count(short) == 1 else key
        parts.append(f"{name}-{value[0]}" if value else name)
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", "_".join(parts)).strip("-")


def _fit_name(name: str, full: str) -> str:
    """`name`, or its first MAX_NAME - 7 characters and a hash of `full` when it is longer."""
    if len(name) <= MAX_NAME:
        return name
    return name[: MAX_NAME - 7].rstrip("-_.") + "_" + hashlib.sha1(full.encode()).hexdigest()[:6]


def group_slug(group: Group, with_dataset: bool = True) -> str:
    """A readable, file-name-safe name for a group: dataset, model and the overrides spelled out."""
    parts = ([group.dataset] if with_dataset else []) + [group.model]
    if group.overrides:
        parts.append(overrides_slug(group.overrides))
    return _fit_name("_".join(parts), f"{group.dataset} {group.model} {group.overrides}")


def _describe(group: Group) -> str:
    return f"{group.model} on {group.dataset}" + (f" ({group.overrides})" if group.overrides else "")


def _save(figure: Figure, path: Path, report: FigureReport) -> None:
    """`path` without suffix: written as PNG at DPI and as PDF (vector, for papers)."""
    FigureCanvasAgg(figure)
    for suffix in FORMATS:
        target = path.with_name(f"{path.name}.{suffix}")
        figure.savefig(target, dpi=DPI)
        report.written.append(target)


def _legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, fontsize=7, **kwargs)


# --------------------------------------------------------------------------- alpha / beta bars


def _alpha_beta(run: Run) -> tuple[float, float] | None:
    alpha, beta = config_value(run.config, "model.alpha"), config_value(run.config, "model.beta")
    if isinstance(alpha, (int, float)) and isinstance(beta, (int, float)) and not isinstance(alpha, bool):
        return float(alpha), float(beta)
    return None


def alpha_beta_figures(groups: list[Group], out_dir: Path, aggregate: str, report: FigureReport) -> None:
    """One figure per (model, overrides other than alpha/beta) whose runs cover >= 2 (alpha, beta) pairs."""
    # (model, rest of overrides) -> dataset -> (alpha, beta) -> runs
    grid: dict[tuple[str, str], dict[str, dict[tuple[float, float], list[Run]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for group in groups:
        for run in group.runs:
            pair = _alpha_beta(run)
            if pair is None:
                continue
            rest = relevant_overrides(list(run.results.get("overrides") or []), ("model.alpha=", "model.beta="))
            grid[(group.model, rest)][group.dataset][pair].append(run)
    for (model, rest), all_datasets in sorted(grid.items()):
        # a dataset with one setting is a single bar: nothing to compare
        datasets = {dataset: pairs for dataset, pairs in all_datasets.items() if len(pairs) >= 2}
        if not datasets:
            continue
        label_selected = aggregate == "max" or any(
            run.uses_labels for pairs in datasets.values() for runs in pairs.values() for run in runs
        )
        figure = Figure(figsize=(12, 3 * len(datasets)), layout="constrained")
        axes = figure.subplots(len(datasets), 2, squeeze=False)
        for row, (dataset, pairs) in enumerate(sorted(datasets.items())):
            alphas = sorted({a for a, _ in pairs})
            betas = sorted({b for _, b in pairs})
            colours = [f"C{i % 10}" for i in range(len(betas))]
            for column, metric in enumerate(("acc", "nmi")):
                ax = axes[row][column]
                for j, beta in enumerate(betas):
                    xs, heights, errors = [], [], []
                    for i, alpha in enumerate(alphas):
                        values = [r.results["metrics"][metric] for r in pairs.get((alpha, beta), []) if metric in r.results["metrics"]]
                        if not values:
                            continue
                        xs.append(i * (len(betas) + 1) + j)
                        heights.append(max(values) if aggregate == "max" else float(np.mean(values)))
                        errors.append(0.0 if aggregate == "max" or len(values) < 2 else float(np.std(values, ddof=1)))
                    ax.bar(xs, heights, yerr=errors if any(errors) else None, color=colours[j], width=0.9, label=f"β={beta:g}", capsize=2)
                ax.set_xticks([i * (len(betas) + 1) + (len(betas) - 1) / 2 for i in range(len(alphas))])
                ax.set_xticklabels([f"α={a:g}" for a in alphas])
                ax.set_ylim(0, 1)
                ax.set_ylabel(metric.upper())
                ax.set_title(f"{dataset}: {metric.upper()}" + (" (label-selected)" if label_selected else ""))
                if row == 0 and column == 1:
                    _legend_outside(ax)
        how = "max over seeds" if aggregate == "max" else "mean ± std over seeds"
        figure.suptitle(f"{model}: α, β ({how})" + (f"; {rest}" if rest else ""))
        name = _fit_name(f"alpha_beta_{model}" + (f"_{overrides_slug(rest)}" if rest else ""), f"{model} {rest}")
        _save(figure, out_dir / name, report)


# --------------------------------------------------------------------------- training curves


def _read_metrics_csv(path: Path) -> dict[str, dict[int, float]]:
    """column -> epoch -> value; empty cells (epochs without evaluation) are left out."""
    columns: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                epoch = int(float(row.get("epoch", "")))
            except ValueError:
                continue
            for name, text in row.items():
                if name == "epoch" or name is None or text in (None, ""):
                    continue
                try:
                    columns[name][epoch] = float(text)
                except ValueError:
                    continue
    return dict(columns)


def _mean_band(series: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    epochs = np.array(sorted({e for s in series for e in s}))
    matrix = np.array([[s.get(e, np.nan) for e in epochs] for s in series], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # epochs seen by one run only
        mean = np.nanmean(matrix, axis=0)
        counts = np.sum(~np.isnan(matrix), axis=0)
        std = np.where(counts > 1, np.nanstd(matrix, axis=0, ddof=1) if len(series) > 1 else 0.0, 0.0)
    return epochs, mean, np.nan_to_num(std)


def _plot_columns(
    ax, tables: list[dict[str, dict[int, float]]], names: list[str], styles: dict[str, str] | None = None, legend: bool = True
) -> None:
    for k, name in enumerate(names):
        series = [t[name] for t in tables if name in t]
        epochs, mean, std = _mean_band(series)
        style = (styles or {}).get(name, "-")
        (line,) = ax.plot(epochs, mean, style, color=f"C{k % 10}", marker="." if len(epochs) < 30 else None, label=name)
        if len(series) > 1:
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if legend:
        _legend_outside(ax)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def curve_figure(group: Group, out_dir: Path, report: FigureReport) -> None:
    tables = [_read_metrics_csv(run.path / "metrics.csv") for run in group.sorted_runs() if (run.path / "metrics.csv").is_file()]
    if not tables:
        report.notes.append(f"curves: {_describe(group)}: no metrics.csv")
        return
    epochs = {e for t in tables for column in t.values() for e in column}
    if len(epochs) < 2:
        report.notes.append(f"curves: {_describe(group)}: one epoch only, no curve to draw")
        return
    present = [name for t in tables for name in t]
    losses = [c for c in ("loss", "last_batch_loss") if c in present]
    terms = sorted({c for c in present if c not in NOT_LOSS_TERMS})
    evaluations = [c for c in (*EVALUATION_COLUMNS, "largest_cluster_share", "assignment_entropy") if c in present]
    # the loss, one panel per loss term (each on its own scale), the evaluations last
    panels = [("loss", losses, True)] if losses else []
    panels += [(f"loss term: {term}", [term], False) for term in terms]
    if evaluations:
        panels.append(("evaluation", evaluations, True))
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.2 * columns + 1.2, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    styles = {"largest_cluster_share": "--", "assignment_entropy": ":"}
    for ax, (title, names, legend) in zip(axes, panels):
        _plot_columns(ax, tables, list(dict.fromkeys(names)), styles, legend=legend and len(names) > 1)
        ax.set_title(title, fontsize=9)
        if len(names) == 1:
            ax.set_ylabel(names[0], fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    band = "mean ± std over" if len(tables) > 1 else "one run of"
    figure.suptitle(f"{_describe(group)}: {band} {len(tables)} seed(s)", fontsize=9)
    _save(figure, out_dir / f"curves_{group_slug(group)}", report)


# --------------------------------------------------------------------------- confusion matrix


def matched_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Class x class counts after the Hungarian cluster-to-class matching of ACC, plus unmatched clusters.

    Returns (matrix, class_values, has_unmatched): matrix is C x C, or C x (C + 1) with a last
    column that collects clusters matched to no class (when there are more clusters than classes).
    """
    table, classes, _ = contingency_table(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    n_classes = len(classes)
    matrix = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    matrix[:, rows] = table[:, cols]
    unmatched = np.setdiff1d(np.arange(table.shape[1]), cols)
    matrix[:, n_classes] = table[:, unmatched].sum(axis=1)
    has_unmatched = bool(len(unmatched))
    return (matrix if has_unmatched else matrix[:, :n_classes]), classes, has_unmatched


def confusion_figure(group: Group, out_dir: Path, report: FigureReport) -> None:
    total, classes, used, names = None, None, 0, None
    for run in group.sorted_runs():
        if names is None:
            names = (run.results.get("dataset") or {}).get("class_names")
        path = run.path / "predictions.npz"
        if not path.is_file():
            continue
        with np.load(path) as data:
            if "y_true" not in data:
                continue  # a run without labels
            matrix, run_classes, _ = matched_confusion(data["y_true"], data["y_pred"])
        # pad to C + 1 columns so runs with and without unmatched clusters add up
        matrix = np.pad(matrix, ((0, 0), (0, len(run_classes) + 1 - matrix.shape[1])))
        if total is None:
            total, classes = matrix, run_classes
        elif not np.array_equal(classes, run_classes):
            report.notes.append(f"confusion: {run.path}: other classes than the group's first run; left out")
            continue
        else:
            total = total + matrix
        used += 1
    if total is None:
        report.notes.append(f"confusion: {_describe(group)}: no predictions.npz with true labels")
        return
    if not total[:, -1].any():
        total = total[:, :-1]
    n_classes = len(classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = total / total.sum(axis=1, keepdims=True)
    size = max(4.0, 0.45 * total.shape[1] + 2)
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(np.nan_to_num(shares), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the class")
    if n_classes <= 20:
        for i in range(total.shape[0]):
            for j in range(total.shape[1]):
                if total[i, j]:
                    ax.text(j, i, str(total[i, j]), ha="center", va="center", fontsize=7, color="white" if shares[i, j] > 0.5 else "black")
    labels = _class_labels(classes, names)
    ax.set_xticks(range(total.shape[1]))
    ax.set_xticklabels(labels + (["unmatched"] if total.shape[1] > n_classes else []), rotation=90, fontsize=7)
    ax.set_yticks(range(n_classes))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("predicted cluster, matched to a class (Hungarian)", fontsize=8)
    ax.set_ylabel("true class")
    accuracy = np.trace(total[:, :n_classes]) / total.sum()
    ax.set_title(f"{_describe(group)}\n{used} run(s) summed, matched ACC {accuracy:.4f}", fontsize=8)
    _save(figure, out_dir / f"confusion_{group_slug(group)}", report)


def _class_labels(classes, names) -> list[str]:
    """Tick labels of the classes: their names when results.json lists them (label value i is
    names[i]), else the label values."""
    if names and all(isinstance(c, (int, np.integer)) and 0 <= int(c) < len(names) for c in classes):
        return [str(names[int(c)]) for c in classes]
    return [str(c) for c in classes]


# --------------------------------------------------------------------------- t-SNE


def _embedding_run(group: Group) -> Run | None:
    return next((run for run in group.sorted_runs() if (run.path / EMBEDDING_FILE).is_file()), None)


def tsne_figure(group: Group, out_dir: Path, report: FigureReport) -> None:
    run = _embedding_run(group)
    if run is None:
        report.notes.append(f"t-SNE: {_describe(group)}: the run(s) saved no representation ({EMBEDDING_FILE} with `features`)")
        return
    with np.load(run.path / EMBEDDING_FILE) as data:
        if "features" not in data:
            report.notes.append(f"t-SNE: {run.path / EMBEDDING_FILE} has no `features` array")
            return
        features = np.asarray(data["features"], dtype=np.float64)
        clusters = np.asarray(data["y_pred"]) if "y_pred" in data else None
    if features.ndim != 2 or len(features) < 5:
        report.notes.append(f"t-SNE: {run.path / EMBEDDING_FILE}: `features` must be N x d with N >= 5, got {features.shape}")
        return
    classes = None
    predictions = run.path / "predictions.npz"
    if predictions.is_file():
        with np.load(predictions) as data:
            if "y_true" in data and len(data["y_true"]) == len(features):
                classes = np.asarray(data["y_true"])
                if clusters is None:
                    clusters = np.asarray(data["y_pred"])
    if clusters is not None and len(clusters) != len(features):
        clusters = None
    # a fixed subsample keeps t-SNE to seconds on large datasets
    index = np.arange(len(features))
    if len(index) > MAX_TSNE_POINTS:
        index = np.sort(np.random.default_rng(0).choice(len(index), MAX_TSNE_POINTS, replace=False))
    points = features[index]
    if points.shape[1] == 1:
        points = np.column_stack([points[:, 0], np.zeros(len(points))])
    elif points.shape[1] > 2:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=perplexity).fit_transform(points)
    names = (run.results.get("dataset") or {}).get("class_names")
    panels = tsne_colours(clusters, classes, names)
    figure = Figure(figsize=(5.6 * max(1, len(panels)), 4.2), layout="constrained")
    axes = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    if not panels:
        axes[0].scatter(points[:, 0], points[:, 1], s=4, linewidths=0)
        axes[0].set_title("no labels or clusters saved", fontsize=8)
    for ax, (title, colour_index, legend) in zip(axes, panels):
        colour_index = colour_index[index]
        n_colours = int(colour_index.max()) + 1
        cmap = "tab10" if n_colours <= 10 else "tab20"
        palette = matplotlib.colormaps[cmap]
        for c in np.unique(colour_index):
            mask = colour_index == c
            ax.scatter(
                points[mask, 0], points[mask, 1], color=palette(int(c) % palette.N), s=4, linewidths=0, label=legend.get(int(c), str(c))
            )
        ax.set_title(title, fontsize=8)
        if len(np.unique(colour_index)) <= MAX_LEGEND_ENTRIES:
            _legend_outside(ax, markerscale=3)
        ax.set_xticks([])
        ax.set_yticks([])
    shown = f"{len(index)} of {len(features)} points" if len(index) < len(features) else f"{len(features)} points"
    figure.suptitle(f"t-SNE, {_describe(group)}, seed {run.seed}: {shown}", fontsize=9)
    _save(figure, out_dir / f"tsne_{group_slug(group)}", report)


def tsne_colours(
    clusters: np.ndarray | None, classes: np.ndarray | None, names: list[str] | None = None
) -> list[tuple[str, np.ndarray, dict[int, str]]]:
    """(title, colour index per sample, legend text per colour index) for each t-SNE panel.

    With true classes, class c has colour c, and each cluster takes the colour of the class the
    Hungarian matching of ACC gives it (so a well-clustered point has the same colour in both
    panels); clusters matched to no class get colours after the classes'. Without classes,
    clusters are coloured by their own index."""
    panels = []
    if classes is not None:
        class_values, class_index = np.unique(classes, return_inverse=True)
        labels = _class_labels(class_values, names)
        class_legend = {i: labels[i] for i in range(len(class_values))}
        if clusters is not None:
            table, _, cluster_values = contingency_table(classes, clusters)
            rows, cols = linear_sum_assignment(table, maximize=True)
            colour_of = {int(cluster_values[c]): int(r) for r, c in zip(rows, cols)}
            extra = len(class_values)
            legend = {}
            for value in cluster_values:
                if int(value) not in colour_of:
                    colour_of[int(value)] = extra
                    extra += 1
                legend[colour_of[int(value)]] = (
                    f"cluster {value} → {class_legend[colour_of[int(value)]]}"
                    if colour_of[int(value)] < len(class_values)
                    else f"cluster {value} (unmatched)"
                )
            colour = np.array([colour_of[int(v)] for v in clusters])
            panels.append(("clusters, coloured by their matched class (Hungarian)", colour, legend))
        panels.append(("true classes", class_index, class_legend))
    elif clusters is not None:
        values, colour = np.unique(clusters, return_inverse=True)
        panels.append(("clusters (no true labels)", colour, {i: f"cluster {v}" for i, v in enumerate(values)}))
    return panels


PER_GROUP_KINDS = {"curves": curve_figure, "confusion": confusion_figure, "tsne": tsne_figure}
KINDS = ("alpha_beta", *PER_GROUP_KINDS)


def write_figures(groups: list[Group], out_dir: Path, aggregate: str = "mean", kinds: tuple[str, ...] = KINDS) -> FigureReport:
    """The figures of the given kinds; a large sweep draws about 0.5 s per figure, so kinds can be left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = FigureReport()
    if "alpha_beta" in kinds:
        alpha_beta_figures(groups, out_dir, aggregate, report)
    for group in groups:
        for kind, draw in PER_GROUP_KINDS.items():
            if kind in kinds:
                draw(group, out_dir, report)
    return report


# --------------------------------------------------------------------------- pivot: grouped bars


def pivot_bar_figures(pivot, out_dir: Path) -> list[Path]:
    """`report --pivot`: one grouped bar chart per metric, datasets along x, one bar per method
    row (mean with a ± std whisker; label-selected bars hatched, paper values as black ticks).
    Written as bars_<metric>.png (200 dpi) and .pdf; returns the paths."""
    from clusterbench.report.tables import TITLES

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row for row in pivot.rows if row.kind != "paper"]
    papers = {row.of: row for row in pivot.rows if row.kind == "paper"}
    written: list[Path] = []
    if not rows or not pivot.datasets:
        return written
    width = 0.8 / len(rows)
    for metric in pivot.metrics:
        figure = Figure(figsize=(max(6.0, 1.2 + 0.35 * len(rows) * len(pivot.datasets)), 4.2), layout="constrained")
        ax = figure.subplots()
        for i, row in enumerate(rows):
            xs, heights, errors, hatched = [], [], [], []
            for j, dataset in enumerate(pivot.datasets):
                cell = row.cells.get(dataset, {}).get(metric)
                if cell is None:
                    continue
                xs.append(j - 0.4 + width * (i + 0.5))
                heights.append(cell.value)
                errors.append(cell.std or 0.0)
                hatched.append(bool(row.label_selected.get(dataset)))
            if not xs:
                continue
            bars = ax.bar(
                xs,
                heights,
                width=width * 0.95,
                yerr=errors if any(errors) else None,
                capsize=2,
                color=f"C{i % 10}",
                label=row.label + (" (floor)" if row.kind == "floor" else ""),
            )
            for bar, hatch in zip(bars, hatched):
                if hatch:
                    bar.set_hatch("//")
            paper = papers.get(row.label)
            if paper is not None:
                for j, dataset in enumerate(pivot.datasets):
                    cell = paper.cells.get(dataset, {}).get(metric)
                    if cell is not None:
                        x = j - 0.4 + width * (i + 0.5)
                        ax.plot([x - width / 2, x + width / 2], [cell.value, cell.value], color="black", linewidth=1.5)
        ax.set_xticks(range(len(pivot.datasets)))
        ax.set_xticklabels(pivot.datasets, rotation=20 if len(pivot.datasets) > 4 else 0)
        ax.set_ylim(0, 1)
        ax.set_ylabel(TITLES[metric])
        how = "max over runs" if pivot.aggregate == "max" else "mean ± std over runs"
        ax.set_title(f"{TITLES[metric]} ({how}; hatched: label-selected; black tick: paper)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        for suffix in ("png", "pdf"):
            path = out_dir / f"bars_{metric}.{suffix}"
            FigureCanvasAgg(figure)
            figure.savefig(path, dpi=200)
            written.append(path)
    return written
