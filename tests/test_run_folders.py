"""Nothing lost (issue 16) and run folders fit to share (issue 17): sweep job folders named by
their config, a finished or busy run folder never overwritten, resume that applies only safe
overrides and records them, failures as one line, values checked against the data, the DDP
contract, file modes, checkpoint modes, learning-rate schedule and gradient clipping."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, compose_config
from omegaconf import OmegaConf

from clusterbench.config_check import check_config
from clusterbench.engine import ensemble, loop
from clusterbench.engine.build import lr_factor
from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.engine.ensemble import clip_grad_norm
from clusterbench.errors import ConfigError, RunFolderError
from clusterbench.train import exit_codes, run, summary_line

KMEANS = ["model=kmeans", "model.n_init=1", "trainer.progress=false", "hardware=cpu"]
QUICK = (*TINY, "trainer.max_epochs=1", "trainer.batch_size=1000", "trainer.save_embedding=false")


def _single_run(cfg, run_dir, meta):
    """A single run as the command line's main makes it: run() under its exit codes."""
    with exit_codes(cfg, run_dir):
        return run(cfg, run_dir, meta)


def _train(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "clusterbench.train", *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env
    )


def _results(folder):
    return json.loads((folder / "results.json").read_text())


def _save_hydra(cfg, folder, overrides):
    """What Hydra writes into a run folder (for in-process runs that resume it)."""
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), folder / ".hydra" / "overrides.yaml")


# --- defect 1: sweep job folders identify their config -------------------------------------------


