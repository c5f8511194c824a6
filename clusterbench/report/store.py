"""The committed store of current results: docs/results/<suite>.csv, one line per
method x dataset x metric, written from bench folders and rendered as report's pivot.

Run folders are machine-local (outputs/ is not tracked), so the numbers a page shows must live
somewhere a clone has them: this store. A line holds what report's pivot shows for one cell
(mean, std, n, the label-selected flag, the paper's number where a bundled reference maps the
row) plus where it came from (source) and when (date). Merging: the cells (method, dataset) of a
refresh replace the stored lines of those cells; every other stored line stays. Rendering builds
report's own Pivot from the lines and prints it with tables.pivot_to_markdown, so bold / ↓ / †
mean what they mean in `report --pivot`. scripts/update_results.py is the command.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from clusterbench.atomic import atomic_write_bytes
from clusterbench.errors import ConfigError
from clusterbench.report.reference import PaperRow, Reference, ReferenceFileError, available_references, load_reference
from clusterbench.report.runs import Group, find_runs, summarize
from clusterbench.report.tables import (
    CLASSIC_MODELS,
    FLOOR_MODELS,
    PIVOT_DECIMALS,
    Cell,
    Pivot,
    PivotRow,
    build_pivot,
    mark_best_and_floor,
)

FIELDS = (
    "method",
    "kind",
    "dataset",
    "metric",
    "mean",
    "std",
    "n",
    "seeds",
    "label_selected",
    "paper",
    "paper_reference",
    "paper_table",
    "paper_method",
    "source",
    "date",
)
STORED_METRICS = ("acc", "nmi", "ari")
KIND_ORDER = {"floor": 0, "classic": 1, "method": 2}


class StoreError(ConfigError):
    """A store file that cannot be read, or a markdown table that cannot be parsed; one line."""


@dataclass(frozen=True)
class Entry:
    """One stored number: a pivot cell of one metric, and the paper's value beside it if any."""

    method: str  # the pivot row label: model name(s) and the overrides that are not the suite's common ones
    kind: str  # floor | classic | method (tables.build_pivot's row kinds)
    dataset: str
    metric: str
    mean: float
    std: float | None  # None for one run
    n: int
    seeds: str = ""  # space-separated; empty where the source did not say (tables pasted into docs)
    label_selected: bool = False
    paper: float | None = None
    paper_reference: str = ""
    paper_table: str = ""
    paper_method: str = ""
    source: str = ""
    date: str = ""

    @property
    def cell(self) -> tuple[str, str]:
        return self.method, self.dataset


# --------------------------------------------------------------------------- the file


def _number(value: float | None) -> str:
    # full precision: the page's bold, ↓ and Δ are taken on rounded values, which must round as report's do
    return "" if value is None else repr(float(value))


def write_store(path: Path, entries: list[Entry]) -> None:
    """Writes the lines sorted as the pivot shows them (floor, classic, methods; then dataset, metric)."""
    metric_order = {m: i for i, m in enumerate(STORED_METRICS)}
    ordered = sorted(entries, key=lambda e: (KIND_ORDER.get(e.kind, 3), e.method, e.dataset, metric_order.get(e.metric, 9), e.metric))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for e in ordered:
        writer.writerow(
            [
                e.method,
                e.kind,
                e.dataset,
                e.metric,
                _number(e.mean),
                _number(e.std),
                e.n,
                e.seeds,
                "true" if e.label_selected else "false",
                _number(e.paper),
                e.paper_reference,
                e.paper_table,
                e.paper_method,
                e.source,
                e.date,
            ]
        )
    atomic_write_bytes(Path(path), lambda handle: handle.write(buffer.getvalue().encode()))


def _float(text: str, where: str, optional: bool = False) -> float | None:
    if optional and text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise StoreError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise StoreError(f"{where}: {text!r} is not a finite number")
    return value


