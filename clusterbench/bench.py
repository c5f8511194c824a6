"""`python -m clusterbench.bench <suite>`: every method on every dataset of a suite, resumable,
then the methods x datasets table (`report --pivot`).

A suite is a YAML file, configs/bench/<suite>.yaml (or any path): `seeds`, `common` overrides
for every cell, and `cells`, each a (method, dataset) pair with its overrides, the data files it
`needs` under paths.data_dir, and the `minutes` one seed takes on 2 CPU cores (the expected wall
time printed before the start is the sum over what is left to run). Each cell is one Hydra
multirun over the seeds (`python -m clusterbench.train -m <overrides> seed=0,1,2
hydra.sweep.dir=<out>/<cell>`; under --jobs N, a long cell's seeds are split into parts that
run in different lanes, each a multirun into the same folder), so the sweep machinery of
engine/sweep.py applies inside it:
finished jobs with the same config are skipped, killed ones resume from their checkpoint, a
failing job never stops the others.

Around the cells:
- a cell whose every seed has a finished results.json with this config's hash is skipped without
  starting a process; a cell whose data files are absent is skipped and listed;
- a failing cell (a failed job, or a multirun that did not start) is listed with its log and
  error, and the remaining cells still run; the exit status is 1 when any cell failed;
- one progress line per finished cell (status, mean ACC, time, estimate of what is left);
- at the end: bench_summary.json in the output folder (earlier invocations' other cells kept),
  and the pivot table of every finished run
  (also written as pivot.md, pivot.csv, pivot.tex).

Examples:
    python -m clusterbench.bench smoke                           # every method, tiny data, 1 seed
    python -m clusterbench.bench cpu --data-dir ../shared/data   # every offline dataset, 3 seeds
    python -m clusterbench.bench cpu --only kmeans --dry-run     # what would run, and how long
    python -m clusterbench.bench paper --data-dir /data -- hardware=gpu
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterbench._configs import config_dir
from clusterbench.atomic import atomic_write_bytes

CONFIG_DIR = Path(config_dir())  # configs/ of a checkout, or clusterbench/configs in an installed wheel
SUITE_DIR = CONFIG_DIR / "bench"
SUMMARY = "bench_summary.json"
LOG = "bench.log"


class SuiteError(ValueError):
    """A suite that does not exist or does not parse; one line."""


@dataclass
class Cell:
    name: str
    method: str
    dataset: str
    overrides: list[str]
    minutes: float  # per seed, on 2 CPU cores
    needs: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


@dataclass
class Suite:
    name: str
    description: str
    seeds: list[int]
    common: list[str]
    cells: list[Cell]
    timing: str = "one seed on 2 CPU cores"  # what a cell's `minutes` means


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml")) if SUITE_DIR.is_dir() else []


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(value))  # `seeds: 3` means 0, 1, 2
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return list(value)
    raise SuiteError(f"{where}: seeds must be a count or a non-empty list of ints, not {value!r}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML syntax error as one line with its line and column (PyYAML puts them on other lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _overrides(value: Any, where: str) -> list[str]:
    """A list of override strings (a bare string would be read letter by letter)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(o, (str, int, float)) and not isinstance(o, bool) for o in value):
        raise SuiteError(f"{where} must be a list of overrides (e.g. [model=kmeans, dataset=digits]), not {value!r}")
    return [str(o) for o in value]


