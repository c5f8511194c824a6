"""PNG figures from run folders (matplotlib, Agg, no pyplot state).

- `alpha_beta_<model>[_<overrides>].png`: SDCIB Fig. 2 style, ACC and NMI over the (model.alpha,
  model.beta) pairs read from .hydra/config.yaml, one row of panels per dataset.
- `curves_<dataset>_<model>[_<overrides>].png`: metrics.csv per epoch, mean over seeds ± std.
- `confusion_<...>.png`: predictions.npz, true class vs predicted cluster after Hungarian matching,
  summed over the group's runs (each matched on its own).
- `tsne_<...>.png`: t-SNE of embedding.npz (`features`, N x d; `y_pred` optional) of the group's
  first run that has one, at most MAX_TSNE_POINTS points.
"""
from __future__ import annotations

import csv
import hashlib
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.optimize import linear_sum_assignment

from clusterbench.metrics import contingency_table
from clusterbench.report.runs import Group, Run, config_value, relevant_overrides

MAX_TSNE_POINTS = 2000
EMBEDDING_FILE = "embedding.npz"
# metrics.csv columns that are evaluations or the collapse monitor, not loss terms
EVALUATION_COLUMNS = ("acc", "nmi", "ari", "purity")
MONITOR_COLUMNS = ("nonempty_clusters", "largest_cluster_share", "assignment_entropy")
NOT_LOSS_TERMS = {"epoch", "loss", "last_batch_loss", *EVALUATION_COLUMNS, *MONITOR_COLUMNS}


@dataclass
class FigureReport:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why


def group_slug(group: Group, with_dataset: bool = True) -> str:
    """A file-name-safe name for a group; long override lists are cut and made unique by a hash."""
    parts = ([group.dataset] if with_dataset else []) + [group.model]
    if group.overrides:
        readable = re.sub(r"[^A-Za-z0-9._]+", "-", group.overrides).strip("-")[:40].rstrip("-")
        parts += [readable, hashlib.sha1(group.overrides.encode()).hexdigest()[:6]]
    return "_".join(parts)


def _describe(group: Group) -> str:
    return f"{group.model} on {group.dataset}" + (f" ({group.overrides})" if group.overrides else "")


def _save(figure: Figure, path: Path, report: FigureReport) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=100)
    report.written.append(path)


# --------------------------------------------------------------------------- alpha / beta bars


def _alpha_beta(run: Run) -> tuple[float, float] | None:
    alpha, beta = config_value(run.config, "model.alpha"), config_value(run.config, "model.beta")
    if isinstance(alpha, (int, float)) and isinstance(beta, (int, float)) and not isinstance(alpha, bool):
        return float(alpha), float(beta)
    return None


