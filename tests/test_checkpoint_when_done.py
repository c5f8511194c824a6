"""What a finished run folder keeps by default (issue 30.1): one last.pt without the optimisers'
state, no previous.pt; enough for report, load_trained and resume= with a longer schedule. And
how often a run writes one (trainer.checkpoint_every, paced by trainer.checkpoint_interval_s)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from clusterbench.engine import ensemble
from clusterbench.engine.build import load_trained
from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.engine.loop import checkpoint_due
from clusterbench.engine.provenance import config_hash
from clusterbench.report.runs import summarize
from clusterbench.train import run

QUICK = ("trainer.max_epochs=2", "trainer.batch_size=500", "trainer.checkpoint_every=1", "trainer.checkpoint_interval_s=0")


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


@pytest.mark.parametrize(
    "epoch, since_last_s, keep, expected",
    [(1, 600.0, False, False), (2, 10.0, False, False), (2, 60.0, False, True), (5, 0.0, False, True), (2, 0.0, True, True)],
)
def test_a_checkpoint_is_due_every_k_epochs_once_the_interval_has_passed(epoch, since_last_s, keep, expected):
    """Every 2nd epoch once 60 s have passed since the last write; the last epoch (5) always;
    asked-for epoch copies (keep_checkpoints) ignore the interval."""
    trainer = OmegaConf.create({"checkpoint_every": 2, "checkpoint_interval_s": 60, "keep_checkpoints": keep})
    assert checkpoint_due(epoch, trainer, 5, since_last_s) is expected
    saved_before_the_key = OmegaConf.create({"checkpoint_every": 2, "keep_checkpoints": False})
    assert checkpoint_due(epoch, saved_before_the_key, 5, since_last_s) is (epoch % 2 == 0 or epoch == 5)


def test_short_epochs_write_one_checkpoint_and_train_the_same(tiny_config, tmp_path, monkeypatch):
    """Three short epochs with checkpoint_every=1: the default interval (60 s) leaves one write,
    at the end, where 0 writes three; the predictions are the same bit for bit."""
    writes = []
    save = ensemble.save_checkpoint

    def counted(path, state, keep_previous=False):
        writes.append(state["epoch"])
        save(path, state, keep_previous)

    monkeypatch.setattr(ensemble, "save_checkpoint", counted)
    paced = (
        "trainer.max_epochs=3",
        "trainer.batch_size=1000",
        "trainer.checkpoint_every=1",
        "trainer.eval_every=3",
        "trainer.save_embedding=false",
    )
    run(tiny_config(*paced, "trainer.checkpoint_interval_s=60"), tmp_path / "paced")
    assert writes == [3]
    writes.clear()
    run(tiny_config(*paced, "trainer.checkpoint_interval_s=0"), tmp_path / "every")
    assert writes == [1, 2, 3]
    labels = [np.load(tmp_path / name / "predictions.npz")["y_pred"] for name in ("paced", "every")]
    assert np.array_equal(*labels)


def test_the_checkpoint_interval_is_not_in_the_config_hash(tiny_config):
    """How often a run writes changes nothing it computes: runs made before the key existed, and
    the bench's stored results, keep their hash."""
    hashes = {config_hash(tiny_config(f"trainer.checkpoint_interval_s={s}")) for s in (0, 60, 3600)}
    before_the_key = OmegaConf.to_container(tiny_config(), resolve=True)
    del before_the_key["trainer"]["checkpoint_interval_s"]
    assert hashes == {config_hash(before_the_key)}
