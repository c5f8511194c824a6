"""The results table: aggregation over seeds, best / second-best marks, paper columns; md, CSV, LaTeX."""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field

from clusterbench.report.reference import PaperRow, Reference, paper_row_for
from clusterbench.report.runs import Group, Unfinished

METRICS = ("acc", "nmi", "ari")
TITLES = {"acc": "ACC", "nmi": "NMI", "ari": "ARI"}
DECIMALS = 4  # shown precision; ranks are taken on the shown values so that equal-looking cells tie

LABEL_SELECTED_NOTE = (
    "† label-selected: chosen with the ground-truth labels (a run's selection rule reads them, "
    "or the maximum over runs is taken); not comparable with label-free numbers."
)
MAX_HEADER = "Metrics are the MAXIMUM over runs, per metric: selected with the labels (label-selected)."


@dataclass
class Cell:
    value: float
    std: float | None  # None for --aggregate max
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
        return ", ".join(
            sorted({run.selection_rule + (" (label-selected)" if run.uses_labels else "") for run in self.group.runs})
        )


@dataclass
class Table:
    rows: list[Row]
    aggregate: str
    unfinished: list[Unfinished] = field(default_factory=list)

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
        if self.aggregate == "mean":
            notes.append("Cells: mean ± sample standard deviation over the n runs (seeds) of the row.")
        else:
            notes.append("Cells: the maximum over the n runs of the row, each metric taken separately.")
        if any(cell and cell.rank for row in self.rows for cell in row.cells.values()):
            notes.append(
                "Bold: best, underlined: second best per dataset and metric, among rows whose runs chose "
                "without the labels."
            )
        for reference in self.references:
            notes.append(
                f"Paper columns: {reference.title} [{reference.name}], divided by {reference.scale:g}; "
                f"Δ = obtained − paper. {reference.protocol}"
            )
        for row in self.rows:
            for metric, cell in row.cells.items():
                if cell is not None and cell.paper_note:
                    notes.append(f"* {row.paper.label}, {row.group.dataset} {TITLES[metric]}: {cell.paper_note}")
        return notes


def _aggregate(values: list[float], aggregate: str, n: int) -> Cell:
    if aggregate == "max":
        return Cell(max(values), None, n)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
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
) -> Table:
    rows = []
    for group in groups.values():
        cells: dict[str, Cell | None] = {}
        for metric in METRICS:
            values = [float(run.results["metrics"][metric]) for run in group.runs if metric in run.results["metrics"]]
            cells[metric] = _aggregate(values, aggregate, len(values)) if values else None
        paper = paper_row_for(group, references or [])
        if paper is not None:
            for metric, value in paper.values.items():
                if cells.get(metric) is not None:
                    cells[metric].paper = value
                    cells[metric].paper_note = paper.notes.get(metric, "")
        rows.append(Row(group, cells, label_selected=group.uses_labels or aggregate == "max", paper=paper))
    _mark_best(rows)
    return Table(rows, aggregate, list(unfinished or []))


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
    for metric in METRICS:
        header.append(TITLES[metric])
        if metric in paper_metrics:
            header += [f"{TITLES[metric]} paper", f"Δ{TITLES[metric]}"]
    if paper_metrics:
        header.append("paper row")
    lines = [MAX_HEADER, ""] if table.aggregate == "max" else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        group = row.group
        cells = [group.model, group.dataset, group.overrides or "-", str(len(group.runs)), row.seeds, row.selection]
        for metric in METRICS:
            cells.append(_md_cell(row.cells[metric], row.label_selected))
            if metric in paper_metrics:
                cells += list(_paper_text(row.cells[metric]))
        if paper_metrics:
            cells.append(row.paper.label if row.paper else "-")
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
    for metric in METRICS:
        header += [metric, f"{metric}_std", f"{metric}_rank"]
        if metric in paper_metrics:
            header += [f"{metric}_paper", f"{metric}_diff"]
    if paper_metrics:
        header += ["paper_reference", "paper_table", "paper_method"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        group = row.group
        line = [group.model, group.dataset, group.overrides, len(group.runs), row.seeds, row.selection,
                "true" if row.label_selected else "false", table.aggregate]
        for metric in METRICS:
            cell = row.cells[metric]
            line += [_csv_number(cell and cell.value), _csv_number(cell and cell.std), (cell and cell.rank) or ""]
            if metric in paper_metrics:
                line += [_csv_number(cell and cell.paper), _csv_number(cell and cell.difference)]
        if paper_metrics:
            line += [row.paper.reference.name, row.paper.table, row.paper.method] if row.paper else ["", "", ""]
        writer.writerow(line)
    return buffer.getvalue()


# --------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "†": r"$^\dagger$", "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$",
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
    for metric in METRICS:
        header.append(TITLES[metric])
        align += "c"
        if metric in paper_metrics:
            header += [f"{TITLES[metric]} (paper)", rf"$\Delta${TITLES[metric]}"]
            align += "cc"
    if paper_metrics:
        header.append("paper row")
        align += "l"
    lines = ["% python -m clusterbench.report; needs \\usepackage{booktabs}"]
    if table.aggregate == "max":
        lines.append(latex_escape(MAX_HEADER) + r"\par")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for row in table.rows:
        group = row.group
        cells = [latex_escape(group.model), latex_escape(group.dataset), latex_escape(group.overrides or "-"),
                 str(len(group.runs)), latex_escape(row.selection)]
        for metric in METRICS:
            cell = row.cells[metric]
            cells.append(_latex_cell(cell, row.label_selected))
            if metric in paper_metrics:
                paper, difference = _paper_text(cell)
                cells += [latex_escape(paper), latex_escape(difference)]
        if paper_metrics:
            cells.append(latex_escape(row.paper.label) if row.paper else "--")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = table.notes()
    if notes:
        lines.append(r"\par\footnotesize")
        lines += [latex_escape(note) + r"\par" for note in notes]
    lines += [f"% not finished: {item.path}: {item.reason}" for item in table.unfinished]
    return "\n".join(lines)
