"""The results table: aggregation over seeds, best / second-best marks, paper columns; md, CSV, LaTeX."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from clusterbench.report.reference import PaperRow, Reference, paper_row_for

# purity is shown where results.json has it (runs written before it was recorded have a "-");
# silhouette and Calinski-Harabasz where runs on data without labels recorded them (runs.py
# lists a run whose value of one of them is not a number as damaged)
from clusterbench.report.runs import METRICS, Group, Unfinished

TITLES = {
    "acc": "ACC",
    "nmi": "NMI",
    "ari": "ARI",
    "purity": "Purity",
    "silhouette": "Silhouette",
    "calinski_harabasz": "Calinski-Harabasz",
}
ALWAYS_SHOWN = ("acc", "nmi", "ari")
DECIMALS = 4  # shown precision; ranks are taken on the shown values so that equal-looking cells tie

LABEL_SELECTED_NOTE = (
    "† label-selected: chosen with the ground-truth labels (a run's selection rule reads them, "
    "or the maximum over runs is taken); not comparable with label-free numbers."
)
MAX_HEADER = "Metrics are the MAXIMUM over runs, per metric: selected with the labels (label-selected)."
THROUGHPUT_NOTE = (
    "samples/s: training samples per second; % peak: the training's counted FLOP/s over the matmul peak measured "
    "in the same process (results.json `throughput`); means over the runs that recorded them. Runs on other "
    "machines, or on a loaded one, are not comparable."
)


@dataclass
class Cell:
    value: float
    std: float | None  # None for --aggregate max, and for one run (no spread to show)
    n: int
    rank: int | None = None  # 1 best, 2 second best within the dataset
    paper: float | None = None
    paper_note: str = ""

    @property
    def difference(self) -> float | None:
        return None if self.paper is None else self.value - self.paper


@dataclass
class Row:
    group: Group
    cells: dict[str, Cell | None]
    label_selected: bool  # the numbers were chosen with labels, by a run's selection rule or by the aggregation
    paper: PaperRow | None = None

    @property
    def seeds(self) -> str:
        return ",".join(str(run.seed) for run in self.group.sorted_runs())

    @property
    def selection(self) -> str:
        return ", ".join(sorted({run.selection_rule + (" (label-selected)" if run.uses_labels else "") for run in self.group.runs}))


@dataclass
class Table:
    rows: list[Row]
    aggregate: str
    unfinished: list[Unfinished] = field(default_factory=list)
    throughput: bool = False  # report --throughput: samples/s and % of peak columns

    @property
    def metrics(self) -> list[str]:
        """ACC, NMI, ARI always; purity and the label-free scores when some run recorded them."""
        return [m for m in METRICS if m in ALWAYS_SHOWN or any(row.cells.get(m) for row in self.rows)]

    @property
    def paper_metrics(self) -> list[str]:
        """Metrics with a paper value in some row: these get paper and difference columns."""
        return [m for m in METRICS if any(row.cells.get(m) and row.cells[m].paper is not None for row in self.rows)]

    @property
    def references(self) -> list[Reference]:
        seen: dict[str, Reference] = {}
        for row in self.rows:
            if row.paper is not None:
                seen.setdefault(row.paper.reference.name, row.paper.reference)
        return list(seen.values())

    def notes(self) -> list[str]:
        """What the marks and columns mean, and what was left out; shown under every format but CSV."""
        notes = []
        if any(row.label_selected for row in self.rows):
            notes.append(LABEL_SELECTED_NOTE)
        if self.throughput:
            notes.append(THROUGHPUT_NOTE)
        if self.aggregate == "mean":
            notes.append(
                "Cells: mean ± sample standard deviation over the n runs (seeds) of the row; a row of one run shows its value alone."
            )
        else:
            notes.append("Cells: the maximum over the n runs of the row, each metric taken separately.")
        if any(cell and cell.rank for row in self.rows for cell in row.cells.values()):
            among = "among rows whose runs chose their epoch and view without the labels"
            if self.aggregate == "max":  # every cell is itself a choice made with the labels
                among += " (each cell is a maximum over runs, picked with the labels; rows are compared as papers compare them)"
            notes.append(f"Bold: best, underlined: second best per dataset and metric, {among}.")
        for reference in self.references:
            notes.append(
                f"Paper columns: {reference.title} [{reference.name}], divided by {reference.scale:g}; "
                f"Δ = obtained − paper. {reference.protocol}"
            )
        for row in self.rows:
            if row.group.aliases:
                notes.append(f"{row.group.label}: the same configuration under {len(row.group.names)} names, one row.")
            if row.group.duplicates:
                notes.append(
                    f"{row.group.label}, {row.group.dataset}: {len(row.group.duplicates)} run(s) with the same "
                    "configuration and seed as a counted run, not counted again."
                )
            for metric, cell in row.cells.items():
                if cell is not None and cell.paper_note:
                    notes.append(f"* {row.paper.label}, {row.group.dataset} {TITLES[metric]}: {cell.paper_note}")
        return notes


def throughput_of(group: Group) -> tuple[float | None, float | None]:
    """(training samples/s, fraction of the matmul peak): means over the group's runs whose
    results.json has them (engine/throughput.py); None where none has."""
    speeds, fractions = [], []
    for run in group.runs:
        block = run.results.get("throughput") or {}
        speed = (block.get("train") or {}).get("samples_per_s")
        if isinstance(speed, (int, float)) and math.isfinite(speed):
            speeds.append(float(speed))
        fraction = block.get("fraction_of_peak")
        if isinstance(fraction, (int, float)) and math.isfinite(fraction):
            fractions.append(float(fraction))
    return (statistics.fmean(speeds) if speeds else None, statistics.fmean(fractions) if fractions else None)


def _throughput_text(group: Group) -> list[str]:
    speed, fraction = throughput_of(group)
    return [f"{speed:,.0f}" if speed is not None else "-", f"{fraction:.1%}" if fraction is not None else "-"]


def _aggregate(values: list[float], aggregate: str, n: int) -> Cell:
    if aggregate == "max":
        return Cell(max(values), None, n)
    std = statistics.stdev(values) if len(values) > 1 else None  # one run: no "± 0"
    return Cell(statistics.mean(values), std, n)


def _mark_best(rows: list[Row]) -> None:
    """Rank 1 and 2 per dataset and metric among rows whose runs used no labels to choose.

    Under --aggregate max every row is label-selected in the same way, so rows are still compared;
    a row whose runs read the labels to pick their epoch is never crowned against those that did not.
    """
    by_dataset: dict[str, list[Row]] = {}
    for row in rows:
        if not row.group.uses_labels:
            by_dataset.setdefault(row.group.dataset, []).append(row)
    for candidates in by_dataset.values():
        if len(candidates) < 2:
            continue
        for metric in METRICS:
            shown = [(round(row.cells[metric].value, DECIMALS), row) for row in candidates if row.cells.get(metric)]
            distinct = sorted({value for value, _ in shown}, reverse=True)
            for value, row in shown:
                if value == distinct[0]:
                    row.cells[metric].rank = 1
                elif len(distinct) > 1 and value == distinct[1]:
                    row.cells[metric].rank = 2


def build_table(
    groups: dict[tuple[str, str, str], Group],
    unfinished: list[Unfinished] | None = None,
    aggregate: str = "mean",
    references: list[Reference] | None = None,
    throughput: bool = False,
) -> Table:
    rows = []
    for group in groups.values():
        cells: dict[str, Cell | None] = {}
        for metric in METRICS:
            values = [float(run.results["metrics"][metric]) for run in group.runs if run.results["metrics"].get(metric) is not None]
            values = [v for v in values if math.isfinite(v)]
            cells[metric] = _aggregate(values, aggregate, len(values)) if values else None
        paper = paper_row_for(group, references or [])
        if paper is not None:
            for metric, value in paper.values.items():
                if cells.get(metric) is not None:
                    cells[metric].paper = value
                    cells[metric].paper_note = paper.notes.get(metric, "")
        rows.append(Row(group, cells, label_selected=group.uses_labels or aggregate == "max", paper=paper))
    _mark_best(rows)
    return Table(rows, aggregate, list(unfinished or []), throughput=throughput)


# --------------------------------------------------------------------------- Markdown


def _number(cell: Cell) -> str:
    text = f"{cell.value:.{DECIMALS}f}"
    return text if cell.std is None else f"{text} ± {cell.std:.{DECIMALS}f}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(cell: Cell | None, label_selected: bool) -> str:
    if cell is None:
        return "-"
    text = _number(cell)
    text = {1: f"**{text}**", 2: f"<u>{text}</u>"}.get(cell.rank, text)
    return text + (" †" if label_selected else "")


def _paper_text(cell: Cell | None) -> tuple[str, str]:
    if cell is None or cell.paper is None:
        return "-", "-"
    return f"{cell.paper:.3f}" + ("*" if cell.paper_note else ""), f"{cell.difference:+.{DECIMALS}f}"


def to_markdown(table: Table) -> str:
    paper_metrics = table.paper_metrics
    header = ["model", "dataset", "overrides", "n", "seeds", "selection"]
    for metric in table.metrics:
        header.append(TITLES[metric])
        if metric in paper_metrics:
            header += [f"{TITLES[metric]} paper", f"Δ{TITLES[metric]}"]
    if paper_metrics:
        header.append("paper row")
    if table.throughput:
        header += ["samples/s", "% peak"]
    lines = [MAX_HEADER, ""] if table.aggregate == "max" else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        group = row.group
        cells = [group.label, group.dataset, group.overrides or "-", str(len(group.runs)), row.seeds, row.selection]
        for metric in table.metrics:
            cells.append(_md_cell(row.cells[metric], row.label_selected))
            if metric in paper_metrics:
                cells += list(_paper_text(row.cells[metric]))
        if paper_metrics:
            cells.append(row.paper.label if row.paper else "-")
        if table.throughput:
            cells += _throughput_text(group)
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    notes = table.notes()
    if notes:
        lines += [""] + notes
    if table.unfinished:
        lines += ["", "Not finished:"] + [f"- {item.path}: {item.reason}" for item in table.unfinished]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CSV


def _csv_number(value: float | None) -> str:
    # six decimals: exact enough to recompute anything shown, free of float noise like 0.6000000000000001
    return "" if value is None else repr(round(value, 6))


def to_csv(table: Table) -> str:
    """One line per row; `*_rank` is 1 (best) or 2 (second best); label_selected true marks label-chosen numbers."""
    paper_metrics = table.paper_metrics
    header = ["model", "dataset", "overrides", "n", "seeds", "selection", "label_selected", "aggregate"]
    for metric in table.metrics:
        header += [metric, f"{metric}_std", f"{metric}_rank"]
        if metric in paper_metrics:
            header += [f"{metric}_paper", f"{metric}_diff"]
    if paper_metrics:
        header += ["paper_reference", "paper_table", "paper_method"]
    if table.throughput:
        header += ["train_samples_per_s", "fraction_of_peak"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        group = row.group
        line = [
            group.label,
            group.dataset,
            group.overrides,
            len(group.runs),
            row.seeds,
            row.selection,
            "true" if row.label_selected else "false",
            table.aggregate,
        ]
        for metric in table.metrics:
            cell = row.cells[metric]
            line += [_csv_number(cell and cell.value), _csv_number(cell and cell.std), (cell and cell.rank) or ""]
            if metric in paper_metrics:
                line += [_csv_number(cell and cell.paper), _csv_number(cell and cell.difference)]
        if paper_metrics:
            line += [row.paper.reference.name, row.paper.table, row.paper.method] if row.paper else ["", "", ""]
        if table.throughput:
            line += [_csv_number(value) for value in throughput_of(group)]
        writer.writerow(line)
    return buffer.getvalue()


# --------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "†": r"$^\dagger$",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def _latex_cell(cell: Cell | None, label_selected: bool) -> str:
    if cell is None:
        return "--"
    text = f"{cell.value:.{DECIMALS}f}"
    if cell.std is not None:
        text += rf" $\pm$ {cell.std:.{DECIMALS}f}"
    text = {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank, text)
    return text + (r"$^\dagger$" if label_selected else "")


def to_latex(table: Table) -> str:
    """A booktabs tabular; the notes follow it as text so that the † flag is explained wherever it is pasted."""
    paper_metrics = table.paper_metrics
    header = ["model", "dataset", "overrides", "$n$", "selection"]
    align = "lllrl"
    for metric in table.metrics:
        header.append(TITLES[metric])
        align += "c"
        if metric in paper_metrics:
            header += [f"{TITLES[metric]} (paper)", rf"$\Delta${TITLES[metric]}"]
            align += "cc"
    if paper_metrics:
        header.append("paper row")
        align += "l"
    if table.throughput:
        header += ["samples/s", r"\% peak"]
        align += "rr"
    lines = ["% python -m clusterbench.report; needs \\usepackage{booktabs}"]
    if table.aggregate == "max":
        lines.append(latex_escape(MAX_HEADER) + r"\par")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for row in table.rows:
        group = row.group
        cells = [
            latex_escape(group.label),
            latex_escape(group.dataset),
            latex_escape(group.overrides or "-"),
            str(len(group.runs)),
            latex_escape(row.selection),
        ]
        for metric in table.metrics:
            cell = row.cells[metric]
            cells.append(_latex_cell(cell, row.label_selected))
            if metric in paper_metrics:
                paper, difference = _paper_text(cell)
                cells += [latex_escape(paper), latex_escape(difference)]
        if paper_metrics:
            cells.append(latex_escape(row.paper.label) if row.paper else "--")
        if table.throughput:
            cells += [latex_escape(text) for text in _throughput_text(group)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = table.notes()
    if notes:
        lines.append(r"\par\footnotesize")
        lines += [latex_escape(note) + r"\par" for note in notes]
    lines += [f"% not finished: {item.path}: {item.reason}" for item in table.unfinished]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the pivot: methods x datasets

# the k-means floor: k-means on the concatenated views (AmKM; the only view on images)
FLOOR_MODELS = ("kmeans", "amkm")
# clustering without a deep model, listed after the floor and before the deep methods
CLASSIC_MODELS = ("km", "ncuts", "amncuts")
PIVOT_DECIMALS = 3
PIVOT_NOTE_BEST = "Bold: best per dataset among the label-free rows (ties share it); paper rows are never ranked."
PIVOT_NOTE_FLOOR = "↓: below the k-means floor (first row) on that dataset."


def _pivot_residual(overrides: str) -> str:
    """A group's overrides without the per-dataset presets and dataset settings: what makes a
    method row (cc on digits and +experiment=cc_mnist on MNIST are one row, `cc`)."""
    return " ".join(o for o in overrides.split() if not o.startswith(("+experiment=", "experiment=", "dataset.")))


@dataclass
class PivotRow:
    label: str
    kind: str  # floor | classic | method | paper
    groups: dict[str, Group] = field(default_factory=dict)  # dataset -> group (method rows)
    cells: dict[str, dict[str, Cell | None]] = field(default_factory=dict)  # dataset -> metric -> cell
    label_selected: dict[str, bool] = field(default_factory=dict)  # dataset -> chosen with labels
    below_floor: dict[tuple[str, str], bool] = field(default_factory=dict)  # (dataset, metric)
    papers: dict[str, PaperRow] = field(default_factory=dict)  # paper rows: dataset -> its paper row
    differences: dict[tuple[str, str], float] = field(default_factory=dict)  # paper rows: obtained - paper
    of: str = ""  # paper rows: the label of the method row above


@dataclass
class Pivot:
    rows: list[PivotRow]
    datasets: list[str]
    metrics: list[str]
    aggregate: str
    unfinished: list[Unfinished] = field(default_factory=list)

    def notes(self) -> list[str]:
        notes = []
        if self.aggregate == "mean":
            notes.append("Cells: mean ± sample standard deviation (n runs); one run shows its value and (1).")
        else:
            notes.append(MAX_HEADER)
        if any(any(row.label_selected.values()) for row in self.rows if row.kind != "paper"):
            notes.append(LABEL_SELECTED_NOTE)
        if any(cell and cell.rank == 1 for row in self.rows for by_metric in row.cells.values() for cell in by_metric.values()):
            notes.append(PIVOT_NOTE_BEST)
        if any(row.below_floor.values() for row in self.rows):
            notes.append(PIVOT_NOTE_FLOOR)
        references: dict[str, Reference] = {}
        for row in self.rows:
            for paper in row.papers.values():
                references.setdefault(paper.reference.name, paper.reference)
            for dataset, group in row.groups.items():
                if group.aliases:
                    notes.append(f"{row.label}: also run as {', '.join(group.aliases)} (the same configuration).")
                    break
        for reference in references.values():
            notes.append(f"paper rows: {reference.title} [{reference.name}]; (Δ obtained − paper). {reference.protocol}")
        seen = []
        for row in self.rows:
            if row.kind != "paper":
                continue
            for dataset, paper in row.papers.items():
                for metric, note in paper.notes.items():
                    text = f"* {paper.label}, {dataset} {TITLES[metric]}: {note}"
                    if text not in seen:
                        seen.append(text)
        return notes + seen


def _row_kind(model_names: tuple[str, ...], residual: str) -> str:
    if any(name in FLOOR_MODELS for name in model_names) and not residual:
        return "floor"
    if any(name in FLOOR_MODELS + CLASSIC_MODELS for name in model_names):
        return "classic"
    return "method"


def build_pivot(  # noqa: C901 - one pass that places runs, paper rows and marks in one table
    groups: dict[tuple[str, str, str], Group],
    unfinished: list[Unfinished] | None = None,
    aggregate: str = "mean",
    references: list[Reference] | None = None,
    metrics: list[str] | tuple[str, ...] = ("acc", "nmi", "ari"),
) -> Pivot:
    """Methods (rows) x datasets (columns): one cell per group of runs, a paper row under each
    method row with a reference, the k-means floor first, best label-free value per column bold."""
    # a row per (model, overrides without per-dataset presets); two groups of one row on one
    # dataset (e.g. two presets) keep their full overrides, as two rows
    # overrides every group shares (a suite's common settings, e.g. hardware=cpu) name no method
    residuals = {key: _pivot_residual(group.overrides).split() for key, group in groups.items()}
    shared = set.intersection(*(set(r) for r in residuals.values())) if len(residuals) > 1 else set()
    keyed: dict[tuple[str, str], dict[str, list[Group]]] = {}
    for key, group in groups.items():
        residual = " ".join(o for o in residuals[key] if o not in shared)
        keyed.setdefault((group.label, residual), {}).setdefault(group.dataset, []).append(group)
    placed: dict[tuple[str, str], dict[str, Group]] = {}
    for (label, residual), by_dataset in keyed.items():
        for dataset, members in by_dataset.items():
            for group in members:
                key = (label, residual if len(members) == 1 else group.overrides)
                placed.setdefault(key, {})[dataset] = group

    rows: list[PivotRow] = []
    for (label, overrides), by_dataset in placed.items():
        names = next(iter(by_dataset.values())).names
        row = PivotRow(label + (f" {overrides}" if overrides else ""), _row_kind(names, overrides), groups=by_dataset)
        paper_row = PivotRow(f"{label}, paper", "paper", of=row.label)
        for dataset, group in by_dataset.items():
            cells: dict[str, Cell | None] = {}
            for metric in metrics:
                values = [float(run.results["metrics"][metric]) for run in group.runs if run.results["metrics"].get(metric) is not None]
                values = [v for v in values if math.isfinite(v)]
                cells[metric] = _aggregate(values, aggregate, len(values)) if values else None
            row.cells[dataset] = cells
            row.label_selected[dataset] = group.uses_labels or aggregate == "max"
            paper = paper_row_for(group, references or [])
            if paper is not None and any(m in paper.values for m in metrics):
                paper_row.papers[dataset] = paper
                paper_row.cells[dataset] = {}
                for metric in metrics:
                    if metric in paper.values:
                        ours = cells.get(metric)
                        paper_row.cells[dataset][metric] = Cell(paper.values[metric], None, 0, paper_note=paper.notes.get(metric, ""))
                        if ours is not None:
                            paper_row.differences[(dataset, metric)] = ours.value - paper.values[metric]
                    paper_row.label_selected[dataset] = False
        rows.append(row)
        if paper_row.papers:
            rows.append(paper_row)

    order = {"floor": 0, "classic": 1, "method": 2}
    # paper rows stay under their method row: sort pairs
    pairs: list[list[PivotRow]] = []
    for row in rows:
        if row.kind == "paper":
            pairs[-1].append(row)
        else:
            pairs.append([row])
    pairs.sort(key=lambda pair: (order[pair[0].kind], pair[0].label))
    rows = [row for pair in pairs for row in pair]
    datasets = sorted({dataset for row in rows for dataset in row.cells})

    mark_best_and_floor(rows, datasets, list(metrics), lambda row, dataset: row.groups[dataset].uses_labels)
    return Pivot(rows, datasets, list(metrics), aggregate, list(unfinished or []))


def mark_best_and_floor(
    rows: list[PivotRow], datasets: list[str], metrics: list[str], uses_labels: Callable[[PivotRow, str], bool]
) -> None:
    """Bold (rank 1): the best label-free row per dataset and metric, on the values as shown
    (PIVOT_DECIMALS; under --aggregate max every row is label-selected alike); below_floor: a
    method or classic row under the first floor row's value."""
    floor = next((row for row in rows if row.kind == "floor"), None)
    for dataset in datasets:
        for metric in metrics:
            candidates = [
                (round(row.cells[dataset][metric].value, PIVOT_DECIMALS), row)
                for row in rows
                if row.kind != "paper" and row.cells.get(dataset, {}).get(metric) is not None and not uses_labels(row, dataset)
            ]
            if len(candidates) >= 2:
                best = max(value for value, _ in candidates)
                for value, row in candidates:
                    if value == best:
                        row.cells[dataset][metric].rank = 1
            floor_cell = floor.cells.get(dataset, {}).get(metric) if floor else None
            if floor_cell is None:
                continue
            for row in rows:
                cell = row.cells.get(dataset, {}).get(metric)
                if row.kind in ("method", "classic") and cell is not None:
                    row.below_floor[(dataset, metric)] = round(cell.value, PIVOT_DECIMALS) < round(floor_cell.value, PIVOT_DECIMALS)


