"""What a finished run folder keeps by default (issue 30.1): one last.pt without the optimisers'
state, no previous.pt; enough for report, load_trained and resume= with a longer schedule."""

from __future__ import annotations

import csv
import json

import torch
from omegaconf import OmegaConf

from clusterbench.engine.build import load_trained
from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.report.runs import summarize
from clusterbench.train import run

QUICK = ("trainer.max_epochs=2", "trainer.batch_size=500", "trainer.checkpoint_every=1")


def _save_hydra(cfg, folder) -> None:
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")


def test_a_finished_run_keeps_one_checkpoint_without_optimiser_state(tiny_config, tmp_path):
    results = run(tiny_config(*QUICK), tmp_path / "run")
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == [
        "checkpoints",
        "embedding.npz",
        "metrics.csv",
        "predictions.npz",
        "results.json",
    ]
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["last.pt"]  # no previous.pt, no temporary file
    state = load_checkpoint(folder / "checkpoints" / "last.pt")
    assert state["kind"] == "extendable" and "optimizers" not in state and state["epoch"] == 2
    assert {"method", "config", "config_sha256", "rng", "evaluations", "step"} <= set(state)
    # the same run keeping everything: its last.pt also holds Adam's two moments per weight
    run(tiny_config(*QUICK, "trainer.checkpoint_when_done=full"), tmp_path / "full")
    full = tmp_path / "full" / "checkpoints"
    assert (full / "previous.pt").exists() and "optimizers" in load_checkpoint(full / "last.pt")
    assert (folder / "checkpoints" / "last.pt").stat().st_size < 0.5 * (full / "last.pt").stat().st_size
    # what load_trained and report need is there
    trained = load_trained(folder)
    weights = load_checkpoint(full / "last.pt")["method"]
    assert all(torch.equal(trained.method.state_dict()[k], weights[k]) for k in weights)
    groups, unfinished = summarize([folder])
    assert not unfinished and [r.results["metrics"]["acc"] for g in groups.values() for r in g.runs] == [results["metrics"]["acc"]]


def test_a_finished_run_resumes_a_longer_schedule_from_what_it_kept(tiny_config, tmp_path, capsys):
    folder = tmp_path / "run"
    cfg = tiny_config(*QUICK)
    run(cfg, folder)
    _save_hydra(cfg, folder)
    longer = run(tiny_config(f"resume={folder}"), tmp_path / "ignored", {"overrides": ["trainer.max_epochs=3"]})
    assert "the optimisers start afresh at epoch 2" in capsys.readouterr().err
    assert longer["status"] == "finished" and longer["epochs"] == 3 and longer["optimizers_restarted_at"] == [2]
    assert json.loads((folder / "results.json").read_text())["optimizers_restarted_at"] == [2]
    assert [int(r["epoch"]) for r in csv.DictReader(open(folder / "metrics.csv"))] == [1, 2, 3]
    state = load_checkpoint(folder / "checkpoints" / "last.pt")
    assert state["epoch"] == 3 and state["kind"] == "extendable" and state["optimizers_restarted_at"] == [2]
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["last.pt"]