def test_rerun_of_a_sweep_with_another_value_list_skips_and_adds_never_overwrites(tmp_path):
    sweep = tmp_path / "sweep"
    first = _train("-m", *KMEANS, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    before = {p.name: (p / "results.json").stat().st_mtime_ns for p in sweep.iterdir() if p.is_dir()}
    assert len(before) == 2 and all("seed=" in name for name in before)
    # what a finished run keeps on disk is not part of its identity: seed 1 is still skipped
    second = _train("-m", *KMEANS, "seed=1,2", "trainer.checkpoint_when_done=weights", f"hydra.sweep.dir={sweep}")
    assert second.returncode == 0, second.stderr
    after = {p.name: _results(p) for p in sweep.iterdir() if p.is_dir()}
    assert len(after) == 3 and sorted(r["seed"] for r in after.values()) == [0, 1, 2]
    for name, mtime in before.items():  # seed 0 untouched, seed 1 skipped
        assert (sweep / name / "results.json").stat().st_mtime_ns == mtime
    assert second.stdout.count("skipped:") == 1
    assert json.loads((sweep / "sweep_summary.json").read_text())["counts"] == {"finished": 3}


# --- defect 2: one run per folder ----------------------------------------------------------------


def test_a_finished_run_folder_is_refused_unless_overwrite_and_then_nothing_stale_survives(tiny_config, tmp_path):
    run(tiny_config(*KMEANS), tmp_path)
    first = (tmp_path / "results.json").read_bytes()
    with pytest.raises(RunFolderError, match="holds a finished run") as info:
        run(tiny_config(*KMEANS, "seed=1"), tmp_path)
    assert "\n" not in str(info.value) and (tmp_path / "results.json").read_bytes() == first
    (tmp_path / "checkpoints" / "previous.pt").write_bytes(b"stale")
    results = run(tiny_config(*KMEANS, "seed=1", "overwrite=true", "trainer.save_embedding=false"), tmp_path)
    assert results["seed"] == 1 and not (tmp_path / "embedding.npz").exists()
    assert not (tmp_path / "checkpoints" / "previous.pt").exists()


def test_a_killed_run_folder_is_refused_for_a_fresh_run(tiny_config, tmp_path):
    run(tiny_config(*QUICK), tmp_path)
    (tmp_path / "results.json").unlink()
    with pytest.raises(RunFolderError, match=f"continue it with resume={tmp_path}"):
        run(tiny_config(*QUICK), tmp_path)


def test_a_folder_in_use_is_refused_and_a_killed_holder_leaves_no_stuck_lock(tiny_config, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from clusterbench.engine.sweep import lock_run_folder as l; "
            f"l({str(tmp_path)!r}); print('locked', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match="in use by another run"):
            run(tiny_config(*KMEANS), tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert run(tiny_config(*KMEANS), tmp_path)["status"] == "finished"


def test_a_finished_run_leaves_no_lock_file_behind(tiny_config, tmp_path):
    """Issue 30.6: the .lock is removed when the run releases its folder (an empty .lock stayed
    in every finished folder); while a run holds the folder, the file is there to be probed."""
    from clusterbench.engine.sweep import LOCK, folder_in_use, lock_run_folder, unlock_run_folder

    assert run(tiny_config(*KMEANS), tmp_path)["status"] == "finished"
    assert not (tmp_path / LOCK).exists()
    lock_run_folder(tmp_path)
    try:
        assert (tmp_path / LOCK).exists()
    finally:
        unlock_run_folder(tmp_path)
    assert not (tmp_path / LOCK).exists() and not folder_in_use(tmp_path)


def test_a_lock_file_removed_between_open_and_lock_is_not_trusted(tmp_path, monkeypatch):
    """The race a removed lock file opens: this process opens .lock, the holder releases the
    folder (removing the file), this process locks the orphaned file. lock_run_folder sees that
    the file it locked is no longer the folder's and locks the folder's new one."""
    from clusterbench.engine import sweep

    real_open, opened = os.open, []

    def open_then_the_holder_releases(path, *args):
        fd = real_open(path, *args)
        if not opened:
            os.unlink(path)  # the holder's unlock_run_folder, just after this open
        opened.append(path)
        return fd

    monkeypatch.setattr(sweep.os, "open", open_then_the_holder_releases)
    sweep.lock_run_folder(tmp_path)
    monkeypatch.undo()
    try:
        assert len(opened) == 2 and (tmp_path / sweep.LOCK).exists()
        held = sweep._locks[str(tmp_path.resolve())]
        assert os.fstat(held).st_ino == os.stat(tmp_path / sweep.LOCK).st_ino
    finally:
        sweep.unlock_run_folder(tmp_path)


def test_cli_second_run_into_a_finished_folder_is_one_line_and_changes_nothing(tmp_path):
    folder = tmp_path / "run"
    assert _train(*KMEANS, f"hydra.run.dir={folder}").returncode == 0
    config = (folder / ".hydra" / "config.yaml").read_text()
    again = _train(*KMEANS, "seed=3", f"hydra.run.dir={folder}")
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "holds a finished run" in again.stderr and "overwrite=true" in again.stderr
    assert (folder / ".hydra" / "config.yaml").read_text() == config and _results(folder)["seed"] == 0


# --- defect 3: resume tells the truth --------------------------------------------------------------


def test_resume_refuses_a_changed_setting_applies_more_epochs_and_records_them(tiny_config, tmp_path):
    cfg = tiny_config(*QUICK)
    first = run(cfg, tmp_path, {"model": "sdcib", "overrides": list(QUICK)})
    _save_hydra(cfg, tmp_path, QUICK)
    resume = tiny_config(f"resume={tmp_path}")
    with pytest.raises(ConfigError, match=r"model.alpha=0.5 cannot change on resume") as info:
        run(resume, tmp_path / "x", {"overrides": [f"resume={tmp_path}", "model.alpha=0.5"]})
    assert "\n" not in str(info.value) and _results(tmp_path) == first
    # a finished run resumed as it is: nothing trained, nothing rewritten
    mtime = (tmp_path / "results.json").stat().st_mtime_ns
    assert run(resume, tmp_path / "x", {"overrides": [f"resume={tmp_path}"]}) == first
    assert (tmp_path / "results.json").stat().st_mtime_ns == mtime
    more = run(resume, tmp_path / "x", {"overrides": [f"resume={tmp_path}", "trainer.max_epochs=2"]})
    assert more["epochs"] == 2 and more["selection"]["epoch"] == 2
    assert "trainer.max_epochs=2" in more["overrides"] and "trainer.max_epochs=1" not in more["overrides"]
    assert more["resume_overrides"] == ["trainer.max_epochs=2"]
    assert OmegaConf.load(tmp_path / ".hydra" / "config.yaml").trainer.max_epochs == 2
    assert not (tmp_path / "x").exists()


def test_cli_resume_makes_no_stray_folder_and_points_at_the_resumed_one(tmp_path):
    assert _train(*KMEANS, f"paths.log_dir={tmp_path}").returncode == 0
    (folder,) = (tmp_path / "runs").iterdir()
    again = _train(f"resume={folder}", f"paths.log_dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "runs").iterdir()) == [folder]
    assert again.stdout.strip().splitlines()[-1].endswith(f"-> {folder}")
    assert _results(folder)["overrides"] == [*KMEANS, f"paths.log_dir={tmp_path}"]  # the run's own, unchanged


# --- defect 4: one failing member of a vectorised sweep -------------------------------------------


def test_vectorised_sweep_with_a_failing_member_records_it_and_summarises(tmp_path):
    sweep = tmp_path / "sweep"
    result = _train(
        "-m",
        "+launcher=vectorized",
        "backbone.hidden_dims=[8]",
        "model.critic_hidden_dims=[4]",
        "trainer.max_epochs=1",
        "trainer.progress=false",
        "hardware=cpu",
        "trainer.batch_size=1000",
        "trainer.save_embedding=false",
        "model.alpha=0.1,abc",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 1, result.stderr  # the summary's status: one job failed
    assert "Traceback" not in result.stderr
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"finished": 1, "failed": 1}
    failed = next(j for j in summary["jobs"] if j["status"] == "failed")
    assert "model.alpha='abc'" in failed["error"] and "model.alpha=abc" in failed["overrides"]
    assert "failed:" in result.stdout and "[model.alpha=abc]" in result.stdout


# --- defect 5 and issue 17: the default folder is checked; train.log; no folder after a config error


def test_cli_default_folder_is_checked_without_warnings_and_train_log_holds_the_console(tmp_path):
    result = _train(*KMEANS, f"paths.log_dir={tmp_path}")
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    log = (folder / "train.log").read_text()
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("run: kmeans on handwritten") and str(folder) in lines[0]
    assert all(line in log for line in lines)
    assert "epoch" not in lines[-1]  # k-means: no "last epoch 0"
    assert "train:" not in result.stderr  # and no training bar


def test_cli_unwritable_log_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = _train(*KMEANS, f"paths.log_dir={blocker}/out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is not writable" in result.stderr


def test_cli_config_error_leaves_no_folder_behind(tmp_path):
    result = _train(*KMEANS, "trainer.batch_size=0", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip() == "error: trainer.batch_size=0: expected a positive integer"
    assert not list((tmp_path / "runs").iterdir())


# --- defect 6: values checked before data load, or at it -------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.optimizer.lr=-1", "trainer.optimizer.lr=-1: expected a positive finite number"),
        ("trainer.optimizer.lr=nan", "trainer.optimizer.lr=nan: expected a positive finite number"),
        ("trainer.optimizer.lr=abc", "trainer.optimizer.lr='abc'"),
        ("hardware.num_threads=-1", "hardware.num_threads=-1: expected null (all cores) or a positive integer"),
        ("+trainer.foo=3", "trainer.foo=3: unknown key"),
        ("+trainer.max_epoch=1", "did you mean trainer.max_epochs?"),
        ("trainer.checkpoint=some", "trainer.checkpoint='some': expected one of full, weights, none"),
        ("trainer.scheduler.name=step", "trainer.scheduler.name='step': expected one of none, cosine"),
        ("trainer.grad_clip=-1", "trainer.grad_clip=-1: expected null"),
    ],
)
def test_bad_values_are_one_line_before_anything_is_built(tiny_config, override, message):
    with pytest.raises(ConfigError) as info:
        check_config(tiny_config(override))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("model=kmeans", "dataset.n_clusters=5000"), "dataset.n_clusters=5000: more clusters than samples (2000"),
        (("model=kmeans", "dataset.n_clusters=1"), "dataset.n_clusters=1: clustering needs at least 2 clusters"),
        (("trainer.batch_size=1",), "trainer.batch_size=1: a training batch needs at least 2 samples"),
        (("trainer.batch_size=1999", "trainer.drop_last=false"), "leaves a last batch of 1 sample (2000 samples)"),
    ],
)
def test_values_that_need_the_data_are_one_line_before_training(tiny_config, tmp_path, monkeypatch, overrides, message):
    monkeypatch.setattr(loop.FitRun, "train_epoch", lambda *a: pytest.fail("trained"))
    with pytest.raises(ConfigError) as info:
        run(tiny_config(*overrides), tmp_path / "run")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_one_class_labels_are_warned(tiny_config, tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "one.npz"
    np.savez(path, n_views=2, labels=np.zeros(60, dtype=np.int64), view_0=rng.normal(size=(60, 4)), view_1=rng.normal(size=(60, 3)))
    cfg = tiny_config(*KMEANS, "dataset=bdgp", f"dataset.path={path}", "dataset.n_clusters=3")
    try:
        run(cfg, tmp_path / "run")
    except ConfigError as err:  # a loader that refuses a one-class file is as good
        assert "class" in str(err)
        return
    assert "labels hold one class" in capsys.readouterr().err


# --- defect 7: Ctrl-C and a full disk are one line ----------------------------------------------------


@pytest.mark.parametrize("interval, resumable", [(0, True), (3600, False)])
def test_interrupt_is_one_line_that_tells_whether_the_run_can_continue(tiny_config, tmp_path, monkeypatch, capsys, interval, resumable):
    """Ctrl-C in epoch 2: with the epoch-1 checkpoint written (interval 0) the line gives the
    resume command; when trainer.checkpoint_interval_s held it back, it says there is none."""
    train_epoch = loop.FitRun.train_epoch

    def interrupted(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return train_epoch(self, epoch)

    monkeypatch.setattr(loop.FitRun, "train_epoch", interrupted)
    overrides = (*QUICK, "trainer.max_epochs=3", "trainer.checkpoint_every=1", f"trainer.checkpoint_interval_s={interval}")
    with pytest.raises(SystemExit) as info:
        _single_run(tiny_config(*overrides), tmp_path, {})
    assert info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (f"python -m clusterbench.train resume={tmp_path}" in err[0]) is resumable
    assert ("nothing to continue from" in err[0]) is not resumable
    assert (tmp_path / "checkpoints" / "last.pt").exists() is resumable


def test_disk_full_is_one_line(tiny_config, tmp_path, monkeypatch, capsys):
    def full(path, state, keep_previous=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ensemble, "save_checkpoint", full)  # the members write the checkpoints
    with pytest.raises(SystemExit) as info:
        _single_run(tiny_config(*QUICK), tmp_path, {})
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device writing" in err[0]


# --- defect 8: the DDP contract ------------------------------------------------------------------------


# HTCN and DCSM gather the global batch since issue 33 (tests/test_ddp_methods.py)
@pytest.mark.parametrize("model, refused", [("mflvc", True), ("htcn", False), ("dcsm", False), ("cc", False), ("sdcib", False)])
def test_ddp_refuses_methods_whose_losses_are_per_process(model, refused):
    image = model in ("cc", "htcn", "dcsm")
    cfg = compose_config(
        [f"model={model}", "hardware=ddp"] + (["dataset=digits", f"augment={'cc' if model == 'cc' else model}"] if image else [])
    )
    if refused:
        with pytest.raises(ConfigError, match="each process's share of the batch"):
            check_config(cfg)
    else:
        check_config(cfg)


# --- issue 17: shareable run folders --------------------------------------------------------------------


def test_files_honour_the_umask(tiny_config, tmp_path):
    old = os.umask(0o022)
    try:
        run(tiny_config(*QUICK), tmp_path)
    finally:
        os.umask(old)
    for name in ("results.json", "metrics.csv", "predictions.npz", "checkpoints/last.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_checkpoint_modes(tiny_config, tmp_path):
    run(tiny_config(*QUICK, "trainer.checkpoint=weights"), tmp_path / "w")
    state = load_checkpoint(tmp_path / "w" / "checkpoints" / "last.pt")
    assert state["kind"] == "weights" and "optimizers" not in state and state["method"]
    assert not (tmp_path / "w" / "checkpoints" / "previous.pt").exists()
    run(tiny_config(*QUICK, "trainer.checkpoint=none"), tmp_path / "n")
    assert not (tmp_path / "n" / "checkpoints").exists() and (tmp_path / "n" / "results.json").exists()
    _save_hydra(tiny_config(*QUICK, "trainer.checkpoint=weights"), tmp_path / "w", [])
    (tmp_path / "w" / "results.json").unlink()
    with pytest.raises(ConfigError, match="resume needs trainer.checkpoint=full"):
        run(tiny_config(f"resume={tmp_path / 'w'}"), tmp_path / "w")


def test_a_finished_run_keeps_the_checkpoint_it_was_asked_to(tiny_config, tmp_path):
    """trainer.checkpoint_when_done: weights shrinks last.pt to the method's state (the same
    tensors), none deletes it; previous.pt goes in both; the config hash and so a sweep's skip
    of the finished job do not depend on the setting; a bad value is one line naming the key."""
    from clusterbench.engine.build import load_trained
    from clusterbench.engine.provenance import config_hash

    full = run(tiny_config(*QUICK, "trainer.checkpoint_when_done=full"), tmp_path / "full")
    kept = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    assert kept["kind"] == "full" and "optimizers" in kept
    slim = run(tiny_config(*QUICK, "trainer.checkpoint_when_done=weights"), tmp_path / "w")
    state = load_checkpoint(tmp_path / "w" / "checkpoints" / "last.pt")
    assert state["kind"] == "weights" and set(state) == {"epoch", "kind", "method", "config", "config_sha256"}
    assert all(torch.equal(state["method"][k], kept["method"][k]) for k in kept["method"])
    assert not (tmp_path / "w" / "checkpoints" / "previous.pt").exists()
    assert slim["metrics"] == full["metrics"] and slim["config_sha256"] == full["config_sha256"]
    assert load_trained(tmp_path / "w").cfg.trainer.checkpoint_when_done == "weights"
    run(tiny_config(*QUICK, "trainer.checkpoint_when_done=none"), tmp_path / "n")
    assert not any((tmp_path / "n" / "checkpoints").iterdir()) and (tmp_path / "n" / "results.json").exists()
    plain = OmegaConf.to_container(tiny_config(*QUICK), resolve=True)
    plain["trainer"].pop("checkpoint_when_done")  # a run made before the key existed
    assert config_hash(plain) == config_hash(tiny_config(*QUICK, "trainer.checkpoint_when_done=none"))
    with pytest.raises(ConfigError, match="trainer.checkpoint_when_done='some'"):
        check_config(tiny_config(*QUICK, "trainer.checkpoint_when_done=some"))


def test_summary_line_flags_label_selected_choices():
    results = {
        "model": "km",
        "dataset": {"name": "handwritten"},
        "seed": 0,
        "epochs": 0,
        "metrics": {"acc": 0.5, "nmi": 0.5, "ari": 0.5},
        "selection": {"rule": "last", "epoch": 0, "uses_labels": True, "candidate": {"chosen": "view_1", "uses_labels": True}},
    }
    line = summary_line(results, {}, "folder")
    assert "[label-selected: view_1 chosen by best ACC]" in line and "epoch" not in line.split("):")[0]


# --- issue 14: learning-rate schedule and gradient clipping -------------------------------------------


def test_cosine_schedule_with_linear_warmup_values():
    assert [lr_factor(s, 4, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 12) == 1.0
    assert lr_factor(8, 4, 12) == pytest.approx(0.5)
    assert lr_factor(12, 4, 12) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(12, 4, 12, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0, 0, 10) == 1.0


def test_schedule_is_applied_per_step_and_resumed_exactly(tiny_config, tmp_path):
    sched = (
        "trainer.max_epochs=3",
        "trainer.batch_size=500",
        "trainer.save_embedding=false",
        "trainer.checkpoint_every=1",
        "trainer.checkpoint_interval_s=0",
        "trainer.checkpoint_when_done=full",
        "trainer.scheduler.name=cosine",
        "trainer.scheduler.warmup_epochs=1",
        "trainer.scheduler.min_lr_ratio=0.1",
        "trainer.grad_clip=1.0",
    )
    full = run(tiny_config(*sched), tmp_path / "full")
    state = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    steps = 3 * 4  # 2000 samples / 500
    assert state["step"] == steps and state["schedulers"]["main"]["last_epoch"] == steps
    group = state["optimizers"]["main"]["param_groups"][0]
    assert group["lr"] == pytest.approx(group["initial_lr"] * lr_factor(steps, 4, steps, 0.1))
    # killed after epoch 2: resumed from the epoch-2 checkpoint, the schedule continues exactly
    folder = tmp_path / "killed"
    run(tiny_config(*sched), folder)
    (folder / "results.json").unlink()
    (folder / "checkpoints" / "previous.pt").replace(folder / "checkpoints" / "last.pt")
    _save_hydra(tiny_config(*sched), folder, sched)
    resumed = run(tiny_config(f"resume={folder}"), folder)
    assert resumed["metrics"] == full["metrics"]
    a, b = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt"), load_checkpoint(folder / "checkpoints" / "last.pt")
    assert all(torch.equal(a["method"][k], b["method"][k]) for k in a["method"])


def test_grad_clip_changes_the_step_and_clips_members_apart():
    a = torch.nn.Parameter(torch.zeros(4, 3))
    a.grad = torch.cat([torch.full((2, 3), 3.0), torch.full((2, 3), 0.01)])  # member 0 big, member 1 small
    clip_grad_norm([a], 1.0, members=2)
    assert a.grad[:2].norm().item() == pytest.approx(1.0, rel=1e-4)
    assert torch.equal(a.grad[2:], torch.full((2, 3), 0.01))  # under the bound: untouched
    b = torch.nn.Parameter(torch.zeros(2, 3))
    b.grad = torch.full((2, 3), 3.0)
    clip_grad_norm([b], 1.0)
    assert b.grad.norm().item() == pytest.approx(1.0, rel=1e-4)


def test_grad_clip_reaches_the_optimiser(tiny_config, tmp_path):
    plain = run(tiny_config(*QUICK), tmp_path / "a")
    clipped = run(tiny_config(*QUICK, "trainer.grad_clip=1e-6"), tmp_path / "b")
    wa = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["method"]
    wb = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["method"]
    assert plain["status"] == clipped["status"] == "finished"
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
