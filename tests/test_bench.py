"""`python -m clusterbench.bench`: suites parse and compose, cells run, resume, fail alone.

The run test starts real jobs (k-means on scikit-learn's digits, a few seconds) in subprocesses.
"""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from clusterbench.bench import CONFIG_DIR, SuiteError, available_suites, load_suite, main


def test_the_bundled_suites_are_listed():
    assert {"smoke", "cpu", "paper", "table2"} <= set(available_suites())


# each suite's cells in PARTS interleaved slices: test processes (pytest -n) share the composing
PARTS = 4


@pytest.mark.parametrize("name, part", [(name, part) for name in available_suites() for part in range(PARTS)])
def test_bundled_suites_compose(name, part):
    """Every cell of every bundled suite composes (a misspelt preset or key fails here, not hours in)."""
    suite = load_suite(name)
    assert suite.cells and suite.seeds
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for cell in suite.cells[part::PARTS]:
            cfg = compose(config_name="train", overrides=[*suite.common, *cell.overrides])
            assert cfg.dataset.name == cell.dataset, (name, cell.name)
            target = str(cfg.model._target_).lower()
            expected = {"km": "kmeans", "amkm": "kmeans", "amncuts": "ncuts", "mfavbs": "mfavbs", "sdcib": "sdcib"}.get(
                cell.method, cell.method
            )
            if cell.method not in ("ncuts", "amncuts"):
                assert expected in target, (name, cell.name, target)
    GlobalHydra.instance().clear()


def test_smoke_suite_covers_every_method():
    methods = {cell.method for cell in load_suite("smoke").cells}
    assert {"kmeans", "km", "ncuts", "amncuts", "sdcib", "cc", "htcn", "dcsm", "pici", "vtcc", "mfavbs"} <= methods
    assert {"coreg", "rmkmc", "swmc", "onmsc", "simvc", "comvc", "mflvc", "dealmvc", "icmvc", "divide"} <= methods


