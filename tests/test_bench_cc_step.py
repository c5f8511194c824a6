"""scripts/bench_cc_step.py runs end to end with tiny settings; both pipelines train the same model."""

from __future__ import annotations

import torch
from conftest import load_script


def test_bench_cc_step_tiny(capsys):
    bench = load_script("bench_cc_step")
    result = bench.main(
        ["--backbone", "small_cnn", "--batch-size", "8", "--warmup", "1", "--steps", "2", "--workers", "0", "--threads", "1"]
    )
    rows = {r["pipeline"]: r for r in result["results"]}
    assert set(rows) == {"clusterbench", "plain PyTorch"}
    for r in rows.values():
        assert r["steps_per_s"] > 0 and r["steps"] == 2
        assert r["data_ms_per_step"] >= 0 and r["forward_ms_per_step"] > 0 and r["backward_step_ms_per_step"] > 0
        assert r["optimizer_step_alone_ms"] > 0
        assert torch.isfinite(torch.tensor(r["mean_loss"]))
    assert result["ratio"] > 0
    assert result["ratio"] == rows["clusterbench"]["steps_per_s"] / rows["plain PyTorch"]["steps_per_s"]
    assert result["params"]["clusterbench"] == result["params"]["plain"] > 0
    assert result["same_parameter_shapes"]
    assert rows["clusterbench"]["host_syncs"] == 1 and rows["plain PyTorch"]["host_syncs"] == 2
    assert "fused=True" in rows["clusterbench"]["optimizer"]
    assert result["config"]["schedule"] == "interleaved"
    out = capsys.readouterr().out
    assert "| pipeline |" in out and "ratio clusterbench / plain PyTorch" in out


def test_bench_cc_step_sequential():
    bench = load_script("bench_cc_step")
    result = bench.main(
        [
            "--backbone",
            "small_cnn",
            "--batch-size",
            "8",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--workers",
            "0",
            "--threads",
            "1",
            "--schedule",
            "sequential",
            "--order",
            "ours-first",
            "--optim-repeats",
            "0",
        ]
    )
    assert [r["pipeline"] for r in result["results"]] == ["clusterbench", "plain PyTorch"]
    assert all(r["steps_per_s"] > 0 for r in result["results"]) and result["ratio"] > 0


def test_both_pipelines_build_the_same_model():
    bench = load_script("bench_cc_step")
    cfg = bench.compose_cc("small_cnn")
    info = bench.DataInfo(dims=(3072,), n_clusters=10, n_samples=16, image_shape=(3, 32, 32))
    ours = bench.build_model(cfg, info, 0)
    plain, objective = bench.build_plain_model(cfg, info, 0)
    assert type(ours) is type(plain) and type(ours.objective) is type(objective)
    assert bench.n_params(ours) == bench.n_params(plain)
    a, b = ours.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert vars(ours.objective) == vars(objective)
