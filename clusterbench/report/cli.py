"""Command line of `python -m clusterbench.report` (the module docstring of clusterbench.report says what it does)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clusterbench.report.reference import ReferenceFileError, resolve_references
from clusterbench.report.runs import find_runs, summarize
from clusterbench.report.tables import (
    METRICS,
    build_pivot,
    build_table,
    pivot_to_csv,
    pivot_to_latex,
    pivot_to_markdown,
    to_csv,
    to_latex,
    to_markdown,
)

FORMATTERS = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
OUTPUT_FILES = {"md": "table.md", "csv": "table.csv", "latex": "table.tex"}
PIVOT_FORMATTERS = {"md": pivot_to_markdown, "csv": pivot_to_csv, "latex": pivot_to_latex}
PIVOT_FILES = {"md": "pivot.md", "csv": "pivot.csv", "latex": "pivot.tex"}
PIVOT_DEFAULT_METRICS = ("acc", "nmi", "ari")
# figures.KINDS, repeated so that the command line does not import matplotlib before it is needed
FIGURE_KINDS = ("alpha_beta", "curves", "confusion", "tsne")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _figure_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FIGURE_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown figure kind(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_KINDS)}")
    return kinds


def _metrics(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return METRICS
    metrics = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)} or all")
    return metrics


def _print_and_write(args: argparse.Namespace, table, formatters: dict, files: dict, unfinished) -> None:
    """Prints `table` in the chosen format and, with --out, writes it in every format."""
    print(formatters[args.format](table).rstrip("\n"))
    if args.format == "csv":
        # CSV on stdout stays machine-readable; what did not finish goes to stderr
        for item in unfinished:
            if not item.damaged:  # damaged folders have their error line already (main)
                print(f"not finished: {item.path}: {item.reason}", file=sys.stderr)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, formatter in formatters.items():
            (args.out / files[name]).write_text(formatter(table).rstrip("\n") + "\n")
        print(f"wrote {', '.join(str(args.out / f) for f in files.values())}", file=sys.stderr)


def _pivot(args: argparse.Namespace, groups, unfinished, references) -> int:
    pivot = build_pivot(groups, unfinished, aggregate=args.aggregate, references=references, metrics=args.metric)
    figure_dir = args.figures or args.out
    try:
        _print_and_write(args, pivot, PIVOT_FORMATTERS, PIVOT_FILES, unfinished)
        if figure_dir is not None:
            from clusterbench.report.figures import pivot_bar_figures  # matplotlib only when figures are asked for

            written = pivot_bar_figures(pivot, figure_dir)
            print(f"wrote {len(written)} figure(s) to {figure_dir}", file=sys.stderr)
    except OSError as err:
        return _error(f"cannot write {err.filename or ''}: {err.strerror or err}".replace(" : ", ": "))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clusterbench.report",
        description="Tables of runs (mean ± std over seeds), the paper's numbers beside them, and figures.",
        epilog="Files each figure reads and how to add a paper: docs/report.md.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run or multirun folders")
    parser.add_argument(
        "--aggregate",
        choices=("mean", "max"),
        default="mean",
        help="over the runs of a row: mean ± std, or max (chooses with the labels; flagged)",
    )
    parser.add_argument("--format", choices=tuple(FORMATTERS), default="md", help="what is printed (default md)")
    parser.add_argument("--out", type=Path, help="write table.md, table.csv, table.tex and the figures here")
    parser.add_argument("--figures", type=Path, help="write the figures here (default with --out: the --out folder)")
    parser.add_argument(
        "--plots",
        default=",".join(FIGURE_KINDS),
        type=_figure_kinds,
        help=f"which figures, comma-separated (default all: {','.join(FIGURE_KINDS)})",
    )
    parser.add_argument(
        "--pivot",
        action="store_true",
        help="methods as rows, datasets as columns (one block per metric), the k-means floor first, "
        "paper rows; with --out: pivot.md/.csv/.tex and one grouped bar chart per metric",
    )
    parser.add_argument(
        "--metric",
        type=_metrics,
        default=PIVOT_DEFAULT_METRICS,
        help=f"with --pivot: metrics to show, comma-separated or `all` ({', '.join(METRICS)}; default acc,nmi,ari)",
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="add each row's training samples/s and %% of the matmul peak (results.json throughput; not with --pivot)",
    )
    parser.add_argument(
        "--reference",
        default="auto",
        help="paper numbers: auto (every bundled reference that maps a row), none, a name (e.g. sdcib_icml2025) or a .yaml path",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run_folders = find_runs(args.folders)
    except FileNotFoundError as err:
        return _error(str(err))
    if not run_folders:
        return _error(f"no run folders (with .hydra/config.yaml) under {', '.join(map(str, args.folders))}")
    try:
        references = resolve_references(args.reference)
    except ReferenceFileError as err:
        return _error(str(err))

    groups, unfinished = summarize(run_folders)
    # a damaged run folder (results.json unreadable, not an object, a metric not a number) is
    # one line each, and the exit status is 2 (bad input) once the table of the rest is printed
    damaged = [item for item in unfinished if item.damaged]
    for item in damaged:
        print(f"error: {item.path}: {item.reason}", file=sys.stderr)
    status = _report(args, groups, unfinished, references)
    return status or (2 if damaged else 0)


def _report(args: argparse.Namespace, groups, unfinished, references) -> int:
    if args.pivot:
        return _pivot(args, groups, unfinished, references)
    table = build_table(groups, unfinished, aggregate=args.aggregate, references=references, throughput=args.throughput)
    figure_dir = args.figures or args.out
    try:
        _print_and_write(args, table, FORMATTERS, OUTPUT_FILES, unfinished)
        if figure_dir is not None:
            from clusterbench.report.figures import write_figures  # matplotlib only when figures are asked for

            figures = write_figures(list(groups.values()), figure_dir, args.aggregate, args.plots)
            for note in figures.notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"wrote {len(figures.written)} figure(s) to {figure_dir}", file=sys.stderr)
    except OSError as err:
        return _error(f"cannot write {err.filename or ''}: {err.strerror or err}".replace(" : ", ": "))
    return 0
