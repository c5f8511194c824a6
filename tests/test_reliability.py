"""Faults and messages of issue 31 (docs/reliability.md): a full disk while writing a checkpoint
(one line that never claims a checkpoint that is not there), a k-means folder without results
resumed, one bad member of a vectorised group, misleading messages (one-class labels, torch's
weights_only advice, a batch larger than the data), and folders a run does not own left as they
are (a sweep re-run's skipped jobs, the image cache's mode)."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import TINY, compose_config

import clusterbench.atomic as atomic
from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.train import exit_codes, run

QUICK = ("trainer.max_epochs=2", "trainer.batch_size=500", "trainer.save_embedding=false", "trainer.checkpoint_when_done=full")


def _single_run(cfg, run_dir, meta):
    """A single run as the command line's main makes it: run() under its exit codes."""
    with exit_codes(cfg, run_dir, meta):
        return run(cfg, run_dir, meta)


class _FullDisk:
    """Stands in for `os` and `tempfile` in clusterbench/atomic.py: files whose name contains
    `name` take `room` bytes and then fail with ENOSPC, as on a full disk (torch's zip writer
    then raises `RuntimeError: [enforce fail at inline_container.cc] unexpected pos`), after
    `allowed` such files have been written whole."""

    def __init__(self, name: str, allowed: int = 0, room: int = 100) -> None:
        self.name, self.allowed, self.room = name, allowed, room
        self.names: dict[int, str] = {}

    def __getattr__(self, attr):
        return getattr(os, attr)

    def mkstemp(self, **kwargs):
        import tempfile

        fd, path = tempfile.mkstemp(**kwargs)
        self.names[fd] = path
        return fd, path

    def fdopen(self, fd, mode):
        handle = os.fdopen(fd, mode)
        if self.name not in os.path.basename(self.names.get(fd, "")):
            return handle
        if self.allowed > 0:
            self.allowed -= 1
            return handle
        return _FullHandle(handle, self.room)


class _FullHandle:
    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def __getattr__(self, attr):
        return getattr(self.handle, attr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data) -> int:
        if self.handle.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)


def _fill_disk(monkeypatch, name: str, allowed: int = 0) -> _FullDisk:
    disk = _FullDisk(name, allowed)
    monkeypatch.setattr(atomic, "os", disk)
    monkeypatch.setattr(atomic, "tempfile", disk)
    return disk


def _one_line_exit(capsys, cfg, run_dir, code: int) -> str:
    with pytest.raises(SystemExit) as info:
        _single_run(cfg, run_dir, {})
    assert info.value.code == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_full_disk_before_any_checkpoint_is_one_line_claiming_none(tiny_config, tmp_path, capsys, monkeypatch):
    _fill_disk(monkeypatch, "last.pt")
    line = _one_line_exit(capsys, tiny_config(*QUICK), tmp_path / "run", 1)
    assert f"writing {tmp_path / 'run' / 'checkpoints' / 'last.pt'}" in line
    assert "No space left on device" in line and "no checkpoint had been written yet" in line and "kept" not in line
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))  # no half-written temporary file left


def test_full_disk_after_a_checkpoint_keeps_it_and_resume_on_a_full_disk_says_the_same(tmp_path, capsys, monkeypatch):
    from omegaconf import OmegaConf

    cfg = compose_config([*TINY, *QUICK])
    folder = tmp_path / "run"
    disk = _fill_disk(monkeypatch, "last.pt", allowed=1)  # epoch 1's checkpoint fits, epoch 2's does not
    line = _one_line_exit(capsys, cfg, folder, 1)
    last = folder / "checkpoints" / "last.pt"
    assert f"the last checkpoint {last} is kept" in line and f"resume={folder}" in line
    assert load_checkpoint(last)["epoch"] == 1
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    resume = compose_config([*TINY, *QUICK, f"resume={folder}"])
    assert _one_line_exit(capsys, resume, tmp_path / "ignored", 1) == line  # the disk is still full
    disk.allowed = 1  # space freed
    results = _single_run(resume, tmp_path / "ignored", {})
    assert results["status"] == "finished" and load_checkpoint(last)["epoch"] == 2


def _killed_kmeans_run(tmp_path):
    """A k-means run folder as a kill after its checkpoint leaves it: no results.json."""
    from omegaconf import OmegaConf

    from clusterbench.train import run

    cfg = compose_config(["model=kmeans", "hardware=cpu"])
    folder = tmp_path / "km"
    full = run(cfg, folder)
    (folder / "results.json").unlink()
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    return cfg, folder, full