def test_suite_errors_are_one_line(tmp_path):
    with pytest.raises(SuiteError, match="no suite 'nope'"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells:\n  - {method: a, dataset: b, minutes: 1, colour: red}\n")
    with pytest.raises(SuiteError, match="unknown key"):
        load_suite(str(bad))
    bad.write_text("cells:\n  - {method: a, dataset: b}\n  - {method: a, dataset: b}\n")
    with pytest.raises(SuiteError, match="a second cell named 'a-b'"):
        load_suite(str(bad))


def test_run_resume_failure_and_missing_data(tmp_path, capsys):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "seeds: [0]\n"
        "common: [hardware=cpu, trainer.progress=false, hardware.num_threads=1]\n"
        "cells:\n"
        "  - {method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits, model.n_init=1], minutes: 0.5}\n"
        "  - {name: broken, method: nope, dataset: digits, overrides: [model=nope, dataset=digits], minutes: 0.1}\n"
        "  - {method: kmeans, dataset: event, overrides: [model=kmeans, dataset=event], minutes: 0.1, needs: absent.npz}\n"
    )
    out = tmp_path / "out"
    argv = [str(suite), "--out", str(out), "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 1  # a cell failed; the others still ran
    text = capsys.readouterr().out
    assert "expected wall time: about 36 s for 2 cell(s)" in text
    assert "skip  kmeans-event: data absent" in text
    assert "[1/2] kmeans-digits: 1/1 seeds finished, ACC " in text
    assert "[2/2] broken: 0/1 seeds finished, no finished run; FAILED" in text
    assert "failed: broken:" in text
    summary = json.loads((out / "bench_summary.json").read_text())
    assert [c["status"] for c in summary["cells"]] == ["finished", "failed", "skipped: data absent"]
    # the pivot of what finished is printed and written
    assert "**ACC**" in text and "| kmeans " in text and (out / "report" / "pivot.md").exists()
    results = next((out / "kmeans-digits").rglob("results.json"))
    stamp = results.stat().st_mtime_ns

    # again: the finished cell is skipped without starting a job, the failed one runs again
    assert main([*argv, "--no-table"]) == 1
    text = capsys.readouterr().out
    assert "done  kmeans-digits: 1/1 seeds finished" in text
    assert "[1/1] broken:" in text and "kmeans-digits:" not in text.split("expected wall time")[1]
    assert results.stat().st_mtime_ns == stamp
    # the summary keeps the record of the invocation that ran the cell found done
    cells = {c["cell"]: c for c in json.loads((out / "bench_summary.json").read_text())["cells"]}
    assert cells["kmeans-digits"]["status"] == "finished" and cells["kmeans-digits"]["ran"]
    assert cells["broken"]["status"] == "failed" and len(cells) == 3
    # --only and --dry-run: nothing runs
    assert main([*argv, "--only", "kmeans-digits", "--dry-run"]) == 0
    assert "expected wall time: about 0 s for 0 cell(s)" in capsys.readouterr().out


def test_overrides_may_follow_the_options(tmp_path, capsys):
    # argparse's plain parse took the suite and an empty override list at the first positional,
    # then refused what followed `--` ("unrecognized arguments", exit 2)
    from clusterbench.bench import _parser, main

    suite = tmp_path / "s.yaml"
    suite.write_text("seeds: [0]\ncells:\n  - {method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 0.1}\n")
    args = _parser().parse_intermixed_args([str(suite), "--only", "kmeans*", "--", "hardware=gpu", "seed=3"])
    assert (args.suite, args.only, args.overrides) == (str(suite), ["kmeans*"], ["hardware=gpu", "seed=3"])
    assert main([str(suite), "--out", str(tmp_path / "out"), "--dry-run", "--", "model.n_init=1"]) == 0
    assert "run   kmeans-digits" in capsys.readouterr().out


def test_max_seeds_caps_every_cell_even_those_with_their_own_seeds(tmp_path, capsys):
    """`--seeds` leaves a cell's own seeds alone (SwMC's one, the multi-view cells' five);
    `--max-seeds N` cuts every cell to its first N, and the expected time follows."""
    from clusterbench.bench import main

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "seeds: [0, 1, 2]\ncells:\n"
        "  - {name: three, method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 1}\n"
        "  - {name: five, method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 1, seeds: 5}\n"
        "  - {name: one, method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 1, seeds: 1}\n"
    )
    out = ["--out", str(tmp_path / "out"), "--dry-run"]
    assert main([str(suite), *out, "--seeds", "4,5,6,7"]) == 0
    text = capsys.readouterr().out
    assert "three: seeds 4,5,6,7 " in text and "five: seeds 0,1,2,3,4 " in text and "one: seeds 0 " in text
    assert main([str(suite), *out, "--max-seeds", "2"]) == 0
    text = capsys.readouterr().out
    assert "three: seeds 0,1 " in text and "five: seeds 0,1 " in text and "one: seeds 0 " in text
    assert "expected wall time: about 5 min 00 s for 3 cell(s)" in text  # 2 + 2 + 1 seeds of 1 minute
    assert main([str(suite), *out, "--seeds", "4,5,6", "--max-seeds", "1"]) == 0
    assert "three: seeds 4 " in capsys.readouterr().out
    assert main([str(suite), *out, "--max-seeds", "0"]) == 2
    assert "--max-seeds 0: at least 1" in capsys.readouterr().err


def test_a_cell_whose_job_was_killed_names_that_job(tmp_path):
    """No failed results.json (the job was killed): the error is the sweep summary's line for the
    unfinished job, not the log's last line (another seed's result)."""
    from clusterbench.bench import _error_lines

    log = tmp_path / "bench.log"
    log.write_text(
        "sdcib on event (seed 7, last epoch 40): ACC 0.4427 -> x\n"
        "sweep: 2 jobs (1 finished, 1 unfinished) -> x/sweep_summary.json\n"
        "  unfinished: sdcib_event_seed=8_1e05b511 [seed=8]\n"
    )
    assert _error_lines(tmp_path, log) == ["unfinished: sdcib_event_seed=8_1e05b511 [seed=8]"]


def test_the_summary_keeps_the_cells_of_earlier_invocations(tmp_path):
    """A suite run in parts (`--only a`, later `--only b`) into one folder: bench_summary.json
    lists both cells, the latest record of each first."""
    from clusterbench.bench import write_summary

    def invocation(*cells):
        return {"suite": "s", "cells": [{"cell": name, "status": status, "ran": status != "done before"} for name, status in cells]}

    write_summary(tmp_path, invocation(("a", "finished"), ("b", "failed")))
    write_summary(tmp_path, invocation(("b", "finished")))
    write_summary(tmp_path, invocation(("a", "done before"), ("c", "skipped: data absent")))
    cells = json.loads((tmp_path / "bench_summary.json").read_text())["cells"]
    assert [(c["cell"], c["status"]) for c in cells] == [("a", "finished"), ("c", "skipped: data absent"), ("b", "finished")]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".bench_summary.json.")]  # no temporary left


