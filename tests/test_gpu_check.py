"""scripts/gpu_check.py on a CPU: the no-GPU note, and the plumbing at tiny sizes (one check fast,
all of them slow-marked). Measures nothing; the numbers come from a GPU run."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_script


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU path")
def test_without_a_gpu_it_says_so(tmp_path, capsys):
    gpu_check = load_script("gpu_check")
    out = tmp_path / "check.json"
    assert gpu_check.main(["--out", str(out)]) == 3
    assert "no CUDA device: nothing measured" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["machine"]["cuda"] is False and report["checks"] == {}


def test_tiny_augment_check_writes_one_json(tmp_path):
    gpu_check = load_script("gpu_check")
    out = tmp_path / "check.json"
    assert gpu_check.main(["--tiny", "--only", "augment", "--out", str(out)]) == 0
    record = json.loads(out.read_text())["checks"]["augment"]
    assert record["returncode"] == 0, record.get("output_tail")
    assert "result" in record  # the script's own JSON line, parsed


@pytest.mark.slow
def test_tiny_every_check(tmp_path):
    gpu_check = load_script("gpu_check")
    out = tmp_path / "check.json"
    assert gpu_check.main(["--tiny", "--out", str(out)]) == 0
    checks = json.loads(out.read_text())["checks"]
    assert set(checks) == {"cc_step", "augment", "vit_epoch", "sdcib_epoch", "vectorized", "throughput"}
    assert checks["cc_step"]["returncode"] == 0, checks["cc_step"].get("output_tail")
    assert checks["vit_epoch"]["bf16"]["returncode"] == 0, checks["vit_epoch"]["bf16"].get("output_tail")
    assert checks["sdcib_epoch"]["cpu"]["s_per_epoch"] is not None
    assert checks["vectorized"]["returncode"] == 0, checks["vectorized"].get("output_tail")
    for name, record in checks["throughput"].items():  # the engine's figure, read from each run's results.json
        assert record["returncode"] == 0, (name, record.get("output_tail"))
        assert record["throughput"]["train"]["samples_per_s"] > 0 and record["throughput"]["fraction_of_peak"] > 0
