"""report on damaged run folders (issue 31.4) and runs counted once per config and seed (issue 30.4)."""

from __future__ import annotations

import json
import os

import pytest
from test_report import _run

from clusterbench.report import main, summarize
from clusterbench.report.runs import find_runs

DAMAGES = {
    "corrupt": (b"{not json", "unreadable results.json: not JSON text"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)), "unreadable results.json: not JSON text"),
    "wrong_type": (b"[1, 2, 3]", "unreadable results.json: a JSON list, not an object"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_results_json_is_one_line_and_exit_status_2(tmp_path, capsys, damage):
    content, reason = DAMAGES[damage]
    (_run(tmp_path, "bad", 0, 0.5) / "results.json").write_bytes(content)
    _run(tmp_path, "good", 1, 0.7)
    for fmt in ("md", "csv"):
        assert main([str(tmp_path), "--format", fmt]) == 2
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if "bad" in line]
        assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'bad'}: {reason}"), err
        assert "Traceback" not in err and ",0.7," in out.replace("| 0.7000 |", ",0.7,")  # the rest is still tabulated


@pytest.mark.parametrize("value", ["high", [0.5], True, {"mean": 0.5}])
def test_a_metric_that_is_not_a_number_is_one_line_and_exit_status_2(tmp_path, capsys, value):
    bad = _run(tmp_path, "bad", 0, 0.5)
    results = json.loads((bad / "results.json").read_text())
    results["metrics"]["acc"] = value
    (bad / "results.json").write_text(json.dumps(results))
    _run(tmp_path, "good", 1, 0.7)
    assert main([str(tmp_path), "--pivot"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {tmp_path / 'bad'}: finished, but results.json has metrics.acc={json.dumps(value)}, not a number"]


def test_failed_and_unfinished_runs_are_listed_and_exit_status_0(tmp_path, capsys):
    _run(tmp_path, "failed", 0, 0.5, status="failed")
    _run(tmp_path, "killed", 1, 0.5, status=None)
    _run(tmp_path, "good", 2, 0.7)
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "Not finished:" in out and "failed: non-finite loss" in out and err == ""


def _with_hash(run, digest: str, written: int) -> None:
    results = json.loads((run / "results.json").read_text())
    results["config_sha256"] = digest
    (run / "results.json").write_text(json.dumps(results))
    os.utime(run / "results.json", (written, written))


def test_the_same_config_and_seed_counts_once_the_latest_finished(tmp_path, capsys):
    """The same k-means command run twice is one run: the one finished last counts, the
    other is listed as superseded; another seed of the same config counts."""
    _with_hash(_run(tmp_path, "first", 0, 0.90, model="kmeans"), "a" * 64, 1_000)
    _with_hash(_run(tmp_path, "second", 0, 0.92, model="kmeans"), "a" * 64, 2_000)
    _with_hash(_run(tmp_path, "seed1", 1, 0.80, model="kmeans"), "a" * 64, 1_500)
    _with_hash(_run(tmp_path, "other", 0, 0.50, model="kmeans", overrides=("model.n_init=1",)), "b" * 64, 500)
    groups, unfinished = summarize(find_runs([tmp_path]))
    rows = {key[2]: sorted((run.path.name for run in group.runs)) for key, group in groups.items()}
    assert rows == {"": ["second", "seed1"], "model.n_init=1": ["other"]}
    assert [(item.path.name, item.reason) for item in unfinished] == [
        ("first", f"superseded: the same config and seed finished later in {tmp_path / 'second'} (counted once)")
    ]
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| kmeans | handwritten | - | 2 | 0,1 | last | **0.8600 ± 0.0849**" in out  # 0.92 and 0.80, not 0.90 again
    assert f"- {tmp_path / 'first'}: superseded: the same config and seed finished later in {tmp_path / 'second'}" in out