def read_store(path: Path) -> list[Entry]:
    """The stored lines; a missing file is an empty store. A malformed line is one StoreError naming file and line."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise StoreError(f"{path}: the header lacks {', '.join(missing)} (expected: {','.join(FIELDS)})")
    entries = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}: line {line}"
        if row["kind"] not in KIND_ORDER:
            raise StoreError(f"{where}: kind {row['kind']!r} is not one of {', '.join(KIND_ORDER)}")
        if not row["n"].isdigit():
            raise StoreError(f"{where}: n {row['n']!r} is not a count")
        entries.append(
            Entry(
                method=row["method"],
                kind=row["kind"],
                dataset=row["dataset"],
                metric=row["metric"],
                mean=_float(row["mean"], f"{where}: mean"),
                std=_float(row["std"], f"{where}: std", optional=True),
                n=int(row["n"]),
                seeds=row["seeds"],
                label_selected=row["label_selected"] == "true",
                paper=_float(row["paper"], f"{where}: paper", optional=True),
                paper_reference=row["paper_reference"],
                paper_table=row["paper_table"],
                paper_method=row["paper_method"],
                source=row["source"],
                date=row["date"],
            )
        )
    return entries


def merge(stored: list[Entry], new: list[Entry]) -> list[Entry]:
    """The new lines replace every stored line of their cells (method, dataset); the rest stay."""
    replaced = {e.cell for e in new}
    return [e for e in stored if e.cell not in replaced] + list(new)


# --------------------------------------------------------------------------- from run folders


def split_label(label: str) -> tuple[str, str]:
    """A pivot row label as (model names, overrides): `kmeans = amkm trainer.x=1` -> (`kmeans = amkm`, `trainer.x=1`)."""
    tokens = label.split(" ")
    first = next((i for i, t in enumerate(tokens) if "=" in t and t != "="), len(tokens))
    return " ".join(tokens[:first]), " ".join(tokens[first:])


def row_kind(label: str) -> str:
    """floor | classic | method for a row label, as tables.build_pivot decides it from a group."""
    names, residual = split_label(label)
    models = tuple(name.strip() for name in names.split("="))
    if any(m in FLOOR_MODELS for m in models) and not residual:
        return "floor"
    return "classic" if any(m in FLOOR_MODELS + CLASSIC_MODELS for m in models) else "method"


def _without(group: Group, common: set[str]) -> Group:
    """The group with the suite's common overrides left out of its key: a cell run into another
    folder alone keeps the label it has in the full suite's folder."""
    overrides = " ".join(o for o in group.overrides.split() if o not in common)
    return dataclasses.replace(group, overrides=overrides)


def _source_of(group: Group, folders: list[Path]) -> str:
    paths = [run.path.resolve() for run in group.runs]
    for folder in folders:
        if all(folder.resolve() in p.parents for p in paths):
            return str(folder)
    return " ".join(str(f) for f in folders)


def _date_of(group: Group) -> str:
    """The day the newest results.json of the cell was written (local time)."""
    stamps = []
    for run in group.runs:
        try:
            stamps.append((run.path / "results.json").stat().st_mtime)
        except OSError:
            pass
    return time.strftime("%Y-%m-%d", time.localtime(max(stamps))) if stamps else ""


def entries_from_runs(
    folders: list[Path], common: list[str] = (), references: list[Reference] | None = None, metrics: tuple[str, ...] = STORED_METRICS
) -> tuple[list[Entry], list]:
    """The pivot of the finished runs under `folders` as store lines, and what did not finish
    (runs.Unfinished). `common`: the suite's overrides for every cell, left out of the labels."""
    groups, unfinished = summarize(find_runs(list(folders)))
    common_set = set(common)
    groups = {key: _without(group, common_set) for key, group in groups.items()}
    pivot = build_pivot(groups, unfinished, aggregate="mean", references=references or [], metrics=metrics)
    paper_rows = {row.of: row for row in pivot.rows if row.kind == "paper"}
    entries = []
    for row in pivot.rows:
        if row.kind == "paper":
            continue
        paper_row = paper_rows.get(row.label)
        for dataset, group in row.groups.items():
            paper = paper_row.papers.get(dataset) if paper_row else None
            for metric, cell in row.cells[dataset].items():
                if cell is None:
                    continue
                value = paper.values.get(metric) if paper else None
                entries.append(
                    Entry(
                        method=row.label,
                        kind=row.kind,
                        dataset=dataset,
                        metric=metric,
                        mean=cell.value,
                        std=cell.std,
                        n=cell.n,
                        seeds=" ".join(str(run.seed) for run in group.sorted_runs()),
                        label_selected=bool(row.label_selected.get(dataset)),
                        paper=value,
                        paper_reference=paper.reference.name if paper and value is not None else "",
                        paper_table=paper.table if paper and value is not None else "",
                        paper_method=paper.method if paper and value is not None else "",
                        source=_source_of(group, list(folders)),
                        date=_date_of(group),
                    )
                )
    return entries, unfinished


