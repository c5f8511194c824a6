"""scripts/bench_augment.py runs end to end with tiny settings and returns its summary."""

from __future__ import annotations

from conftest import load_script


def test_bench_augment_tiny(capsys):
    bench = load_script("bench_augment")
    result = bench.main(["--n", "32", "--batch-size", "8", "--batches", "2", "--warmup", "1", "--workers", "0", "--threads", "1"])
    pipelines = {r["pipeline"]: r for r in result["results"]}
    assert len(result["results"]) == 2
    assert all(r["views_per_s"] > 0 for r in result["results"])
    assert set(result["ratio"]) == {"workers=0"} and result["ratio"]["workers=0"] > 0
    assert result["sanity"]["ok"]
    assert any(name.startswith("ours") for name in pipelines)
    out = capsys.readouterr().out
    assert "| pipeline |" in out and "sanity:" in out
