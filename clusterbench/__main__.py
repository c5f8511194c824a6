"""`python -m clusterbench`: what is installed and how to run it (nothing is trained)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from clusterbench import __version__
from clusterbench._configs import config_dir

COMMANDS = (
    ("clusterbench-train", "clusterbench.train", "train one run, or a sweep with -m (Hydra overrides: model=kmeans dataset=... )"),
    ("clusterbench-report", "clusterbench.report", "tables and figures from finished run folders"),
    ("clusterbench-bench", "clusterbench.bench", "a suite of methods x datasets (configs/bench/), ending with the pivot table"),
)
# the groups a user picks from most; the others are listed after them
MAIN_GROUPS = ("model", "dataset", "experiment", "sweep", "hardware", "logger", "launcher")


def docs_dir() -> Path | None:
    """The docs: clusterbench/docs/ in an installed wheel (pyproject.toml ships docs/ there), or
    docs/ at the top of a checkout."""
    package = Path(__file__).resolve().parent
    return next((d for d in (package / "docs", package.parent / "docs") if (d / "reliability.md").is_file()), None)


def describe() -> str:
    configs = Path(config_dir())
    docs = docs_dir()
    lines = [f"clusterbench {__version__}  (configs: {configs})"]
    if docs is not None:
        lines.append(f"docs: {docs}  (the README's docs/*.md pages)")
    lines += ["", "commands (console script, or python -m <module>):"]
    for script, module, what in COMMANDS:
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {script:<21} python -m {module:<22} {what}")
    groups = sorted(p.name for p in configs.iterdir() if p.is_dir())
    ordered = [g for g in MAIN_GROUPS if g in groups] + [g for g in groups if g not in MAIN_GROUPS]
    lines += ["", "config groups (pick one with group=option, or +group=option for experiment / sweep / launcher):"]
    for group in ordered:
        options = sorted(p.stem for p in (configs / group).glob("*.yaml"))
        lines.append(f"  {group + ':':<11} {', '.join(options)}")
    lines += [
        "",
        "examples:",
        "  clusterbench-train model=kmeans                      # k-means on the embedded handwritten digits",
        "  clusterbench-train model=kmeans dataset=features dataset.path=my.npy dataset.n_clusters=5   # your own data",
        "  clusterbench-train --help                            # every group and key",
        "  clusterbench-report outputs/runs --out report/",
        "",
        "Python:",
        "  import clusterbench",
        "  result = clusterbench.cluster(X, method='kmeans', n_clusters=10)   # result.labels, .metrics, .run_dir",
        "  model = clusterbench.Clusterer(n_clusters=10).fit(X)                 # scikit-learn estimator, in memory",
    ]
    return "\n".join(lines)


def main() -> int:
    try:
        print(describe())
    except BrokenPipeError:  # `python -m clusterbench | head`
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
