"""report: groups finished runs by model/dataset/overrides, mean +- std over seeds, lists the rest."""
from __future__ import annotations

import json

from clusterbench.report import find_runs, main, markdown, summarize


def _run(root, name, seed, acc, status="finished", model="sdcib", overrides=()):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    if status is None:
        return run
    payload = {
        "status": status,
        "model": model,
        "method": "x",
        "seed": seed,
        "overrides": [f"seed={seed}", *overrides],
        "dataset": {"name": "handwritten"},
        "selection": {"rule": "last", "uses_labels": False},
        "metrics": {"acc": acc, "nmi": acc / 2, "ari": acc / 4},
    }
    if status != "finished":
        payload["error"] = "non-finite loss at epoch 3"
    (run / "results.json").write_text(json.dumps(payload))
    return run


def test_mean_std_per_group_and_unfinished_listed(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.5)
    _run(tmp_path, "1", 1, 0.7)
    _run(tmp_path, "2", 0, 0.9, model="kmeans")
    _run(tmp_path, "3", 2, 0.1, status="failed")
    _run(tmp_path, "4", 3, 0.1, status=None)
    _run(tmp_path, "5", 0, 0.3, overrides=("model.alpha=0.2",))
    groups, unfinished = summarize(find_runs([tmp_path]))
    assert len(groups) == 3
    table = markdown(groups, unfinished)
    assert "| sdcib | handwritten | - | 2 | 0,1 | last | 0.6000 ± 0.1414 |" in table
    assert "| kmeans | handwritten | - | 1 | 0 | last | 0.9000 ± 0.0000 |" in table
    assert "model.alpha=0.2" in table
    assert "failed: non-finite loss at epoch 3" in table and "no results.json" in table
    assert main([str(tmp_path)]) == 0
    assert "0.6000 ± 0.1414" in capsys.readouterr().out


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: no such folder")


def test_max_aggregation_is_flagged(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.5)
    _run(tmp_path, "1", 1, 0.7)
    assert main([str(tmp_path), "--aggregate", "max"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Metrics are the MAXIMUM over runs") and "label-selected" in out
    assert "| sdcib | handwritten | - | 2 | 0,1 | last | 0.7000 | 0.3500 | 0.1750 |" in out