def test_a_run_of_the_cells_former_configuration_is_not_its_result(tmp_path, monkeypatch, capsys):
    """The cell's overrides changed since an earlier invocation ran it: that run stays in the
    cell's folder, but when the new configuration's job fails, the cell failed (it was once
    reported with the earlier run's ACC as its own)."""
    import clusterbench.bench as bench

    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "seeds: [0]\ncommon: [hardware=cpu]\n"
        "cells:\n  - {method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits, model.n_init=2], minutes: 0.1}\n"
    )
    earlier = tmp_path / "out" / "kmeans-digits" / "kmeans_digits_seed=0_old"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text(
        json.dumps({"status": "finished", "seed": 0, "config_sha256": "of-model.n_init=1", "metrics": {"acc": 0.123}})
    )
    monkeypatch.setattr(bench, "run_cell", lambda *args: 1)  # the new configuration's job fails
    assert main([str(suite), "--out", str(tmp_path / "out"), "--no-table"]) == 1
    text = capsys.readouterr().out
    assert "[1/1] kmeans-digits: 0/1 seeds finished, no finished run; FAILED" in text
    assert "0.123" not in text
    cells = json.loads((tmp_path / "out" / "bench_summary.json").read_text())["cells"]
    assert cells[0]["status"] == "failed" and cells[0]["finished_seeds"] == []