# --------------------------------------------------------------------------- rendering


def _reference(name: str, cache: dict[str, Reference | None]) -> Reference | None:
    if name not in cache:
        try:
            cache[name] = load_reference(name)
        except ReferenceFileError:
            cache[name] = None
    return cache[name]


def _paper_row(entries: list[Entry], dataset: str, cache: dict) -> PaperRow | None:
    """report's PaperRow for a stored cell, with the reference's notes, when the reference still exists."""
    first = next((e for e in entries if e.paper is not None and e.paper_reference), None)
    reference = _reference(first.paper_reference, cache) if first else None
    if reference is None:
        return None
    values = {e.metric: e.paper for e in entries if e.paper is not None}
    notes = {}  # every note of the paper's row, as Reference.paper_row gives them to report
    for metric in reference.metrics.values():
        entry = reference.values.get((first.paper_table, reference.datasets.get(dataset, ""), first.paper_method, metric))
        if entry and entry[1]:
            notes[metric] = entry[1]
    return PaperRow(reference, first.paper_table, first.paper_method, values, notes)


def pivot_from_entries(entries: list[Entry], metrics: tuple[str, ...] = ("acc", "nmi")) -> Pivot:
    """report's Pivot (methods x datasets, paper rows under their method) from stored lines."""
    rows: dict[str, PivotRow] = {}
    by_cell: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        by_cell.setdefault(e.cell, []).append(e)
        if e.metric not in metrics:
            continue
        row = rows.setdefault(e.method, PivotRow(e.method, e.kind))
        row.cells.setdefault(e.dataset, {m: None for m in metrics})[e.metric] = Cell(e.mean, e.std, e.n)
        row.label_selected[e.dataset] = e.label_selected
    cache: dict[str, Reference | None] = {}
    pairs = []
    for label, row in rows.items():
        paper = PivotRow(f"{split_label(label)[0]}, paper", "paper", of=label)
        for dataset in row.cells:
            cell_entries = by_cell[(label, dataset)]
            if not any(e.paper is not None and e.metric in metrics for e in cell_entries):
                continue
            paper.cells[dataset] = {}
            paper.label_selected[dataset] = False
            paper_row = _paper_row(cell_entries, dataset, cache)
            if paper_row is not None:
                paper.papers[dataset] = paper_row
            for e in cell_entries:
                if e.paper is not None and e.metric in metrics:
                    note = paper_row.notes.get(e.metric, "") if paper_row else ""
                    paper.cells[dataset][e.metric] = Cell(e.paper, None, 0, paper_note=note)
                    paper.differences[(dataset, e.metric)] = e.mean - e.paper
        pairs.append([row, paper] if paper.cells else [row])
    pairs.sort(key=lambda pair: (KIND_ORDER[pair[0].kind], pair[0].label))
    ordered = [row for pair in pairs for row in pair]
    datasets = sorted({dataset for row in ordered for dataset in row.cells})
    mark_best_and_floor(ordered, datasets, list(metrics), lambda row, dataset: bool(row.label_selected.get(dataset)))
    return Pivot(ordered, datasets, list(metrics), "mean")


# --------------------------------------------------------------------------- seeding from pasted tables

_REFERENCES: dict[str, Reference | None] = {}
_MEASURED = re.compile(r"^\**(?P<mean>-?\d+\.\d+)(?: ± (?P<std>\d+\.\d+))? \((?P<n>\d+)\)\**(?P<marks>.*)$")
_PAPER = re.compile(r"^(?P<value>-?\d+\.\d+)\*?(?: \(Δ [+-]?\d+\.\d+\))?$")
_BLOCK = re.compile(r"^\*\*(?P<title>[A-Za-z-]+)\*\*$")