def test_resume_of_a_kmeans_run_without_results_refits_it(tmp_path, capsys):
    from clusterbench.train import run

    cfg, folder, full = _killed_kmeans_run(tmp_path)
    resumed = run(compose_config(["model=kmeans", "hardware=cpu", f"resume={folder}"]), tmp_path / "ignored")
    assert resumed["status"] == "finished" and resumed["metrics"]["acc"] == pytest.approx(full["metrics"]["acc"])
    assert "fitting it again" in capsys.readouterr().out


def test_sweep_rerun_over_a_kmeans_folder_without_results_finishes_it(tmp_path):
    from clusterbench.engine.jobs import sweep_job

    cfg, folder, full = _killed_kmeans_run(tmp_path)
    results = sweep_job(cfg, folder, {"model": "kmeans", "overrides": []})
    assert results["status"] == "finished" and results["metrics"]["acc"] == pytest.approx(full["metrics"]["acc"])
    assert (folder / "results.json").exists()


def test_one_bad_member_of_a_vectorised_group_fails_alone(tmp_path, capsys):
    """model.alpha=2.0 fails in its own folder with its own error; alpha=0.1 trains (as the
    sequential launcher does), and its results.json carries no other member's error."""
    import json

    from omegaconf import OmegaConf

    from clusterbench.train import train_group

    jobs = []
    for alpha in ("0.1", "2.0"):
        cfg = compose_config([*TINY, *QUICK, f"model.alpha={alpha}"])
        OmegaConf.resolve(cfg)
        jobs.append(
            {"cfg": cfg, "run_dir": tmp_path / alpha, "meta": {"model": "sdcib", "overrides": [f"model.alpha={alpha}"], "sweep_job": True}}
        )
    good, bad = train_group(jobs)
    assert isinstance(good, dict) and good["status"] == "finished"
    assert isinstance(bad, Exception) and str(bad) == "model.alpha=2.0: expected a value in [0, 1]"
    assert json.loads((tmp_path / "0.1" / "results.json").read_text())["status"] == "finished"
    failed = json.loads((tmp_path / "2.0" / "results.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "model.alpha=2.0: expected a value in [0, 1]"
    err = capsys.readouterr().err
    assert f"error: {tmp_path / '2.0'} [model.alpha=2.0]: model.alpha=2.0: expected a value in [0, 1]" in err
    assert str(tmp_path / "0.1") + " " not in err


# --- 31.6: messages that mislead ---------------------------------------------------------------


def test_one_class_labels_are_named_not_a_cluster_count_the_user_never_set(tmp_path):
    import numpy as np

    from clusterbench.errors import ConfigError
    from clusterbench.train import run

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 3)).astype("float32"))
    np.save(tmp_path / "y.npy", np.full(40, 7))
    cfg = compose_config(
        ["model=kmeans", "hardware=cpu", "dataset=features", f"dataset.path={tmp_path / 'x.npy'}", f"dataset.labels={tmp_path / 'y.npy'}"]
    )
    with pytest.raises(ConfigError) as info:
        run(cfg, tmp_path / "run")
    message = str(info.value)
    assert f"its labels ({tmp_path / 'y.npy'}) hold one class" in message and "n_clusters=1" not in message and "\n" not in message


def test_a_checkpoint_holding_python_objects_is_refused_without_torchs_weights_only_advice(tmp_path):
    import argparse

    import torch

    from clusterbench.engine.checkpoint import CheckpointError, read_checkpoint

    torch.save({"epoch": 1, "method": {}, "payload": argparse.Namespace(a=1)}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path / "last.pt")
    message = str(info.value)
    assert "argparse.Namespace" in message and "could run code" in message
    assert "weights_only" not in message and "\x1b" not in message and "\n" not in message


def test_a_batch_larger_than_the_data_is_said_in_one_line(tmp_path, capsys):
    from clusterbench.train import run

    cfg = compose_config([*TINY, "trainer.max_epochs=1", "trainer.batch_size=5000", "trainer.save_embedding=false"])
    results = run(cfg, tmp_path / "run", {"overrides": ["trainer.batch_size=5000"]})
    assert results["status"] == "finished"
    out, err = capsys.readouterr()
    assert "epochs of batch 2000 (all samples)" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: trainer.batch_size=5000 is larger than dataset 'handwritten' (2000 samples): every epoch is one batch of all "
        "2000 samples (few optimiser steps); a smaller trainer.batch_size gives more steps"
    ]


# --- 31.7: nothing rewritten that a run does not own ---------------------------------------------