def _pivot_text(row: PivotRow, dataset: str, metric: str, latex: bool = False) -> str:
    cell = row.cells.get(dataset, {}).get(metric)
    if cell is None:
        return "--" if latex else "-"
    if row.kind == "paper":
        text = f"{cell.value:.{PIVOT_DECIMALS}f}" + ("*" if cell.paper_note else "")
        difference = row.differences.get((dataset, metric))
        if difference is not None:
            text += rf" ($\Delta${difference:+.{PIVOT_DECIMALS}f})" if latex else f" (Δ {difference:+.{PIVOT_DECIMALS}f})"
        return text
    text = f"{cell.value:.{PIVOT_DECIMALS}f}"
    if cell.std is not None:
        text += (r" $\pm$ " if latex else " ± ") + f"{cell.std:.{PIVOT_DECIMALS}f}"
    text += f" ({cell.n})"
    if cell.rank == 1:
        text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
    if row.below_floor.get((dataset, metric)):
        text += r" $\downarrow$" if latex else " ↓"
    if row.label_selected.get(dataset):
        text += r"$^\dagger$" if latex else " †"
    return text


def pivot_to_markdown(pivot: Pivot) -> str:
    """One table per metric (a block), methods as rows, datasets as columns."""
    lines: list[str] = []
    for metric in pivot.metrics:
        lines += [f"**{TITLES[metric]}**", "", "| method | " + " | ".join(pivot.datasets) + " |", "|---|" + "---|" * len(pivot.datasets)]
        for row in pivot.rows:
            label = f"*{row.label}*" if row.kind == "paper" else row.label
            cells = [_pivot_text(row, dataset, metric) for dataset in pivot.datasets]
            lines.append("| " + " | ".join(_md_escape(c) for c in [label, *cells]) + " |")
        lines.append("")
    lines += pivot.notes()
    if pivot.unfinished:
        lines += ["", "Not finished:"] + [f"- {item.path}: {item.reason}" for item in pivot.unfinished]
    return "\n".join(lines)


