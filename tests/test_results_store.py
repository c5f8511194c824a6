"""The results store (clusterbench/report/store.py, scripts/update_results.py): the merge rule,
the round trip store -> table == report's pivot for the same runs, seeding from pasted tables,
and the generated page / README block. Run folders are written by hand, no training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clusterbench.report import find_runs, summarize
from clusterbench.report.reference import resolve_references
from clusterbench.report.store import (
    README_BEGIN,
    README_END,
    Entry,
    StoreError,
    entries_from_markdown,
    entries_from_runs,
    merge,
    parse_pivot_markdown,
    pivot_from_entries,
    read_store,
    readme_table,
    replace_marked,
    write_store,
)
from clusterbench.report.tables import build_pivot, pivot_to_markdown

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "update_results.py"
KMEANS = {"model": {"_target_": "clusterbench.methods.kmeans.KMeans", "n_init": 10}}
KM = {"model": {"_target_": "clusterbench.methods.classic.KM", "view_selection": "acc"}}
CC = {"model": {"_target_": "clusterbench.methods.cc.ContrastiveClustering"}}
COMMON = ["hardware=cpu", "trainer.selection=last"]


def _run(root: Path, name: str, model: str, dataset: str, seed: int, acc: float, config=None, overrides=(), uses_labels=False):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, **(config or {})}))
    (run / "results.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "model": model,
                "seed": seed,
                "dataset": {"name": dataset},
                "overrides": [*COMMON, f"model={model}", f"dataset={dataset}", *overrides, f"seed={seed}"],
                "selection": {"rule": "best_acc" if uses_labels else "last", "epoch": 1, "uses_labels": uses_labels},
                "metrics": {"acc": acc, "nmi": acc / 2, "ari": acc / 4},
            }
        )
    )


def _bench(root: Path) -> Path:
    """A tiny bench folder: the floor and two methods on two datasets, one label-selected cell, a failed run."""
    for seed, (a, b) in enumerate([(0.61, 0.42), (0.63, 0.40), (0.62, 0.44)]):
        _run(root / "kmeans-digits", f"s{seed}", "kmeans", "digits", seed, a, KMEANS)
        _run(root / "kmeans-coil20", f"s{seed}", "kmeans", "coil20", seed, b, KMEANS)
    for seed, (a, b) in enumerate([(0.71, 0.35), (0.75, 0.39)]):
        _run(root / "cc-digits", f"s{seed}", "cc", "digits", seed, a, CC)
        _run(root / "cc-coil20", f"s{seed}", "cc", "coil20", seed, b, CC, overrides=["trainer.max_epochs=200"])
    _run(root / "km-digits", "s0", "km", "digits", 0, 0.80, KM, uses_labels=True)
    failed = root / "cc-digits" / "s9"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "config.yaml").write_text("seed: 9\n")
    (failed / "results.json").write_text(json.dumps({"status": "failed", "error": "NaN loss"}))
    return root


def _entry(method: str, dataset: str, mean: float, source: str = "old", metric: str = "acc") -> Entry:
    return Entry(method, "method", dataset, metric, mean, None, 1, "0", source=source)


def test_merge_replaces_the_cells_of_the_refresh_and_keeps_the_others():
    stored = [
        _entry("cc", "digits", 0.5),
        _entry("cc", "digits", 0.2, metric="nmi"),
        _entry("cc", "mnist", 0.9),
        _entry("htcn", "digits", 0.6),
    ]
    new = [_entry("cc", "digits", 0.7, source="new"), _entry("vtcc", "digits", 0.8, source="new")]
    merged = merge(stored, new)
    by_cell = {(e.method, e.dataset, e.metric): (e.mean, e.source) for e in merged}
    # every stored line of a refreshed cell goes, also its metrics the refresh lacks (the nmi line)
    assert by_cell == {
        ("cc", "digits", "acc"): (0.7, "new"),
        ("vtcc", "digits", "acc"): (0.8, "new"),
        ("cc", "mnist", "acc"): (0.9, "old"),
        ("htcn", "digits", "acc"): (0.6, "old"),
    }


def test_round_trip_store_renders_reports_pivot(tmp_path):
    bench = _bench(tmp_path / "bench")
    entries, unfinished = entries_from_runs([bench], COMMON)
    assert [u.reason for u in unfinished] == ["failed: NaN loss"]
    store = tmp_path / "results" / "cpu.csv"
    write_store(store, entries)
    loaded = read_store(store)
    assert len(loaded) == len(entries) == 5 * 3  # 5 cells x acc, nmi, ari
    groups, _ = summarize(find_runs([bench]))
    for metrics in (("acc", "nmi"), ("acc", "nmi", "ari")):
        expected = pivot_to_markdown(build_pivot(groups, [], metrics=metrics))
        assert pivot_to_markdown(pivot_from_entries(loaded, metrics)) == expected
    rendered = pivot_to_markdown(pivot_from_entries(loaded))
    assert "| kmeans | **0.420 ± 0.020 (3)** | 0.620 ± 0.010 (3) |" in rendered  # floor best on coil20
    assert "0.370 ± 0.028 (2) ↓" in rendered and "0.800 (1) †" in rendered
    assert "| cc trainer.max_epochs=200 |" in rendered  # the suite's common overrides are not in labels
    cc = next(e for e in loaded if e.method == "cc" and e.metric == "acc")
    assert (cc.seeds, cc.n, cc.source) == ("0 1", 2, str(bench)) and len(cc.date) == 10


def test_a_cell_run_into_its_own_folder_keeps_its_row_label(tmp_path):
    # report drops overrides that every group shares only when there are several groups: a
    # one-cell folder would otherwise be stored as `cc hardware=cpu trainer.selection=last`
    _run(tmp_path / "alone" / "cc-digits", "s0", "cc", "digits", 0, 0.7, CC)
    entries, _ = entries_from_runs([tmp_path / "alone"], COMMON)
    assert {e.method for e in entries} == {"cc"}


def test_round_trip_with_paper_rows(tmp_path):
    sdcib = {
        "model": {"_target_": "clusterbench.methods.sdcib.SDCIB", "variant": "paper"},
        "trainer": {"max_epochs": 40, "selection": "last_batch_loss"},
    }
    for seed in range(2):
        _run(tmp_path / "b", f"k{seed}", "amkm", "event", seed, 0.30 + seed / 100, KMEANS)
        _run(tmp_path / "b", f"s{seed}", "sdcib", "event", seed, 0.40 + seed / 100, sdcib)
    references = resolve_references("auto")
    entries, _ = entries_from_runs([tmp_path / "b"], COMMON, references)
    assert any(e.paper is not None and e.paper_reference == "sdcib_icml2025" for e in entries)
    groups, _ = summarize(find_runs([tmp_path / "b"]))
    expected = pivot_to_markdown(build_pivot(groups, [], references=references, metrics=("acc", "nmi")))
    write_store(tmp_path / "s.csv", entries)
    assert pivot_to_markdown(pivot_from_entries(read_store(tmp_path / "s.csv"))) == expected
    assert "| *amkm, paper* | 0.287 (Δ +0.018) |" in expected


def test_seeding_from_a_pasted_pivot_reproduces_its_cells(tmp_path):
    bench = _bench(tmp_path / "bench")
    groups, _ = summarize(find_runs([bench]))
    pasted = "text\n\n" + pivot_to_markdown(build_pivot(groups, [], metrics=("acc", "nmi"))) + "\n\nmore text\n"
    blocks = parse_pivot_markdown(pasted)
    assert [b.metric for b in blocks] == ["acc", "nmi"]
    entries = entries_from_markdown(blocks, "docs/x.md table as of abc", "2026-12-01")
    assert len(entries) == 5 * 2 and {e.source for e in entries} == {"docs/x.md table as of abc"}
    km = next(e for e in entries if e.method == "km" and e.metric == "acc")
    assert (km.kind, km.label_selected, km.mean, km.std, km.n) == ("classic", True, 0.8, None, 1)
    # the seeded store renders the pasted tables again
    assert pivot_to_markdown(pivot_from_entries(entries)).split("\n\nCells:")[0] in pasted


def test_bad_store_line_is_one_error_naming_file_and_line(tmp_path):
    path = tmp_path / "cpu.csv"
    write_store(path, [_entry("cc", "digits", 0.5)])
    path.write_text(path.read_text().replace("0.5", "zero"))
    with pytest.raises(StoreError, match=r"cpu.csv: line 2: mean: 'zero' is not a number"):
        read_store(path)


def test_readme_block_and_markers():
    entries = [
        Entry("kmeans", "floor", "digits", "acc", 0.62, 0.01, 3, "0 1 2"),
        Entry("cc", "method", "digits", "acc", 0.73, 0.028, 2, "0 1"),
        Entry("cc", "method", "digits", "nmi", 0.365, 0.014, 2, "0 1"),
        Entry("km", "classic", "digits", "acc", 0.80, None, 1, "0", label_selected=True),
    ]
    table = readme_table({"cpu": entries})
    assert table.splitlines()[2] == "| digits | cc (cpu) | 0.730 ± 0.028 (2) | 0.365 ± 0.014 (2) | 0.620 ± 0.010 (3) |"
    text = f"a\n{README_BEGIN}\nold\n{README_END}\nb\n"
    assert replace_marked(text, table) == f"a\n{README_BEGIN}\n{table}\n{README_END}\nb\n"
    with pytest.raises(StoreError, match="no <!-- results:begin -->"):
        replace_marked("no markers", table)


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


def test_script_refreshes_store_page_and_readme_then_check_passes(tmp_path):
    bench = _bench(tmp_path / "bench")
    store = tmp_path / "results"
    write_store(store / "smoke.csv", [_entry("cc", "mnist", 0.9, source="seeded"), _entry("cc", "digits", 0.1, source="seeded")])
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\n{README_END}\n\n## Layout\n")
    paths = ["--store", str(store), "--page", str(tmp_path / "page.md"), "--readme", str(readme)]
    assert _script(*paths, "--check").returncode == 1  # nothing generated yet
    done = _script(*paths, "--suite", "smoke", str(bench))
    assert done.returncode == 0, done.stderr
    assert "5 cell(s) written (1 replaced, 4 new)" in done.stderr
    stored = {(e.method, e.dataset): e.source for e in read_store(store / "smoke.csv")}
    assert stored[("cc", "mnist")] == "seeded" and stored[("cc", "digits")] == str(bench)
    page = (tmp_path / "page.md").read_text()
    assert "do not edit by hand" in page and "## `smoke`" in page and "**ACC**" in page and "**NMI**" in page
    assert "- seeded: 1 cell" in page
    assert "| digits | km (smoke) |" not in readme.read_text()  # label-selected: never the best
    assert "| digits | cc (smoke) | 0.730 ± 0.028 (2) |" in readme.read_text()
    assert _script(*paths, "--check").returncode == 0


def test_script_bad_input_is_one_line_exit_2(tmp_path):
    done = _script("--suite", "nosuchsuite", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no suite 'nosuchsuite'" in done.stderr
    done = _script(str(tmp_path))
    assert done.returncode == 2 and "--suite is needed" in done.stderr


def test_committed_page_and_readme_are_up_to_date():
    """docs/results_current.md and README's table are what the store generates (rerun the script)."""
    done = _script("--check")
    assert done.returncode == 0, done.stderr
