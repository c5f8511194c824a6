"""Reading run folders: which runs finished, and grouping them into table rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# overrides that do not change what a run computes: where it writes, how it logs or is launched,
# how many threads it uses. Model and dataset are columns of their own, and the seed is what a
# group averages over.
IGNORED_OVERRIDE_PREFIXES = (
    "seed=",
    "model=",
    "dataset=",
    "hydra.",
    "hydra/",
    "paths.",
    "logger",
    "+logger",
    "launcher",
    "+launcher",
    "+sweep=",
    "trainer.progress",
    "trainer.checkpoint_when_done",
    "trainer.profile",
    "hardware.num_threads",
    "resume=",
)


@dataclass
class Run:
    """One finished run: its folder, results.json and composed config (.hydra/config.yaml)."""

    path: Path
    results: dict[str, Any]
    config: dict[str, Any]

    @property
    def seed(self) -> Any:
        return self.results.get("seed")

    @property
    def uses_labels(self) -> bool:
        return bool((self.results.get("selection") or {}).get("uses_labels"))

    @property
    def selection_rule(self) -> str:
        selection = self.results.get("selection") or {}
        rule = str(selection.get("rule", "?"))
        # methods with several candidate partitions (km / ncuts: one per view) record how one was kept
        candidate = selection.get("candidate")
        if isinstance(candidate, dict) and candidate.get("rule") is not None:
            rule += f" + {candidate['rule']}"
        return rule


@dataclass
class Group:
    """Runs that differ only by seed (and by settings that do not change results)."""

    model: str
    dataset: str
    overrides: str
    runs: list[Run] = field(default_factory=list)
    # model names whose runs are the same computation (e.g. amkm composes kmeans): one row
    aliases: tuple[str, ...] = ()
    # runs left out because another run of the row has the same config and seed
    duplicates: list[Run] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        """Every model name the row stands for (its own first)."""
        return (self.model, *self.aliases)

    @property
    def label(self) -> str:
        return " = ".join(self.names)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model, self.dataset, self.overrides

    @property
    def uses_labels(self) -> bool:
        return any(run.uses_labels for run in self.runs)

    @property
    def config(self) -> dict[str, Any]:
        # runs of a group share every override but the seed, so any one config describes them
        return self.runs[0].config

    def sorted_runs(self) -> list[Run]:
        def order(run: Run) -> tuple:
            numeric = isinstance(run.seed, (int, float))
            return (not numeric, run.seed if numeric else 0, str(run.path))

        return sorted(self.runs, key=order)


@dataclass
class Unfinished:
    """A run folder without a usable finished results.json, and why. `damaged`: its
    results.json cannot be read or is malformed (report then exits with status 2), as opposed
    to a run that failed, is still running, or was superseded."""

    path: Path
    reason: str
    damaged: bool = False


# the metrics a table shows (tables.METRICS): a finished results.json must give each as a number or null
METRICS = ("acc", "nmi", "ari", "purity", "silhouette", "calinski_harabasz")


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders (those with .hydra/config.yaml) under the given paths."""
    runs = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such folder: {path}")
        if not path.is_dir():
            raise FileNotFoundError(f"not a folder: {path}")
        runs.update(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
    return sorted(runs)


def relevant_overrides(overrides: list[str], also_ignore: tuple[str, ...] = ()) -> str:
    """The overrides that change results, sorted and joined: the part of a group key after model and dataset."""
    ignored = IGNORED_OVERRIDE_PREFIXES + also_ignore
    return " ".join(sorted(o for o in overrides if not o.startswith(ignored)))


def load_config(run: Path) -> dict[str, Any]:
    """The composed config as plain data; interpolations stay unresolved strings (they need Hydra's context)."""
    try:
        config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def config_value(config: dict[str, Any], dotted_key: str, default: Any = None) -> Any:
    """config["a"]["b"] for "a.b", or default when any part is missing."""
    node: Any = config
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def _read_run(run: Path) -> Run | Unfinished:
    path = run / "results.json"
    if not path.exists():
        return Unfinished(run, "no results.json (running, stopped or crashed)")
    try:
        results = json.loads(path.read_bytes())
    except OSError as err:
        return Unfinished(run, f"unreadable results.json: {err.strerror or _first_line(err)}", damaged=True)
    except ValueError as err:  # not JSON, or not text at all (UnicodeDecodeError)
        return Unfinished(run, f"unreadable results.json: not JSON text ({_first_line(err)})", damaged=True)
    if not isinstance(results, dict):
        return Unfinished(run, f"unreadable results.json: a JSON {type(results).__name__}, not an object", damaged=True)
    status = results.get("status")
    if status != "finished":
        error = _first_line(results.get("error"))
        return Unfinished(run, f"{status}: {error}" if error else f"status {status}")
    metrics = results.get("metrics")
    dataset = results.get("dataset")
    if not isinstance(metrics, dict) or not isinstance(dataset, dict) or "name" not in dataset:
        return Unfinished(run, "finished, but results.json lacks metrics or dataset.name", damaged=True)
    for name in METRICS:
        value = metrics.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return Unfinished(run, f"finished, but results.json has metrics.{name}={json.dumps(value)[:40]}, not a number", damaged=True)
    return Run(run, results, load_config(run))


# keys of .hydra/config.yaml that do not change what a run computes (as IGNORED_OVERRIDE_PREFIXES)
IGNORED_CONFIG_KEYS = ("seed", "paths", "resume", "overwrite", "logger", "hydra", "launcher_gpus")
IGNORED_CONFIG_SUBKEYS = (("trainer", "progress"), ("trainer", "checkpoint_when_done"), ("hardware", "num_threads"))


def computation_key(config: dict[str, Any]) -> str:
    """The composed config without the seed and the settings that change nothing: two groups
    with equal keys (and datasets and overrides) compute the same thing under two model names."""
    plain = {k: v for k, v in config.items() if k not in IGNORED_CONFIG_KEYS}
    for outer, inner in IGNORED_CONFIG_SUBKEYS:
        if isinstance(plain.get(outer), dict):
            plain[outer] = {k: v for k, v in plain[outer].items() if k != inner}
    return json.dumps(plain, sort_keys=True, default=str)


def _merge_aliases(groups: dict[tuple[str, str, str], Group]) -> dict[tuple[str, str, str], Group]:
    """Groups that differ only by the model's name (configs/model/amkm.yaml composes kmeans.yaml)
    become one row named by both; a run with the same seed as one already in it is set aside."""
    by_computation: dict[tuple[str, str, str], list[Group]] = {}
    for group in groups.values():
        if not isinstance(group.config.get("model"), dict) or not group.config["model"]:  # nothing to compare
            by_computation[(group.model, group.dataset, group.overrides)] = [group]
            continue
        by_computation.setdefault((computation_key(group.config), group.dataset, group.overrides), []).append(group)
    merged: dict[tuple[str, str, str], Group] = {}
    for same in by_computation.values():
        # the shorter, then alphabetically first name leads: kmeans before amkm
        same.sort(key=lambda g: (g.model != "kmeans", len(g.model), g.model))
        lead = same[0]
        for other in same[1:]:
            lead.aliases += (other.model,)
            seeds = {run.seed for run in lead.runs}
            for run in other.sorted_runs():
                (lead.duplicates if run.seed in seeds else lead.runs).append(run)
                seeds.add(run.seed)
        merged[lead.key] = lead
    return dict(sorted(merged.items()))


def _superseded_by(run: Path) -> str | None:
    """The folder where the same job later finished, as the sweep's own summary (written by the
    multirun that finished it, engine/sweep.py) records it; None when it records nothing."""
    try:
        summary = json.loads((run.parent / "sweep_summary.json").read_text())
        jobs = summary["jobs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for job in jobs if isinstance(jobs, list) else []:
        if isinstance(job, dict) and job.get("folder") == run.name and job.get("status") == "superseded":
            return str(job.get("by") or "another folder")
    return None


def _count_once(runs: list[Run]) -> tuple[list[Run], list[Unfinished]]:
    """Runs with the same config hash and seed are one run (the same command run twice): the
    one whose results.json was written last counts, the others are listed as superseded."""
    latest: dict[tuple[str, Any], Run] = {}
    for run in runs:
        digest = run.results.get("config_sha256")
        if not digest:  # written before results.json carried the hash: nothing to compare
            continue
        key = (str(digest), json.dumps(run.seed))
        if key not in latest or _written(run) > _written(latest[key]):
            latest[key] = run
    counted, superseded = [], []
    for run in runs:
        digest = run.results.get("config_sha256")
        kept = latest.get((str(digest), json.dumps(run.seed))) if digest else None
        if kept is None or kept is run:
            counted.append(run)
        else:
            superseded.append(Unfinished(run.path, f"superseded: the same config and seed finished later in {kept.path} (counted once)"))
    return counted, superseded


def _written(run: Run) -> tuple[float, str]:
    try:
        return (run.path / "results.json").stat().st_mtime, str(run.path)
    except OSError:
        return 0.0, str(run.path)


def summarize(run_folders: list[Path]) -> tuple[dict[tuple[str, str, str], Group], list[Unfinished]]:
    """Finished runs grouped by (model, dataset, overrides other than seed); the rest, with a reason.
    Groups that compute the same thing under two model names (amkm, kmeans) are one group; runs
    of the same config and seed count once (_count_once)."""
    groups: dict[tuple[str, str, str], Group] = {}
    unfinished: list[Unfinished] = []
    finished: list[Run] = []
    for folder in run_folders:
        item = _read_run(folder)
        if isinstance(item, Unfinished):
            by = _superseded_by(folder)
            if by is not None:
                item.reason = f"superseded: the same job finished in {by} ({item.reason})"
            unfinished.append(item)
        else:
            finished.append(item)
    counted, superseded = _count_once(finished)
    unfinished += superseded
    for item in counted:
        results = item.results
        model = str(results.get("model") or results.get("method") or "?")
        key = (model, str(results["dataset"]["name"]), relevant_overrides(list(results.get("overrides") or [])))
        groups.setdefault(key, Group(*key)).runs.append(item)
    # superseded folders last: what is left to do comes first
    unfinished.sort(key=lambda item: item.reason.startswith("superseded:"))
    return _merge_aliases(groups), unfinished