def pivot_to_csv(pivot: Pivot) -> str:
    """Long format, one line per (metric, row, dataset): kind is floor | classic | method | paper;
    best is 1 for the best label-free value of the column; diff = obtained - paper on paper lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "metric",
            "method",
            "kind",
            "dataset",
            "value",
            "std",
            "n",
            "label_selected",
            "best",
            "below_floor",
            "paper_reference",
            "paper_table",
            "paper_method",
            "diff",
        ]
    )
    for metric in pivot.metrics:
        for row in pivot.rows:
            for dataset in pivot.datasets:
                cell = row.cells.get(dataset, {}).get(metric)
                if cell is None:
                    continue
                paper = row.papers.get(dataset)
                writer.writerow(
                    [
                        metric,
                        row.label,
                        row.kind,
                        dataset,
                        _csv_number(cell.value),
                        _csv_number(cell.std),
                        cell.n if row.kind != "paper" else "",
                        "true" if row.label_selected.get(dataset) else "false",
                        1 if cell.rank == 1 else "",
                        "true" if row.below_floor.get((dataset, metric)) else "false" if row.kind != "paper" else "",
                        paper.reference.name if paper else "",
                        paper.table if paper else "",
                        paper.method if paper else "",
                        _csv_number(row.differences.get((dataset, metric))),
                    ]
                )
    return buffer.getvalue()


def pivot_to_latex(pivot: Pivot) -> str:
    """One booktabs tabular, a block of rows per metric; the notes follow as text."""
    columns = len(pivot.datasets) + 1
    lines = [
        "% python -m clusterbench.report --pivot; needs \\usepackage{booktabs}",
        rf"\begin{{tabular}}{{l{'c' * len(pivot.datasets)}}}",
        r"\toprule",
        " & ".join(["method", *(latex_escape(d) for d in pivot.datasets)]) + r" \\",
    ]
    for metric in pivot.metrics:
        lines += [r"\midrule", rf"\multicolumn{{{columns}}}{{l}}{{\textit{{{TITLES[metric]}}}}} \\"]
        for row in pivot.rows:
            label = latex_escape(row.label)
            if row.kind == "paper":
                label = rf"\quad\textit{{{label}}}"
            cells = [_pivot_text(row, dataset, metric, latex=True) for dataset in pivot.datasets]
            lines.append(" & ".join([label, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\footnotesize"]
    lines += [latex_escape(note) + r"\par" for note in pivot.notes()]
    lines += [f"% not finished: {item.path}: {item.reason}" for item in pivot.unfinished]
    return "\n".join(lines)