@dataclass
class MarkdownBlock:
    """One metric block of `report --pivot`'s Markdown: its title and rows (label -> dataset -> cell text)."""

    metric: str
    datasets: list[str]
    rows: list[tuple[str, dict[str, str]]]


def parse_pivot_markdown(text: str) -> list[MarkdownBlock]:
    """Every `**ACC**` / `**NMI**` / `**ARI**` block followed by a `| method | ... |` table, in file order."""
    titles = {"ACC": "acc", "NMI": "nmi", "ARI": "ari"}
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = _BLOCK.match(line.strip())
        if not match or match["title"] not in titles:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j >= len(lines) or not lines[j].startswith("| method |"):
            continue
        datasets = [c.strip() for c in lines[j].strip().strip("|").split("|")][1:]
        rows = []
        for row_line in lines[j + 2 :]:
            if not row_line.startswith("|"):
                break
            cells = [c.strip().replace("\\|", "|") for c in row_line.strip().strip("|").split(" | ")]
            if len(cells) != len(datasets) + 1:
                raise StoreError(f"line {lines.index(row_line) + 1}: {len(cells)} cells where the header has {len(datasets) + 1}")
            rows.append((cells[0], dict(zip(datasets, cells[1:]))))
        blocks.append(MarkdownBlock(titles[match["title"]], datasets, rows))
    return blocks


def _find_paper(dataset: str, values: dict[str, float], model_names: str) -> tuple[str, str, str]:
    """(reference, table, method) of a bundled reference row giving these values on this dataset, or blanks."""
    models = {m.strip() for m in model_names.split("=")}
    found = []
    for name in available_references():
        reference = _reference(name, _REFERENCES)
        if reference is None:
            continue
        paper_dataset = reference.datasets.get(dataset)
        rows = {(t, m) for (t, d, m, _) in reference.values if d == paper_dataset}
        for table, method in sorted(rows):
            if all(
                abs(reference.values.get((table, paper_dataset, method, metric), (math.inf,))[0] - value) < 5e-4
                for metric, value in values.items()
            ):
                covers = any(rule.table == table and rule.method == method and models & set(rule.models) for rule in reference.rules)
                found.append((not covers, name, table, method))
    return min(found)[1:] if found else ("", "", "")


def entries_from_markdown(blocks: list[MarkdownBlock], source: str, date: str) -> list[Entry]:
    """Store lines from pasted pivot tables: measured rows, and the paper row under each (whose
    reference is found by its values among the bundled ones). Seeds are not in the tables: blank."""
    measured: dict[tuple[str, str, str], Entry] = {}
    papers: dict[tuple[str, str], dict[str, float]] = {}
    for block in blocks:
        above = None
        for label, cells in block.rows:
            paper_row = label.startswith("*") and label.endswith(", paper*")
            for dataset, text in cells.items():
                if text in ("-", "--", ""):
                    continue
                match = (_PAPER if paper_row else _MEASURED).match(text)
                if match is None:
                    raise StoreError(f"{label!r}, {dataset}: cannot read the cell {text!r}")
                if paper_row:
                    papers.setdefault((above, dataset), {})[block.metric] = float(match["value"])
                else:
                    measured[(label, dataset, block.metric)] = Entry(
                        method=label,
                        kind=row_kind(label),
                        dataset=dataset,
                        metric=block.metric,
                        mean=float(match["mean"]),
                        std=float(match["std"]) if match["std"] else None,
                        n=int(match["n"]),
                        label_selected="†" in match["marks"],
                        source=source,
                        date=date,
                    )
            if not paper_row:
                above = label
    entries = []
    for (label, dataset, metric), entry in measured.items():
        values = papers.get((label, dataset))
        if values and metric in values:
            reference, table, method = _find_paper(dataset, values, split_label(label)[0])
            entry = dataclasses.replace(entry, paper=values[metric], paper_reference=reference, paper_table=table, paper_method=method)
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------- the generated page and README table

PAGE_METRICS = ("acc", "nmi")
README_BEGIN = "<!-- results:begin -->"
README_END = "<!-- results:end -->"