def _minutes(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise SuiteError(f"{where} must be a number of minutes (one seed's wall time), not {value!r}")
    return float(value)


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SUITE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise SuiteError(f"no suite {name_or_path!r} (bundled: {', '.join(available_suites()) or 'none'}; or give a .yaml path)")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: {_yaml_problem(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SuiteError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or str(err).splitlines()[0]})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cells"), list):
        raise SuiteError(f"{path}: a suite needs a `cells` list")
    unknown = set(spec) - {"description", "seeds", "common", "cells", "timing"}
    if unknown:
        raise SuiteError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    seeds = _seeds(spec.get("seeds", [0]), str(path))
    common = _overrides(spec.get("common"), f"{path}: common")
    cells, names = [], set()
    for i, item in enumerate(spec["cells"]):
        where = f"{path}: cell {i + 1}"
        if not isinstance(item, dict) or "method" not in item or "dataset" not in item:
            raise SuiteError(f"{where}: each cell needs `method` and `dataset`")
        unknown = set(item) - {"name", "method", "dataset", "overrides", "minutes", "needs", "seeds"}
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = str(item.get("name") or f"{item['method']}-{item['dataset']}")
        if name in names:
            raise SuiteError(f"{where}: a second cell named {name!r} (give one a `name`)")
        names.add(name)
        where = f"{path}: cell {i + 1} ({name})"
        needs = item.get("needs") or []
        cells.append(
            Cell(
                name=name,
                method=str(item["method"]),
                dataset=str(item["dataset"]),
                overrides=_overrides(item.get("overrides"), f"{where}: overrides"),
                minutes=_minutes(item.get("minutes", 1.0), f"{where}: minutes"),
                needs=[needs] if isinstance(needs, str) else [str(n) for n in needs],
                seeds=_seeds(item["seeds"], where) if "seeds" in item else list(seeds),
            )
        )
    timing = str(spec.get("timing") or Suite.timing)
    return Suite(path.stem, " ".join(str(spec.get("description", "")).split()), seeds, common, cells, timing)


# --------------------------------------------------------------------------- state of a cell


def _results(cell_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    if cell_dir.is_dir():
        for path in sorted(cell_dir.rglob("results.json")):
            try:
                found.append((path.parent, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
    return found


def finished_seeds(cell_dir: Path, hashes: dict[int, str] | None) -> dict[int, dict[str, Any]]:
    """seed -> results of the cell's finished runs (with the expected config hash, when known)."""
    done = {}
    for _, results in _results(cell_dir):
        seed = results.get("seed")
        if results.get("status") != "finished" or not isinstance(seed, int):
            continue
        if hashes is not None and hashes.get(seed) not in (None, results.get("config_sha256")):
            continue
        done[seed] = results
    return done


_COMPOSE_LOCK = threading.Lock()  # Hydra's compose state is global to the process (cells run in threads under --jobs)


def compose_hashes(overrides: list[str], seeds: list[int]) -> dict[int, str] | None:
    """The config hash each seed's job will have (the one results.json records), composed as
    the multirun composes it; None when it cannot be composed here (the job will say why)."""
    with _COMPOSE_LOCK:
        return _compose_hashes(overrides, seeds)


def _compose_hashes(overrides: list[str], seeds: list[int]) -> dict[int, str] | None:
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        import clusterbench.train  # noqa: F401  (registers the cb_now resolver)
        from clusterbench.engine.provenance import config_hash

        GlobalHydra.instance().clear()
        hashes = {}
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            for seed in seeds:
                hashes[seed] = config_hash(compose(config_name="train", overrides=[*overrides, f"seed={seed}"]))
        return hashes
    except Exception:  # noqa: BLE001 - a cell that does not compose fails in its own process, with the message
        return None
    finally:
        try:
            GlobalHydra.instance().clear()
        except Exception:  # noqa: BLE001
            pass


def data_dir_of(extra: list[str]) -> Path:
    """paths.data_dir as the jobs will see it (an override, CLUSTERBENCH_DATA_DIR, or ./data)."""
    for override in reversed(extra):
        if override.startswith("paths.data_dir="):
            return Path(override.split("=", 1)[1])
    root = os.environ.get("CLUSTERBENCH_ROOT", ".")
    return Path(os.environ.get("CLUSTERBENCH_DATA_DIR", f"{root}/data"))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# what a line of a cell's bench.log says, most telling first: the sweep summary's line for a job
# that did not finish, the project's one-line errors, the last line of a Python traceback, then
# other lines that mention an error (never Hydra's HYDRA_FULL_ERROR hint, which says nothing)
SUMMARY_LINE = re.compile(r"^(failed|unfinished):")
LOG_LINE_KINDS = (
    SUMMARY_LINE,
    re.compile(r"^error:"),
    re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(: .*)?$"),
    re.compile(r"error", re.IGNORECASE),
)
HYDRA_NOISE = ("Set the environment variable HYDRA_FULL_ERROR", "Error executing job with overrides", "Traceback (most recent call last)")


def _error_lines(cell_dir: Path, log: Path) -> list[str]:
    """Why a cell failed, most telling line first: its jobs' failed results.json, or else the
    lines of bench.log's last command that say what went wrong (LOG_LINE_KINDS)."""
    errors = [
        f"{folder.name}: {str(r.get('error') or r.get('status')).splitlines()[0]}"
        for folder, r in _results(cell_dir)
        if r.get("status") != "finished"
    ]
    if errors:
        return errors
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ["no log"]
    # the log is appended to by every invocation: only the last command's lines count
    last = text.rsplit("\n$ ", 1)[-1].splitlines()[1:] if "$ " in text else text.splitlines()
    lines = [line.strip() for line in last if line.strip() and not line.strip().startswith(HYDRA_NOISE)]
    for kind in LOG_LINE_KINDS:
        wanted = [line for line in lines if kind.search(line)]
        if wanted:
            # the summary's jobs in their order; otherwise the last line (the final error) first
            return wanted[-3:] if kind is SUMMARY_LINE else wanted[::-1][:3]
    return lines[::-1][:3] or ["no output in the log"]


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """<out>/bench_summary.json: this invocation's cells (one it found done keeps the record of
    the invocation that ran it), then the latest record of every other cell an earlier
    invocation into the same folder wrote: a suite run in parts, or two invocations at once,
    keeps them all. Read, merged and replaced under a lock, atomically."""
    with open(out / ".bench_summary.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            before = json.loads((out / SUMMARY).read_text()).get("cells", [])
        except (OSError, ValueError, AttributeError):
            before = []
        before = [r for r in before if isinstance(r, dict)] if isinstance(before, list) else []
        earlier = {r.get("cell"): r for r in before}
        # a cell this invocation found done keeps the record of the invocation that ran it
        cells = [earlier.get(r["cell"], r) if r.get("status") == "done before" else r for r in summary["cells"]]
        mine = {r["cell"] for r in summary["cells"]}
        merged = {**summary, "cells": cells + [r for r in before if r.get("cell") not in mine]}
        text = json.dumps(merged, indent=2) + "\n"
        atomic_write_bytes(out / SUMMARY, lambda handle: handle.write(text.encode()))


# --------------------------------------------------------------------------- running


def run_cell(cell: Cell, cell_dir: Path, common: list[str], extra: list[str], seeds: list[int] | None = None) -> int:
    """One multirun over the cell's seeds (or the given part of them); stdout and stderr go to
    <cell>/bench.log (parts running at once append to it line by line)."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "clusterbench.train",
        "-m",
        *common,
        *cell.overrides,
        *extra,
        "seed=" + ",".join(str(s) for s in (cell.seeds if seeds is None else seeds)),
        f"hydra.sweep.dir={cell_dir}",
    ]
    with open(cell_dir / LOG, "a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd()).returncode


# a process start (torch, Hydra, the data) costs a few seconds: a cell is split into tasks of at
# least this many minutes, so that it is a few percent of a task
MIN_TASK_MINUTES = 2.0


def split_seeds(left: list[int], minutes: float, jobs: int) -> list[list[int]]:
    """The parts of a cell's seeds that run as one multirun each. With one lane, one part (the
    cell in one process); with several, parts of at least MIN_TASK_MINUTES, so that the seeds of
    a long cell spread over the lanes instead of one lane running them all while the others idle."""
    if jobs == 1 or not left:
        return [left]
    size = max(1, math.ceil(MIN_TASK_MINUTES / minutes)) if minutes > 0 else len(left)
    return [left[i : i + size] for i in range(0, len(left), size)]


def _identity(cell: Cell) -> dict[str, Any]:
    return {"cell": cell.name, "method": cell.method, "dataset": cell.dataset, "overrides": cell.overrides, "seeds": cell.seeds}


class _Progress:
    """One line per finished cell, in the order they finish (cells may run side by side)."""

    def __init__(self, cells: int, expected_s: float, started: float, jobs: int) -> None:
        self.cells, self.left_s, self.started, self.jobs = cells, expected_s, started, jobs
        self.finished = 0
        self.lock = threading.Lock()

    def done(self, cell: Cell, seeds_run: int, took: float, what: str, finished: int) -> None:
        with self.lock:
            self.finished += 1
            self.left_s -= cell.minutes * 60 * seeds_run
            elapsed = time.perf_counter() - self.started
            print(
                f"[{self.finished}/{self.cells}] {cell.name}: {finished}/{len(cell.seeds)} seeds finished, {what}, "
                f"{_duration(took)}; elapsed {_duration(elapsed)}, about {_duration(max(self.left_s, 0) / self.jobs)} left",
                flush=True,
            )


def record_cell(
    cell: Cell, info: dict, cell_dir: Path, codes: list[int], took: float, hashes: dict[int, str] | None, progress: _Progress
) -> dict[str, Any]:
    """A cell's record for bench_summary.json once all its parts have run. It finished when every
    seed has a finished run of this configuration (a multirun's exit status also counts old
    folders of another configuration, and a part that ends while another part's job is starting)."""
    # only this cell's configuration counts: an earlier run of another one (the cell's
    # overrides changed since) keeps its folder beside it but is not this run's result
    finished = {s: r for s, r in finished_seeds(cell_dir, hashes).items() if s in cell.seeds}
    ok = len(finished) == len(cell.seeds)
    record = {
        **_identity(cell),
        "ran": True,
        "status": "finished" if ok else "failed",
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "returncode": max(codes),
        "wall_s": round(took, 1),
        "finished_seeds": sorted(finished),
        "log": str(cell_dir / LOG),
    }
    accs = [r["metrics"]["acc"] for r in finished.values() if isinstance(r.get("metrics"), dict) and "acc" in r["metrics"]]
    what = f"ACC {sum(accs) / len(accs):.4f} (n={len(accs)})" if accs else "no finished run"
    if not ok:
        record["errors"] = _error_lines(cell_dir, cell_dir / LOG)
        what += f"; FAILED: {record['errors'][0] if record['errors'] else 'see log'} (log {cell_dir / LOG})"
    progress.done(cell, len(info["left"]), took, what, len(finished))
    return record


def run_tasks(
    tasks: list[tuple[Cell, list[int]]],
    todo: list[tuple[Cell, dict]],
    out: Path,
    common: list[str],
    extra: list[str],
    jobs: int,
    progress: _Progress,
) -> dict[str, dict[str, Any]]:
    """Runs the tasks (a cell's seeds, or a part of them) in `jobs` lanes, each into the lane that
    frees first; a cell's record (by name) once its last part is done."""
    ran: dict[str, dict[str, Any]] = {}
    parts = Counter(cell.name for cell, _ in tasks)
    codes: dict[str, list[int]] = {c.name: [] for c, _ in todo}  # one per part that has ended
    first_start: dict[str, float] = {}
    infos = {c.name: info for c, info in todo}
    tally = threading.Lock()

    def run_part(cell: Cell, part: list[int]) -> None:
        with tally:
            first_start.setdefault(cell.name, time.perf_counter())
        code = run_cell(cell, out / cell.name, common, extra, part if jobs > 1 else None)
        with tally:
            codes[cell.name].append(code)
            last = len(codes[cell.name]) == parts[cell.name]
        if last:
            info = infos[cell.name]
            hashes = info["hashes"] or compose_hashes([*common, *cell.overrides, *extra], cell.seeds)
            took = time.perf_counter() - first_start[cell.name]
            ran[cell.name] = record_cell(cell, info, out / cell.name, codes[cell.name], took, hashes, progress)

    lanes = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in [lanes.submit(run_part, cell, part) for cell, part in tasks]:
            future.result()
    finally:  # after Ctrl-C (the running jobs got it too), no waiting cell starts
        lanes.shutdown(wait=True, cancel_futures=True)
    return ran


def lane_threads(jobs: int) -> int:
    """Threads per job when `jobs` cells share this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def wall_time(minutes: list[float], jobs: int) -> float:
    """Seconds to run tasks of these lengths in `jobs` lanes, in their order, each into the lane
    that frees first (what `--jobs` does with the suite's cells)."""
    lanes = [0.0] * jobs
    for m in minutes:
        lanes[lanes.index(min(lanes))] += m * 60
    return max(lanes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clusterbench.bench",
        description="Run a suite (every method x every dataset it lists), resumably, then print the methods x datasets table.",
        epilog="Overrides after `--` go to every job (e.g. -- hardware=gpu). Suites: configs/bench/. See docs/benchmark.md.",
    )
    parser.add_argument("suite", help=f"a suite name ({', '.join(available_suites())}) or a .yaml path")
    parser.add_argument("--out", type=Path, help="output folder (default outputs/bench/<suite>); re-use it to resume")
    parser.add_argument("--data-dir", help="paths.data_dir for every job (default: CLUSTERBENCH_DATA_DIR or ./data)")
    parser.add_argument("--seeds", help="comma-separated seeds instead of the suite's (cells with their own seeds keep them)")
    parser.add_argument(
        "--max-seeds",
        type=int,
        help="each cell runs at most its first N seeds (after --seeds; cells with their own seeds too): 3 = every cell at 3 seeds",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="run only cells whose name, method or dataset matches this glob (repeatable)"
    )
    parser.add_argument("--threads", type=int, help="hardware.num_threads for every job (default: torch's; with --jobs N, cores / N)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells (or parts of a long cell's seeds) run at once, each a process of its own (default 1; 2 on 2 cores: one thread each)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the cells, their state and the expected time; run nothing")
    parser.add_argument("--no-table", action="store_true", help="do not print the pivot table at the end")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job (after --)")
    return parser


def _selected(cell: Cell, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatch(x, p) for p in patterns for x in (cell.name, cell.method, cell.dataset))


def main(argv: list[str] | None = None) -> int:  # noqa: C901 - one flat branch per kind of bad input, each its own one-line message
    # intermixed: overrides after `--` may follow the options (`bench cpu --only x -- hardware=gpu`)
    args = _parser().parse_intermixed_args(argv)
    try:
        suite = load_suite(args.suite)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("outputs") / "bench" / suite.name
    extra = list(args.overrides)
    if args.data_dir:
        extra.append(f"paths.data_dir={args.data_dir}")
    if args.jobs < 1:
        print(f"error: --jobs {args.jobs}: at least 1", file=sys.stderr)
        return 2
    if args.threads is not None or args.jobs > 1:  # side by side, the jobs share the cores
        extra.append(f"hardware.num_threads={args.threads or lane_threads(args.jobs)}")
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            print(f"error: --seeds {args.seeds!r}: comma-separated ints", file=sys.stderr)
            return 2
        for cell in suite.cells:
            if cell.seeds == suite.seeds:
                cell.seeds = seeds
    if args.max_seeds is not None:
        if args.max_seeds < 1:
            print(f"error: --max-seeds {args.max_seeds}: at least 1", file=sys.stderr)
            return 2
        for cell in suite.cells:
            cell.seeds = cell.seeds[: args.max_seeds]
    data_dir = data_dir_of(suite.common + extra)

    cells = [c for c in suite.cells if _selected(c, args.only)]
    if not cells:
        print(f"error: no cell of suite {suite.name} matches {' '.join(args.only)}", file=sys.stderr)
        return 2

    # the state of every cell before anything runs
    plan: list[tuple[Cell, str, dict]] = []  # (cell, todo | done | no-data, info)
    for cell in cells:
        missing = [need for need in cell.needs if not (data_dir / need).exists()]
        if missing:
            plan.append((cell, "no-data", {"missing": [str(data_dir / m) for m in missing]}))
            continue
        done, hashes = finished_seeds(out / cell.name, None), None
        if done:  # compose (slow-ish) only where there is something to compare with
            hashes = compose_hashes([*suite.common, *cell.overrides, *extra], cell.seeds)
            done = finished_seeds(out / cell.name, hashes)
        left = [s for s in cell.seeds if s not in done]
        plan.append((cell, "todo" if left else "done", {"left": left, "done": done, "hashes": hashes}))

    todo = [(c, info) for c, state, info in plan if state == "todo"]
    tasks = [(c, part) for c, info in todo for part in split_seeds(info["left"], c.minutes, args.jobs)]
    expected = sum(c.minutes * 60 * len(info["left"]) for c, info in todo)
    in_lanes = f" in sequence, about {_duration(wall_time([c.minutes * len(part) for c, part in tasks], args.jobs))} in {args.jobs} lanes"
    print(f"suite {suite.name}: {len(cells)} cells -> {out}" + (f" ({suite.description})" if suite.description else ""))
    for cell, state, info in plan:
        if state == "no-data":
            line = f"  skip  {cell.name}: data absent ({', '.join(info['missing'])})"
        elif state == "done":
            line = f"  done  {cell.name}: {len(cell.seeds)}/{len(cell.seeds)} seeds finished"
        else:
            line = f"  run   {cell.name}: seeds {','.join(map(str, info['left']))} (~{_duration(cell.minutes * 60 * len(info['left']))})"
        print(line)
    print(
        f"expected wall time: about {_duration(expected)}{in_lanes if args.jobs > 1 else ''} for {len(todo)} cell(s) "
        f"(from the suite's minutes per cell: {suite.timing}; data dir {data_dir})",
        flush=True,
    )
    if args.dry_run:
        return 0

    started = time.perf_counter()
    progress = _Progress(len(todo), expected, started, args.jobs)
    ran = run_tasks(tasks, todo, out, suite.common, extra, args.jobs, progress)
    records = []
    for cell, state, info in plan:
        record = ran.get(cell.name) or {**_identity(cell), "status": "skipped: data absent" if state == "no-data" else "done before"}
        if state == "no-data":
            record["missing"] = info["missing"]
        records.append(record)

    failed = [r for r in records if r.get("status") == "failed"]
    absent = [r for r in records if r.get("status") == "skipped: data absent"]
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "suite": suite.name,
        "out": str(out),
        "data_dir": str(data_dir),
        "extra_overrides": extra,
        "wall_s": round(time.perf_counter() - started, 1),
        "cells": records,
    }
    write_summary(out, summary)
    print(
        f"bench {suite.name}: {sum(1 for r in records if r.get('status') == 'finished')} ran, "
        f"{sum(1 for r in records if r.get('status') == 'done before')} done before, {len(failed)} failed, "
        f"{len(absent)} without data, in {_duration(time.perf_counter() - started)} -> {out / SUMMARY}"
    )
    for record in failed:
        print(f"  failed: {record['cell']}: {'; '.join(record.get('errors') or [])} (log {record['log']})")

    if not args.no_table and any(out.rglob("results.json")):
        from clusterbench.report.cli import main as report_main

        print()
        report_main([str(out), "--pivot", "--out", str(out / "report")])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
