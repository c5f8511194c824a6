"""Throughput in every run (engine/throughput.py): results.json's `throughput` block, the figure
on the run's last line, FLOPs counted without changing the step, the in-process matmul peak,
profile.json (trainer.profile=true, not in the config hash), a resumed run's own epochs, and
report's --throughput columns."""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from clusterbench.engine import throughput
from clusterbench.engine.provenance import config_hash
from clusterbench.engine.throughput import FlopCount, RunClock, epoch_samples, matmul_peak, throughput_text
from clusterbench.report.cli import main as report_main
from clusterbench.train import run, summary_line


def _results(folder):
    return json.loads((folder / "results.json").read_text())


def test_counted_flops_of_an_mlp_step_match_the_hand_count_and_change_nothing():
    def step(count: bool):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        optimizer = torch.optim.Adam(net.parameters(), fused=True)
        x = torch.randn(5, 8)
        counter = FlopCount()
        with counter if count else contextlib.nullcontext():
            net(x).square().sum().backward()
            optimizer.step()
        return counter.flops, [p.detach().clone() for p in net.parameters()]

    flops, counted = step(count=True)
    _, plain = step(count=False)
    # forward 2*5*(8*16 + 16*4); backward: both weight grads and the 2nd layer's input grad
    assert flops == 2 * 5 * (8 * 16 + 16 * 4) + 2 * 5 * (8 * 16 + 16 * 4) + 2 * 5 * 16 * 4
    assert all(torch.equal(a, b) for a, b in zip(counted, plain))


def test_counted_convolution_flops_agree_with_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    x = torch.zeros(4, 3, 6, 6)
    with FlopCounterMode(display=False) as reference:
        net(x).sum().backward()
    with FlopCount() as ours:
        net(x).sum().backward()
    assert ours.flops == reference.get_total_flops() > 0


def test_a_sparse_product_counts_its_stored_entries_not_the_dense_size():
    # ICMVC's graph propagation: A (6 x 6, 4 stored entries) @ X (6 x 3), forward and the
    # backward's A^T @ G; counted as dense it would be 2 * 6 * 6 * 3 each (ICMVC read >100% of peak)
    a = torch.sparse_coo_tensor(torch.tensor([[0, 1, 2, 5], [1, 0, 4, 5]]), torch.ones(4), (6, 6)).coalesce()
    x = torch.randn(6, 3, requires_grad=True)
    with FlopCount() as counter:
        torch.sparse.mm(a, x).sum().backward()
    assert counter.failed is None
    assert counter.flops == 2 * (2 * 4 * 3)


def test_the_peak_probe_is_cached_and_draws_no_random_numbers():
    state = torch.get_rng_state()
    first = matmul_peak(torch.device("cpu"), torch.float32)
    assert torch.equal(state, torch.get_rng_state())
    assert matmul_peak(torch.device("cpu"), torch.float32) is first  # once per process
    assert first["flops_per_s"] > 1e8 and first["dtype"] == "float32" and first["threads"] == torch.get_num_threads()


def test_epoch_samples_and_the_last_line_figure():
    assert epoch_samples(2000, 256, True, 1, 0) == 1792
    assert epoch_samples(2000, 256, False, 1, 0) == 2000
    assert epoch_samples(1000, 100, True, 4, 3) == 4300  # DCSM's repeats, STL-10's unlabeled batches
    block = {"train": {"samples_per_s": 1234.4}, "flops": {"per_s": 3.1e9}, "fraction_of_peak": 0.123}
    assert throughput_text(block) == "1,234 samples/s, 3.1 GFLOP/s = 12% of peak"
    assert throughput_text({"train": {"samples_per_s": 99.0}, "flops": None}) == "99 samples/s"
    assert throughput_text(None) == "" and throughput_text({"train": {"samples_per_s": None}}) == ""


