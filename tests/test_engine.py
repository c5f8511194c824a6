"""The one training loop: end-to-end runs, run-folder contents, determinism, bit-exact resume,
NaN stops, k-means through the same runner."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.errors import ConfigError, TrainingError
from clusterbench.train import run

FINAL_KEYS = {"status", "metrics", "selection", "seed", "dataset", "versions", "git", "wall_time_s", "hardware"}


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_two_epoch_sdcib_run_writes_a_complete_run_folder(tiny_config, tmp_path):
    results = run(tiny_config(), tmp_path)
    assert FINAL_KEYS <= set(results)
    assert results == _results(tmp_path)
    assert results["status"] == "finished"
    assert results["selection"] == {"rule": "last", "epoch": 2, "uses_labels": False}
    assert results["dataset"]["name"] == "handwritten" and results["dataset"]["n_samples"] == 2000
    assert len(results["dataset"]["checksum_sha256"]) == 64
    assert results["versions"]["torch"] == torch.__version__
    m = results["metrics"]
    assert 0.0 <= m["acc"] <= 1.0 and 0.0 <= m["nmi"] <= 1.0 and -1.0 <= m["ari"] <= 1.0
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for key in (
        "loss",
        "compression",
        "relevance",
        "instance",
        "cluster",
        "acc",
        "nmi",
        "ari",
        "nonempty_clusters",
        "largest_cluster_share",
        "assignment_entropy",
    ):
        assert rows[-1][key] != ""
    assert float(rows[-1]["acc"]) == m["acc"]
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["epoch"] == 2
    preds = np.load(tmp_path / "predictions.npz")
    assert preds["y_pred"].shape == (2000,)


def test_load_trained_rebuilds_the_run_that_wrote_the_predictions(tmp_path):
    """engine.build.load_trained: the method rebuilt from checkpoints/last.pt predicts what the
    run saved in predictions.npz; a folder without a checkpoint is a one-line error naming it."""
    from conftest import compose_config

    from clusterbench.engine.build import load_trained
    from clusterbench.engine.checkpoint import CheckpointError
    from clusterbench.engine.hardware import Hardware
    from clusterbench.engine.loop import predict_outputs

    cfg = compose_config(["model=cc", "dataset=digits", "trainer.max_epochs=1", "trainer.progress=false", "hardware=cpu"])
    run(cfg, tmp_path / "run")
    trained = load_trained(tmp_path / "run")
    assert trained.cfg.model._target_.endswith("ContrastiveClustering") and not trained.method.training
    head = predict_outputs(trained.method, trained.inputs, 512, Hardware(device="cpu"))
    saved = np.load(tmp_path / "run" / "predictions.npz")["y_pred"]
    assert head.shape == (1797, 10) and np.array_equal(head.argmax(1).numpy(), saved)
    with pytest.raises(CheckpointError, match="empty/checkpoints/last.pt does not exist"):
        load_trained(tmp_path / "empty")
    (tmp_path / "broken" / "checkpoints").mkdir(parents=True)
    (tmp_path / "broken" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken/checkpoints/last.pt is unreadable"):
        load_trained(tmp_path / "broken")


def test_same_seed_same_metrics_and_different_seed_differs(tiny_config, tmp_path):
    a = run(tiny_config("seed=3"), tmp_path / "a")["metrics"]
    b = run(tiny_config("seed=3"), tmp_path / "b")["metrics"]
    c = run(tiny_config("seed=4"), tmp_path / "c")["metrics"]
    assert a == b
    assert a != c


def test_deterministic_runs_skip_torchs_memory_fill_and_predict_the_same(tiny_config, tmp_path, monkeypatch):
    """hardware=cpu (deterministic) turns off torch's NaN fill of every new tensor
    (engine/hardware.py keep_uninitialized_memory): a small DCSM run (convolutions, batch norm,
    pooling, clones) predicts the same bit for bit with the fill forced on."""
    from clusterbench.engine import hardware

    tiny_dcsm = ["model=dcsm", "dataset=digits", "backbone.widths=[8,16]", "backbone.out_dim=32", "model.discriminator_hidden_dim=16"]
    cfg = tiny_config(*tiny_dcsm, "trainer.max_epochs=1")
    run(cfg, tmp_path / "without_fill")
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    monkeypatch.setattr(hardware, "keep_uninitialized_memory", lambda: None)
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    run(cfg, tmp_path / "with_fill")
    without, with_fill = (np.load(tmp_path / name / "predictions.npz") for name in ("without_fill", "with_fill"))
    assert without.files == with_fill.files
    for key in without.files:
        np.testing.assert_array_equal(without[key], with_fill[key])


def test_resume_is_bit_exact(tiny_config, tmp_path):
    """A run stopped after epoch 2 of 4 and resumed ends exactly like an uninterrupted run."""
    overrides = ("trainer.max_epochs=4", "trainer.keep_checkpoints=true", "trainer.batch_size=256")
    full = run(tiny_config(*overrides), tmp_path / "full")
    # the stopped run: what the folder held after epoch 2 (checkpoint of epoch 2, csv rows 1..3)
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "full", stopped)
    (stopped / "results.json").unlink()
    shutil.copy(stopped / "checkpoints" / "epoch_0002.pt", stopped / "checkpoints" / "last.pt")
    (stopped / ".hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(tiny_config(*overrides), stopped / ".hydra" / "config.yaml")
    resumed = run(tiny_config(f"resume={stopped}"), tmp_path / "ignored")
    assert resumed["metrics"] == full["metrics"]
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["method"]
    b = load_checkpoint(stopped / "checkpoints" / "last.pt")["method"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(stopped / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_resume_of_a_folder_without_checkpoint_fails_clearly(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        run(tiny_config(f"resume={tmp_path}"), tmp_path)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    from clusterbench.methods import sdcib

    original = sdcib.SDCIB.training_step

    def poisoned(self, views, index, ctx):
        terms = original(self, views, index, ctx)
        if ctx.epoch == 2:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(sdcib.SDCIB, "training_step", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 2 .*last good checkpoint") as info:
        run(tiny_config("trainer.max_epochs=3"), tmp_path)
    assert "\n" not in str(info.value)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
    assert _results(tmp_path)["status"] == "failed"


def test_min_loss_selection_is_recorded(tiny_config, tmp_path):
    results = run(tiny_config("trainer.max_epochs=3", "trainer.selection=min_loss"), tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    best = min(rows, key=lambda r: float(r["loss"]))
    assert results["selection"]["rule"] == "min_loss"
    assert results["selection"]["epoch"] == int(best["epoch"])
    assert results["metrics"]["acc"] == float(best["acc"])


@pytest.mark.parametrize("rule,column,pick", [("last_batch_loss", "last_batch_loss", min), ("best_acc", "acc", max)])
def test_other_selection_rules(tiny_config, tmp_path, rule, column, pick):
    results = run(tiny_config("trainer.max_epochs=3", f"trainer.selection={rule}"), tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    chosen = pick(rows, key=lambda r: float(r[column]))
    assert results["selection"] == {"rule": rule, "epoch": int(chosen["epoch"]), "uses_labels": rule == "best_acc"}
    assert results["metrics"]["acc"] == float(chosen["acc"])


def test_unknown_selection_rule_is_a_config_error(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="trainer.selection='best': expected one of last, min_loss"):
        run(tiny_config("trainer.selection=best"), tmp_path)


def test_kmeans_through_the_same_runner(tiny_config, tmp_path):
    results = run(tiny_config("model=kmeans", "model.n_init=2"), tmp_path)
    assert results["epochs"] == 0
    assert results["metrics"]["acc"] > 0.6  # k-means on handwritten is far above chance (0.1)
    single = run(tiny_config("model=kmeans", "model.n_init=2", "model.view=3"), tmp_path / "pix")
    assert single["metrics"]["acc"] != results["metrics"]["acc"]


def test_kmeans_rejects_a_view_that_does_not_exist(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"model.view=6: the dataset has 6 views"):
        run(tiny_config("model=kmeans", "model.view=6"), tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_hardware_without_gpu_is_a_clear_error(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="no CUDA device"):
        run(tiny_config("hardware=gpu"), tmp_path)


def test_bf16_autocast_runs_on_cpu(tiny_config, tmp_path):
    results = run(tiny_config("hardware.precision=bf16", "trainer.max_epochs=1"), tmp_path)
    assert results["hardware"]["precision"] == "bf16"
    assert np.isfinite(results["metrics"]["acc"])


def test_wandb_offline_needs_no_network(tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    results = run(tiny_config("logger=wandb", "trainer.max_epochs=1"), tmp_path)
    assert results["status"] == "finished"
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert (tmp_path / "metrics.csv").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.gpu
def test_gpu_bf16_run(tiny_config, tmp_path):
    results = run(tiny_config("hardware=gpu"), tmp_path)
    assert results["hardware"]["device"].startswith("cuda")


def test_wandb_disabled_runs_and_online_without_login_is_one_line(tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    results = run(tiny_config("logger=wandb", "logger.mode=disabled", "trainer.max_epochs=1"), tmp_path / "disabled")
    assert results["status"] == "finished"
    with pytest.raises(ConfigError, match=r"logger=wandb \(mode=online\) could not start") as info:
        run(tiny_config("logger=wandb", "logger.mode=online", "logger.init_timeout=15", "trainer.max_epochs=1"), tmp_path / "online")
    assert "\n" not in str(info.value)


def test_embedding_is_saved_with_the_kept_predictions_and_changes_nothing(tiny_config, tmp_path):
    """embedding.npz (report's t-SNE input) holds H_L of every modality, with the final
    clusters; writing it leaves training untouched, even for the released code's train-mode
    evaluation, which draws random numbers."""
    for variant in ("paper", "official"):
        saved = run(tiny_config(f"model.variant={variant}"), tmp_path / f"{variant}_saved")
        plain = run(tiny_config(f"model.variant={variant}", "trainer.save_embedding=false"), tmp_path / f"{variant}_plain")
        assert saved["metrics"] == plain["metrics"]
        assert not (tmp_path / f"{variant}_plain" / "embedding.npz").exists()
        embedding = np.load(tmp_path / f"{variant}_saved" / "embedding.npz")
        assert embedding["features"].shape == (2000, 2 * 16)  # the tiny config's 2 modalities x H_L width 16
        assert np.array_equal(embedding["y_pred"], np.load(tmp_path / f"{variant}_saved" / "predictions.npz")["y_pred"])  # rule: last
    kmeans_dir = tmp_path / "kmeans"
    run(tiny_config("model=kmeans", "model.n_init=1"), kmeans_dir)
    assert not (kmeans_dir / "embedding.npz").exists()


def test_repeats_per_batch_trains_each_batch_several_times_on_fresh_views(tiny_config, tmp_path, monkeypatch):
    """trainer.repeats_per_batch=R: R optimiser steps per batch, each on the same samples; the
    epoch's logged loss is the mean over all R x batches steps."""
    from clusterbench.engine import inputs as inputs_module

    seen = []
    original = inputs_module.FeatureInputs.train_batch

    def recording(self, index, generator):
        seen.append(index.clone())
        return original(self, index, generator)

    monkeypatch.setattr(inputs_module.FeatureInputs, "train_batch", recording)
    run(tiny_config("trainer.repeats_per_batch=3", "trainer.max_epochs=1", "trainer.batch_size=500"), tmp_path)
    # 2000 samples / 500 = 4 batches, 3 repetitions each
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 12
    assert len(seen) == 12
    for b in range(4):
        group = seen[3 * b : 3 * b + 3]
        assert all(torch.equal(group[0], other) for other in group[1:])
    assert not torch.equal(seen[0], seen[3])


def test_repeats_per_batch_must_be_positive(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="trainer.repeats_per_batch=0"):
        run(tiny_config("trainer.repeats_per_batch=0"), tmp_path)


def test_predict_all_gives_on_epoch_start_every_sample_in_eval_mode(tiny_config, tmp_path, monkeypatch):
    """ctx.predict_all(fn): fn on every sample's unaugmented view, in order, in eval mode; the
    method trains again afterwards (what a k-means over the whole set at each epoch needs)."""
    from clusterbench.methods.sdcib import SDCIB

    calls = []

    def on_epoch_start(self, epoch, ctx):
        modes = []

        def fn(views, index):
            modes.append(self.training)
            return index.float()[:, None]

        out = ctx.predict_all(fn)
        calls.append((epoch, out, modes, self.training))

    monkeypatch.setattr(SDCIB, "on_epoch_start", on_epoch_start)
    run(tiny_config("trainer.batch_size=500"), tmp_path)
    assert [c[0] for c in calls] == [1, 2]
    for _, out, modes, training_after in calls:
        assert torch.equal(out[:, 0], torch.arange(2000, dtype=torch.float32))
        assert modes and not any(modes) and training_after


def test_deterministic_mode_without_compile_does_not_load_the_compiler():
    """hardware=cpu's deterministic flag without torch.compile sets the kernels' flag only, and
    the backbones module leaves torchvision unloaded: a run of a method without an optimiser
    (k-means, the classic multi-view rows) starts 2-3 s sooner. With compile, torch's own call
    sets the compiler's flag too."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "import clusterbench.nn.backbones\n"
        "from clusterbench.engine.hardware import set_deterministic\n"
        "set_deterministic(True, compiling=False)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert 'torch._inductor.config' not in sys.modules and 'torchvision' not in sys.modules, 'compiler loaded'\n"
        "set_deterministic(False, compiling=False)\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "set_deterministic(True, compiling=True)\n"
        "import torch._inductor.config as config\n"
        "assert torch.are_deterministic_algorithms_enabled() and config.deterministic\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