def test_the_image_cache_respects_the_umask(tmp_path):
    import numpy as np
    from PIL import Image

    from clusterbench.data.images import load_image_folder

    for i in range(4):
        Image.fromarray(np.full((6, 5, 3), 20 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    old = os.umask(0o077)
    try:
        load_image_folder("mine", str(tmp_path), image_size=4, n_clusters=2, cache_dir=str(tmp_path / "cache"))
    finally:
        os.umask(old)
    (cached,) = (tmp_path / "cache" / "image_folders").glob("*.npy")
    assert cached.stat().st_mode & 0o777 == 0o600
    assert not list((tmp_path / "cache" / "image_folders").glob("*.tmp"))


@pytest.mark.slow  # two multiruns in subprocesses: about 15 s on 2 busy cores
def test_a_sweep_rerun_leaves_the_folders_of_skipped_jobs_untouched(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    command = [
        sys.executable,
        "-m",
        "clusterbench.train",
        "-m",
        "model=kmeans",
        "model.n_init=1",
        "hardware=cpu",
        "hardware.num_threads=1",
        "seed=0",
        f"hydra.sweep.dir={tmp_path}",
    ]
    first = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert first.returncode == 0, first.stderr
    (job,) = [p for p in tmp_path.iterdir() if (p / ".hydra").is_dir()]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(job.rglob("*")) if p.is_file()}
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and f"skipped: {job}: finished with this config" in again.stdout, again.stderr
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(job.rglob("*")) if p.is_file()}
    assert after == before  # .hydra/hydra.yaml (job id and number), train.log, results.json: as they were


def test_a_bug_in_a_single_run_leaves_its_traceback_and_a_failed_results_json(tmp_path, monkeypatch):
    """A run stopped by an unexpected error keeps the traceback on screen (to be reported), and
    its folder says what happened: error.txt with the traceback, results.json with status failed;
    the checkpoint it had written still resumes."""
    from clusterbench.engine.loop import FitRun
    from clusterbench.engine.sweep import read_results

    cfg = compose_config([*TINY, *QUICK])
    folder = tmp_path / "run"
    train_epoch = FitRun.train_epoch

    def breaks_in_epoch_2(self, epoch):
        if epoch == 2:
            raise RuntimeError("an index out of range\nsecond line")
        return train_epoch(self, epoch)

    monkeypatch.setattr(FitRun, "train_epoch", breaks_in_epoch_2)
    with pytest.raises(RuntimeError, match="an index out of range"):
        _single_run(cfg, folder, {"model": "sdcib", "overrides": list(QUICK)})
    results = read_results(folder)
    assert results["status"] == "failed" and results["error"] == "RuntimeError: an index out of range"
    assert results["model"] == "sdcib" and results["seed"] == int(cfg.seed)
    assert "breaks_in_epoch_2" in (folder / "error.txt").read_text()
    monkeypatch.setattr(FitRun, "train_epoch", train_epoch)
    (folder / ".hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    resumed = _single_run(compose_config([*TINY, *QUICK, f"resume={folder}"]), tmp_path / "ignored", {})
    assert resumed["status"] == "finished" and read_results(folder)["status"] == "finished"


def test_a_bug_before_the_folder_is_claimed_writes_nothing_into_another_runs_folder(tmp_path, monkeypatch):
    """hydra.run.dir pointed at a folder whose checkpoint waits to be resumed: a bug that stops
    this run before it claims the folder leaves that folder as it was (no results.json saying
    failed, no error.txt); in a folder with nothing of a run, the failure is recorded."""
    from clusterbench.engine.loop import FitRun
    from clusterbench.engine.sweep import read_results

    def breaks_before_claiming(self):
        raise RuntimeError("a bug in setup")

    monkeypatch.setattr(FitRun, "claim_folders", breaks_before_claiming)
    cfg = compose_config([*TINY, *QUICK])
    taken = tmp_path / "taken"
    (taken / "checkpoints").mkdir(parents=True)
    (taken / "checkpoints" / "last.pt").write_bytes(b"another run's weights")
    with pytest.raises(RuntimeError, match="a bug in setup"):
        _single_run(cfg, taken, {})
    assert sorted(p.name for p in taken.iterdir()) == ["checkpoints"]
    assert (taken / "checkpoints" / "last.pt").read_bytes() == b"another run's weights"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="a bug in setup"):
        _single_run(cfg, empty, {})
    assert read_results(empty)["status"] == "failed" and (empty / "error.txt").exists()


def test_a_bug_in_a_resumed_finished_run_keeps_its_finished_results(tmp_path, monkeypatch):
    """error.txt records the crash, but a finished results.json is not replaced: that run did finish."""
    from clusterbench.engine.jobs import record_crash

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text('{"status": "finished", "metrics": {"acc": 0.5}}')
    try:
        raise ValueError("late")
    except ValueError as err:
        assert record_crash(compose_config([*TINY]), folder, {}, err) == "ValueError: late"
    assert '"finished"' in (folder / "results.json").read_text()
    assert "ValueError: late" in (folder / "error.txt").read_text()
