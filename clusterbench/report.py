"""`python -m clusterbench.report <run or multirun folders>`: a Markdown table of finished runs.

Groups runs by (model, dataset, overrides other than seed) and prints mean +- std (n) of ACC,
NMI and ARI, or with `--aggregate max` the maximum over runs of each metric taken separately
(how SDCIB's paper reports; this chooses with the labels, and the table says so). Runs without
a finished results.json are listed below the table, not dropped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METRICS = ("acc", "nmi", "ari")


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders (those with .hydra/config.yaml) under the given paths."""
    runs = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such folder: {path}")
        runs.update(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
    return sorted(runs)


def _group_key(results: dict) -> tuple[str, str, str]:
    # settings that do not change results, and the model / dataset columns themselves
    ignored = ("seed=", "hydra", "trainer.progress", "hardware.num_threads", "model=", "dataset=")
    overrides = [o for o in results.get("overrides", []) if not o.startswith(ignored)]
    return results.get("model") or results["method"], results["dataset"]["name"], " ".join(sorted(overrides))


def summarize(runs: list[Path]) -> tuple[dict, list[tuple[Path, str]]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    unfinished = []
    for run in runs:
        path = run / "results.json"
        if not path.exists():
            unfinished.append((run, "no results.json (running, stopped or crashed)"))
            continue
        results = json.loads(path.read_text())
        if results.get("status") != "finished":
            unfinished.append((run, f"{results.get('status')}: {results.get('error', '')}"))
            continue
        groups[_group_key(results)].append(results)
    return groups, unfinished


def _cell(values: list[float], aggregate: str) -> str:
    if aggregate == "max":
        return f"{max(values):.4f}"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def markdown(groups: dict, unfinished: list[tuple[Path, str]], aggregate: str = "mean") -> str:
    lines = []
    if aggregate == "max":
        lines.append("Metrics are the MAXIMUM over runs, per metric: selected with the labels (label-selected).\n")
    lines += [
        "| model | dataset | overrides | n | seeds | selection | ACC | NMI | ARI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, dataset, overrides), items in sorted(groups.items()):
        seeds = ",".join(str(r["seed"]) for r in sorted(items, key=lambda r: r["seed"]))
        rules = sorted({r["selection"]["rule"] + (" (label-selected)" if r["selection"].get("uses_labels") else "") for r in items})
        cells = [_cell([r["metrics"][m] for r in items], aggregate) for m in METRICS]
        lines.append(f"| {model} | {dataset} | {overrides or '-'} | {len(items)} | {seeds} | {', '.join(rules)} | " + " | ".join(cells) + " |")
    if unfinished:
        lines += ["", "Not finished:"] + [f"- {run}: {why}" for run, why in unfinished]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterbench.report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run or multirun folders")
    parser.add_argument("--aggregate", choices=("mean", "max"), default="mean", help="over runs: mean ± std, or max (label-selected, flagged)")
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.folders)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no run folders (with .hydra/config.yaml) under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    print(markdown(*summarize(runs), aggregate=args.aggregate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