# --- issue 31.5: a broken suite file, and a failing cell's real error ---------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "seeds: [0]\ncells:\n  - {method: a, dataset: b\n  - {method: c, dataset: d}\n",
            r"bad\.yaml: line 4, column 5: expected ',' or '}', but got '{'",
        ),
        (
            "cells:\n  - {method: a, dataset: b, minutes: fast}\n",
            r"bad\.yaml: cell 1 \(a-b\): minutes must be a number of minutes .*not 'fast'",
        ),
        (
            "cells:\n  - {method: a, dataset: b, overrides: model=kmeans}\n",
            r"bad\.yaml: cell 1 \(a-b\): overrides must be a list of overrides .*not 'model=kmeans'",
        ),
        ("common: hardware=cpu\ncells:\n  - {method: a, dataset: b}\n", r"bad\.yaml: common must be a list of overrides"),
    ],
)
def test_a_broken_suite_file_is_one_line_naming_where(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(SuiteError, match=message) as info:
        load_suite(str(bad))
    assert "\n" not in str(info.value)
    assert main([str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_a_failing_cell_shows_the_real_error_not_hydras_hint(tmp_path):
    from clusterbench.bench import _error_lines

    log = tmp_path / "bench.log"
    log.write_text(
        "$ python -m clusterbench.train -m model=kmeans seed=0\n"
        "error: an earlier invocation's error\n"
        "$ python -m clusterbench.train -m model=kmeans seed=0\n"
        "[2026-12-06 09:00:00,000][HYDRA] Launching 1 jobs locally\n"
        "Error executing job with overrides: ['model=kmeans', 'seed=0']\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: the real one-line error\n"
        "\n"
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
    )
    assert _error_lines(tmp_path, log)[0] == "ValueError: the real one-line error"
    log.write_text(
        "$ python -m clusterbench.train -m x\nerror: model=x: no option 'x' in model\n"
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
    )
    assert _error_lines(tmp_path, log) == ["error: model=x: no option 'x' in model"]


def test_jobs_run_cells_side_by_side_each_with_a_share_of_the_cores(tmp_path, monkeypatch, capsys):
    """--jobs 2: two cells run at once (each waits for the other to have started), every job gets
    cores / 2 threads unless --threads says otherwise, and the summary lists the cells in the
    suite's order whatever order they finished in."""
    import threading

    import clusterbench.bench as bench

    suite = tmp_path / "three.yaml"
    suite.write_text(
        "seeds: [0]\n"
        "cells:\n"
        + "".join(
            f"  - {{name: c{i}, method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 1}}\n"
            for i in range(3)
        )
    )
    both_started = threading.Barrier(2, timeout=60)
    c2_reported = threading.Event()
    calls = []

    def fake_run_cell(cell, cell_dir, common, extra, seeds=None):
        calls.append((cell.name, list(extra)))
        if cell.name in ("c0", "c1"):
            both_started.wait()  # raises BrokenBarrierError if the cells ran one after the other
        if cell.name == "c0":
            assert c2_reported.wait(timeout=60)  # c0 ends last: c2 ran in c1's lane meanwhile
        return 0

    done = bench._Progress.done

    def reporting(self, cell, *args):
        done(self, cell, *args)
        if cell.name == "c2":
            c2_reported.set()

    monkeypatch.setattr(bench, "run_cell", fake_run_cell)
    monkeypatch.setattr(bench._Progress, "done", reporting)
    monkeypatch.setattr(bench.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert main([str(suite), "--out", str(tmp_path / "out"), "--jobs", "2", "--no-table"]) == 1  # no results: failed
    text = capsys.readouterr().out
    assert "expected wall time: about 3 min 00 s in sequence, about 2 min 00 s in 2 lanes for 3 cell(s)" in text
    assert {name for name, _ in calls} == {"c0", "c1", "c2"}
    assert all("hardware.num_threads=2" in extra for _, extra in calls)
    finished_order = [line.split("] ")[1].split(":")[0] for line in text.splitlines() if line.startswith("[")]
    assert finished_order[-1] == "c0"
    cells = json.loads((tmp_path / "out" / "bench_summary.json").read_text())["cells"]
    assert [c["cell"] for c in cells] == ["c0", "c1", "c2"]

    calls.clear()
    both_started.reset()
    c2_reported.clear()
    main([str(suite), "--out", str(tmp_path / "out2"), "--jobs", "2", "--threads", "1", "--no-table"])
    assert all("hardware.num_threads=1" in extra for _, extra in calls) and len(calls) == 3
    assert main([str(suite), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: --jobs 0: at least 1"


def test_wall_time_in_lanes():
    from clusterbench.bench import wall_time

    assert wall_time([1, 1, 1], 1) == 180
    assert wall_time([3, 1, 1, 1], 2) == 180  # the short cells fill the second lane
    assert wall_time([1, 1, 3], 2) == 240  # in the suite's order: the long cell comes last
    assert wall_time([], 2) == 0


def test_split_seeds_into_parts_of_at_least_two_minutes():
    from clusterbench.bench import split_seeds

    assert split_seeds([0, 1, 2], 10, 1) == [[0, 1, 2]]  # one lane: the cell in one process
    assert split_seeds([0, 1, 2], 10, 2) == [[0], [1], [2]]
    assert split_seeds([3, 4, 5, 6, 7], 0.4, 2) == [[3, 4, 5, 6, 7]]  # 5 x 0.4 min: one part
    assert split_seeds(list(range(12)), 0.5, 2) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert split_seeds([], 3, 2) == [[]]


def test_the_seeds_of_one_long_cell_run_in_every_lane(tmp_path, monkeypatch, capsys):
    """`--only <cell> --jobs 2` on a cell of 4 long seeds: its seeds run two at a time (one lane
    idled before), each part a multirun of its own seeds into the cell's folder, and the cell is
    reported once, when its last part is done, with every seed's result."""
    import threading

    import clusterbench.bench as bench

    suite = tmp_path / "one.yaml"
    suite.write_text(
        "seeds: [0, 1, 2, 3]\n"
        "cells:\n  - {name: long, method: kmeans, dataset: digits, overrides: [model=kmeans, dataset=digits], minutes: 5}\n"
    )
    two_at_once = threading.Barrier(2, timeout=60)
    parts = []

    def fake_run_cell(cell, cell_dir, common, extra, seeds=None):
        parts.append(seeds)
        two_at_once.wait()  # raises BrokenBarrierError if the parts ran one after the other
        for seed in seeds:
            folder = cell_dir / f"kmeans_digits_seed={seed}"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps({"status": "finished", "seed": seed, "metrics": {"acc": 0.5}}))
        return 0

    monkeypatch.setattr(bench, "run_cell", fake_run_cell)
    monkeypatch.setattr(bench, "compose_hashes", lambda overrides, seeds: None)
    out = tmp_path / "out"
    assert main([str(suite), "--out", str(out), "--jobs", "2", "--dry-run"]) == 0
    assert "about 20 min 00 s in sequence, about 10 min 00 s in 2 lanes for 1 cell(s)" in capsys.readouterr().out
    assert main([str(suite), "--out", str(out), "--jobs", "2", "--no-table"]) == 0
    assert sorted(parts) == [[0], [1], [2], [3]]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("[1/1] long: 4/4 seeds finished, ACC 0.5000 (n=4)")
    cell = json.loads((out / "bench_summary.json").read_text())["cells"][0]
    assert cell["status"] == "finished" and cell["finished_seeds"] == [0, 1, 2, 3]