def _sources(entries: list[Entry]) -> list[str]:
    """One line per source: how many cells came from it and the dates of its newest runs."""
    cells: dict[str, set[tuple[str, str]]] = {}
    dates: dict[str, set[str]] = {}
    for e in entries:
        cells.setdefault(e.source or "(unknown)", set()).add(e.cell)
        if e.date:
            dates.setdefault(e.source or "(unknown)", set()).add(e.date)
    lines = []
    for source in sorted(cells, key=lambda s: (-len(cells[s]), s)):
        when = sorted(dates.get(source, ()))
        span = f", {when[0]}" + (f" to {when[-1]}" if len(when) > 1 else "") if when else ""
        seeds = "" if any(e.seeds for e in entries if e.source == source) else "; seeds not recorded"
        count = len(cells[source])
        lines.append(f"- {source}{span}: {count} cell{'s' if count != 1 else ''}{seeds}")
    return lines


def render_page(suites: dict[str, list[Entry]], descriptions: dict[str, str], command: str) -> str:
    """docs/results_current.md: per suite, report's pivot (ACC, NMI) of the stored cells and their sources."""
    from clusterbench.report.tables import pivot_to_markdown

    lines = [
        "# Current results",
        "",
        f"<!-- generated by `{command}` from docs/results/*.csv: do not edit by hand -->",
        "",
        f"Generated by `{command}` from the stored results in [results/](results/) (one CSV per",
        "bench suite, one line per method x dataset x metric with its seeds, source and date); do not",
        "edit it by hand. After a bench run, `python scripts/update_results.py --suite <suite>",
        "<bench folder>...` replaces the stored cells those folders hold, keeps the others and",
        "regenerates this page and the README's table. The suites: [benchmark.md](benchmark.md);",
        "what was tried, what failed and why: [results.md](results.md).",
    ]
    for suite in sorted(suites):
        entries = suites[suite]
        lines += ["", f"## `{suite}`", ""]
        if descriptions.get(suite):
            lines += [f"{descriptions[suite]} (configs/bench/{suite}.yaml)", ""]
        lines += [pivot_to_markdown(pivot_from_entries(entries, PAGE_METRICS)), "", "Sources of these cells:", ""]
        lines += _sources(entries)
    return "\n".join(lines) + "\n"


def _shown(e: Entry) -> str:
    return f"{e.mean:.3f}" + (f" ± {e.std:.3f}" if e.std is not None else "") + f" ({e.n})"


def readme_table(suites: dict[str, list[Entry]]) -> str:
    """Per dataset: the best label-free mean ACC of any stored method (its NMI beside it) and
    that suite's k-means floor; the full tables are on the generated page."""
    best: dict[str, list[tuple[str, Entry]]] = {}
    floors: dict[tuple[str, str], Entry] = {}
    for suite, entries in suites.items():
        for e in entries:
            if e.metric != "acc" or e.label_selected:
                continue
            if e.kind == "floor":
                floors[(suite, e.dataset)] = e
            top = best.get(e.dataset)
            value = round(e.mean, PIVOT_DECIMALS)
            if top is None or value > round(top[0][1].mean, PIVOT_DECIMALS):
                best[e.dataset] = [(suite, e)]
            elif value == round(top[0][1].mean, PIVOT_DECIMALS):
                top.append((suite, e))
    nmi = {(suite, e.method, e.dataset): e for suite, entries in suites.items() for e in entries if e.metric == "nmi"}
    lines = ["| dataset | best label-free method (suite) | ACC | NMI | k-means floor ACC |", "|---|---|---|---|---|"]
    for dataset in sorted(best):
        suite, top = best[dataset][0]
        methods = ", ".join(f"{e.method} ({s})" for s, e in best[dataset])
        floor = floors.get((suite, dataset))
        other = nmi.get((suite, top.method, dataset))
        lines.append(f"| {dataset} | {methods} | {_shown(top)} | {_shown(other) if other else '-'} | {_shown(floor) if floor else '-'} |")
    return "\n".join(lines)


def replace_marked(text: str, block: str, where: str = "README.md") -> str:
    """`text` with what lies between README_BEGIN and README_END replaced by `block`."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise StoreError(f"{where}: no {README_BEGIN} ... {README_END} lines to write the results table between")
    return text[: start + len(README_BEGIN)] + "\n" + block.rstrip("\n") + "\n" + text[end:]