def test_nested_phases_are_booked_exclusively():
    clock = RunClock(profile=True)
    with clock.phase("train"):
        with clock.detail("step"):
            sum(range(20000))
    assert clock.exclusive["train"] + clock.exclusive["step"] == pytest.approx(clock.inclusive["train"])
    assert clock.inclusive["step"] == clock.exclusive["step"]
    assert RunClock(profile=False).detail("step") is RunClock(profile=False).detail("data")  # a shared no-op


def test_a_run_records_its_throughput_and_counting_changes_no_number(tiny_config, tmp_path, monkeypatch):
    counted = run(tiny_config(), tmp_path / "counted")
    block = counted["throughput"]
    assert block["train"]["epochs"] == 2 and block["train"]["samples"] == 2 * 2000  # batch 200 divides 2000
    assert block["train"]["samples_per_s"] > 0 and block["evaluation"]["passes"] == 2
    assert block["evaluation"]["samples"] == 4000 and block["evaluation"]["samples_per_s"] > 0
    assert block["flops"]["total"] > 0 and block["flops"]["per_s"] > 0
    assert block["peak"]["dtype"] == "float32" and 0 < block["fraction_of_peak"] < 2
    assert _results(tmp_path / "counted")["throughput"] == block
    line = summary_line(counted, {}, tmp_path / "counted")
    assert "samples/s" in line and "of peak" in line and line.endswith(f"-> {tmp_path / 'counted'}")

    monkeypatch.setattr(throughput, "COUNT_FLOPS", False)
    plain = run(tiny_config(), tmp_path / "plain")
    assert plain["metrics"] == counted["metrics"]
    a, b = np.load(tmp_path / "counted" / "predictions.npz"), np.load(tmp_path / "plain" / "predictions.npz")
    assert np.array_equal(a["y_pred"], b["y_pred"]) and np.array_equal(a["probabilities"], b["probabilities"])
    assert plain["throughput"]["flops"] is None and plain["throughput"]["flops_not_counted"] == "FLOP counting off"
    assert not (tmp_path / "counted" / "profile.json").exists()  # profiling is off by default


def test_a_bf16_run_is_measured_against_the_bf16_peak(tiny_config, tmp_path):
    block = run(tiny_config("hardware.precision=bf16", "trainer.max_epochs=1"), tmp_path)["throughput"]
    assert block["peak"]["dtype"] == "bfloat16" and block["flops"]["per_s"] > 0


def test_kmeans_has_evaluation_throughput_and_no_flops(tiny_config, tmp_path):
    results = run(tiny_config("model=kmeans"), tmp_path)
    block = results["throughput"]
    assert block["train"]["epochs"] == 0 and block["train"]["samples_per_s"] is None
    assert block["evaluation"]["samples_per_s"] > 0
    assert block["flops"] is None and block["flops_not_counted"] == "no training steps"
    assert "samples/s" not in summary_line(results, {}, tmp_path)


def test_profile_writes_the_phase_table_and_stays_out_of_the_hash(tiny_config, tmp_path):
    cfg = tiny_config("trainer.profile=true", "trainer.max_epochs=1")
    assert config_hash(cfg) == config_hash(tiny_config("trainer.max_epochs=1"))
    run(cfg, tmp_path)
    profile = json.loads((tmp_path / "profile.json").read_text())
    phases = profile["phases"]
    assert {"setup", "train", "data", "step", "evaluation", "checkpoint", "embedding"} <= set(phases)
    assert phases["step"]["calls"] == 2000 // 200
    shares = sum(p["fraction"] for p in phases.values()) + profile["untimed"]["fraction"]
    assert shares == pytest.approx(1.0, abs=0.01)


