"""Fault behaviour: a run killed with SIGKILL resumes to the uninterrupted result, a damaged
checkpoint falls back to the previous one, an unwritable output folder is one line before
anything is loaded, and provenance (config hash, device name) is in every results.json.
(NaN stops and wandb offline are in test_engine.py.)"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY, compose_config
from omegaconf import OmegaConf

from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.engine.provenance import config_hash, cpu_name
from clusterbench.errors import ConfigError
from clusterbench.train import run

KILLED = ("trainer.max_epochs=4", "trainer.save_embedding=false")


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _same_weights(a, b) -> bool:
    a, b = load_checkpoint(a)["method"], load_checkpoint(b)["method"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_results_record_config_hash_and_device(tiny_config, tmp_path):
    quick = ("trainer.max_epochs=1", "trainer.batch_size=1000", "trainer.save_embedding=false")
    cfg = tiny_config(*quick)
    results = run(cfg, tmp_path)
    assert results["config_sha256"] == config_hash(cfg) and len(results["config_sha256"]) == 64
    assert results["hardware"]["device_name"] == cpu_name() and results["hardware"]["cpu"]
    assert results["git"].keys() == {"commit", "dirty"}
    assert results["dataset"]["checksum_sha256"] and results["versions"]["torch"] == torch.__version__
    # the hash sees every key, but not where a run is resumed from
    assert config_hash(tiny_config(*quick, "model.alpha=0.123")) != results["config_sha256"]
    assert config_hash(tiny_config(*quick, f"resume={tmp_path}")) == results["config_sha256"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config_sha256"] == results["config_sha256"]


@pytest.mark.slow  # about 30-60 s on 2 busy cores: a subprocess, then two in-process runs
def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(tiny_config, tmp_path):
    """The killed process is a real `python -m clusterbench.train` (its own folder, Hydra's
    .hydra/), killed with SIGKILL at a random moment after its first checkpoint."""
    full = run(tiny_config(*KILLED), tmp_path / "full")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterbench.train", *TINY, *KILLED, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 120
        while not (killed / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline
            time.sleep(0.01)
        delay = random.uniform(0.0, 0.3)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "results.json").exists(), f"the run had already finished {delay:.2f}s after its first checkpoint"
    stopped_at = load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"]
    resumed = run(tiny_config(f"resume={killed}"), tmp_path / "ignored")
    assert resumed["metrics"] == full["metrics"], f"killed {delay:.2f}s after the first checkpoint (epoch {stopped_at})"
    assert resumed["last_epoch_metrics"] == full["last_epoch_metrics"]
    assert _same_weights(tmp_path / "full" / "checkpoints" / "last.pt", killed / "checkpoints" / "last.pt")
    rows = (killed / "metrics.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4]


# checkpoint_when_done=full: the finished run keeps previous.pt, which the damage tests fall back to
DAMAGED = ("trainer.max_epochs=2", "trainer.batch_size=500", "trainer.save_embedding=false", "trainer.checkpoint_when_done=full")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One 2-epoch run (checkpoints/last.pt of epoch 2, previous.pt of epoch 1) that each
    test copies and damages."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    cfg = compose_config([*TINY, *DAMAGED])
    full = run(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    (folder / "results.json").unlink()
    return full, folder


def _finished_run_to_damage(finished_run, tmp_path):
    full, folder = finished_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    OmegaConf.save(OmegaConf.load(folder / ".hydra" / "config.yaml"), copy / ".hydra" / "config.yaml")
    return full, copy


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_damaged_checkpoint_falls_back_to_the_previous_one(finished_run, tiny_config, tmp_path, capsys, damage):
    full, folder = _finished_run_to_damage(finished_run, tmp_path)
    last, previous = folder / "checkpoints" / "last.pt", folder / "checkpoints" / "previous.pt"
    assert load_checkpoint(previous)["epoch"] == 1 and load_checkpoint(last)["epoch"] == 2
    final_weights = load_checkpoint(last)["method"]
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        data = bytearray(last.read_bytes())
        data[:64] = os.urandom(64)
        last.write_bytes(bytes(data))
    else:  # killed between the two renames of a checkpoint rotation
        last.unlink()
    resumed = run(tiny_config(f"resume={folder}"), tmp_path / "ignored")
    err = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in err if line.startswith("warning:")]
    assert len(warning) == 1 and str(last) in warning[0] and f"resuming from {previous} (epoch 1)" in warning[0]
    assert resumed["metrics"] == full["metrics"]  # epoch 2 trained again from epoch 1: the same
    again = load_checkpoint(last)["method"]
    assert all(torch.equal(again[k], final_weights[k]) for k in again)


def test_no_readable_checkpoint_is_one_line_naming_both(finished_run, tiny_config, tmp_path):
    _, folder = _finished_run_to_damage(finished_run, tmp_path)
    for name in ("last.pt", "previous.pt"):
        (folder / "checkpoints" / name).write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="no usable checkpoint") as info:
        run(tiny_config(f"resume={folder}"), tmp_path / "ignored")
    message = str(info.value)
    assert "\n" not in message and "last.pt is unreadable" in message and "previous.pt is unreadable" in message


def test_unwritable_output_folder_fails_before_data_are_loaded(tiny_config, tmp_path, monkeypatch):
    from clusterbench.engine import loop

    def no_data(*args, **kwargs):
        raise AssertionError("data were loaded")

    monkeypatch.setattr(loop, "build_inputs", no_data)
    monkeypatch.setattr(loop, "seed_everything", no_data)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"output folder .*a_file/run is not writable") as info:
        run(tiny_config(), blocker / "run")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_output_folder_fails_before_training(tiny_config, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            run(tiny_config(), folder / "run")
    finally:
        folder.chmod(0o700)


def test_cli_unwritable_run_folder_is_one_line_before_hydra_writes(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "clusterbench.train", *TINY, f"hydra.run.dir={blocker}/run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: hydra.run.dir={blocker}/run: output folder is not writable ({blocker} is not a folder)"]
    assert blocker.read_text() == ""


def test_cli_unwritable_sweep_folder_is_one_line_before_any_job(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "clusterbench.train", "-m", "model=kmeans", "seed=0,1", f"hydra.sweep.dir={blocker}/sweep"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: hydra.sweep.dir={blocker}/sweep: output folder is not writable ({blocker} is not a folder)"
    ]
    assert "Launching" not in result.stdout + result.stderr


def test_wandb_offline_with_an_unreachable_server_and_proxy_does_not_wait(tiny_config, tmp_path, monkeypatch):
    """Offline wandb never contacts its server: a dead server address and dead proxies change
    nothing (test_engine.py covers the default offline run and online without login)."""
    pytest.importorskip("wandb")
    for key, value in {
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_API_KEY": "x" * 40,
    }.items():
        monkeypatch.setenv(key, value)
    started = time.perf_counter()
    results = run(tiny_config("logger=wandb", "logger.init_timeout=90", "trainer.max_epochs=1", "trainer.save_embedding=false"), tmp_path)
    assert results["status"] == "finished"
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    # not a benchmark: a run that waited for the network would sit out init_timeout (90 s); this
    # one trains for a few seconds
    assert time.perf_counter() - started < 60