def alpha_beta_figures(groups: list[Group], out_dir: Path, aggregate: str, report: FigureReport) -> None:
    """One figure per (model, overrides other than alpha/beta) whose runs cover >= 2 (alpha, beta) pairs."""
    # (model, rest of overrides) -> dataset -> (alpha, beta) -> runs
    grid: dict[tuple[str, str], dict[str, dict[tuple[float, float], list[Run]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
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
                    ax.bar(xs, heights, yerr=errors if any(errors) else None, color=colours[j], width=0.9,
                           label=f"β={beta:g}", capsize=2)
                ax.set_xticks([i * (len(betas) + 1) + (len(betas) - 1) / 2 for i in range(len(alphas))])
                ax.set_xticklabels([f"α={a:g}" for a in alphas])
                ax.set_ylim(0, 1)
                ax.set_ylabel(metric.upper())
                ax.set_title(f"{dataset}: {metric.upper()}" + (" (label-selected)" if label_selected else ""))
                if row == 0 and column == 1:
                    ax.legend(fontsize=7, ncol=len(betas), loc="upper right")
        how = "max over seeds" if aggregate == "max" else "mean ± std over seeds"
        figure.suptitle(f"{model}: α, β ({how})" + (f"; {rest}" if rest else ""))
        suffix = ""
        if rest:
            suffix = "_" + hashlib.sha1(rest.encode()).hexdigest()[:6]
        _save(figure, out_dir / f"alpha_beta_{model}{suffix}.png", report)


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


def _plot_columns(ax, tables: list[dict[str, dict[int, float]]], names: list[str], styles: dict[str, str] | None = None) -> None:
    for k, name in enumerate(names):
        series = [t[name] for t in tables if name in t]
        epochs, mean, std = _mean_band(series)
        style = (styles or {}).get(name, "-")
        (line,) = ax.plot(epochs, mean, style, color=f"C{k % 10}", marker="." if len(epochs) < 30 else None, label=name)
        if len(series) > 1:
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.legend(fontsize=7)
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
    panels = [(title, names) for title, names in (("loss", losses), ("loss terms", terms), ("evaluation", evaluations)) if names]
    figure = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, names) in zip(axes, panels):
        styles = {"largest_cluster_share": "--", "assignment_entropy": ":"}
        _plot_columns(ax, tables, list(dict.fromkeys(names)), styles)
        ax.set_title(title)
    band = "mean ± std over" if len(tables) > 1 else "one run of"
    figure.suptitle(f"{_describe(group)}: {band} {len(tables)} seed(s)", fontsize=9)
    _save(figure, out_dir / f"curves_{group_slug(group)}.png", report)


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
    total, classes, used = None, None, 0
    for run in group.sorted_runs():
        path = run.path / "predictions.npz"
        if not path.is_file():
            continue
        with np.load(path) as data:
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
        report.notes.append(f"confusion: {_describe(group)}: no predictions.npz")
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
                    ax.text(j, i, str(total[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.5 else "black")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(total.shape[1]))
    ax.set_xticklabels(labels + (["unmatched"] if total.shape[1] > n_classes else []), rotation=90, fontsize=7)
    ax.set_yticks(range(n_classes))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("predicted cluster, matched to a class (Hungarian)")
    ax.set_ylabel("true class")
    accuracy = np.trace(total[:, :n_classes]) / total.sum()
    ax.set_title(f"{_describe(group)}\n{used} run(s) summed, matched ACC {accuracy:.4f}", fontsize=8)
    _save(figure, out_dir / f"confusion_{group_slug(group)}.png", report)


# --------------------------------------------------------------------------- t-SNE


def _embedding_run(group: Group) -> Run | None:
    return next((run for run in group.sorted_runs() if (run.path / EMBEDDING_FILE).is_file()), None)


def tsne_figure(group: Group, out_dir: Path, report: FigureReport) -> None:
    run = _embedding_run(group)
    if run is None:
        report.notes.append(
            f"t-SNE: {_describe(group)}: the run(s) saved no representation ({EMBEDDING_FILE} with `features`)"
        )
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
            if len(data["y_true"]) == len(features):
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
    colourings = [("cluster", clusters), ("true class", classes)]
    colourings = [(name, labels[index]) for name, labels in colourings if labels is not None] or [("", None)]
    figure = Figure(figsize=(4.5 * len(colourings), 4.2), layout="constrained")
    axes = figure.subplots(1, len(colourings), squeeze=False)[0]
    for ax, (name, labels) in zip(axes, colourings):
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab20" if labels is not None else None, s=4, linewidths=0)
        ax.set_title(f"coloured by {name}" if name else "no labels saved", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    shown = f"{len(index)} of {len(features)} points" if len(index) < len(features) else f"{len(features)} points"
    figure.suptitle(f"t-SNE, {_describe(group)}, seed {run.seed}: {shown}", fontsize=9)
    _save(figure, out_dir / f"tsne_{group_slug(group)}.png", report)


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
            bars = ax.bar(xs, heights, width=width * 0.95, yerr=errors if any(errors) else None, capsize=2,
                          color=f"C{i % 10}", label=row.label + (" (floor)" if row.kind == "floor" else ""))
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