@pytest.mark.filterwarnings("ignore::UserWarning")  # 64 noise images collapse; not what is tested
def test_profile_times_the_augmentation_of_image_batches_and_a_counted_cnn_step_changes_nothing(tmp_path, monkeypatch):
    from clusterbench.api import cluster

    images = np.random.default_rng(0).integers(0, 255, size=(64, 12, 12), dtype=np.uint8)

    def fit(profile: bool):
        return cluster(
            images,
            method="cc",
            n_clusters=2,
            hardware="cpu",
            paths__log_dir=str(tmp_path),
            trainer__max_epochs=2,
            trainer__batch_size=32,
            trainer__profile=profile,
            trainer__progress=False,
            backbone="small_cnn",
        )

    result = fit(profile=True)
    profile = json.loads((result.run_dir / "profile.json").read_text())
    assert profile["phases"]["augmentation"]["calls"] == 4 and profile["phases"]["data"]["calls"] == 4
    assert result.results["throughput"]["flops"]["per_s"] > 0  # a CNN step is counted
    monkeypatch.setattr(throughput, "COUNT_FLOPS", False)
    plain = fit(profile=False)  # neither counted nor profiled: the same numbers
    assert np.array_equal(plain.probabilities, result.probabilities)


def test_a_resumed_run_reports_its_own_epochs(tiny_config, tmp_path):
    overrides = ("trainer.max_epochs=3", "trainer.keep_checkpoints=true")
    full = run(tiny_config(*overrides), tmp_path / "full")
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "full", stopped)
    (stopped / "results.json").unlink()
    shutil.copy(stopped / "checkpoints" / "epoch_0001.pt", stopped / "checkpoints" / "last.pt")
    (stopped / ".hydra").mkdir()
    OmegaConf.save(tiny_config(*overrides), stopped / ".hydra" / "config.yaml")
    resumed = run(tiny_config(f"resume={stopped}"), tmp_path / "ignored")
    assert resumed["metrics"] == full["metrics"]
    assert full["throughput"]["train"]["epochs"] == 3
    assert resumed["throughput"]["train"]["epochs"] == 2 and resumed["throughput"]["train"]["samples"] == 2 * 2000
    assert "after the resume" in resumed["throughput"]["scope"]


def test_report_throughput_columns(tiny_config, tmp_path, capsys):
    run(tiny_config("trainer.max_epochs=1"), tmp_path / "run")
    (tmp_path / "run" / ".hydra").mkdir(exist_ok=True)  # what report finds a run folder by
    OmegaConf.save(tiny_config("trainer.max_epochs=1"), tmp_path / "run" / ".hydra" / "config.yaml")
    capsys.readouterr()  # the run's own lines
    assert report_main([str(tmp_path), "--throughput"]) == 0
    out = capsys.readouterr().out
    header, _, row = out.splitlines()[:3]
    assert header.endswith("| samples/s | % peak |")
    speed, fraction = [cell.strip() for cell in row.strip("|").split("|")][-2:]
    assert float(speed.replace(",", "")) > 0 and fraction.endswith("%")
    assert report_main([str(tmp_path), "--throughput", "--format", "csv"]) == 0
    csv_header, csv_row = capsys.readouterr().out.splitlines()[:2]
    assert csv_header.endswith("train_samples_per_s,fraction_of_peak") and float(csv_row.split(",")[-1]) > 0
    assert report_main([str(tmp_path)]) == 0
    assert "samples/s" not in capsys.readouterr().out  # only when asked for


def test_one_step_epochs_are_not_all_counted():
    """A full-batch method (one step an epoch) counts its step again only while at most
    RECOUNT_SHARE of its steps have been counted; the FLOPs of the others are the last count."""
    from clusterbench.engine import throughput

    clock = throughput.RunClock(count_flops=True)
    counted = 0
    for _ in range(100):
        handle = clock.step("train")
        if handle is not throughput._NULL:
            counted += 1
        with handle:
            torch.ones(4, 4) @ torch.ones(4, 4)
        clock.trained(samples=8)
    assert counted == 5  # the first step, then whenever counted / seen reached <= 5 %
    assert clock.flops == 100 * 2 * 4 * 4 * 4  # every epoch booked the 4x4 matmul's FLOPs
