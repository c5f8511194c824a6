"""CPU threads on a shared machine (issue 31, item 8): the command line makes torch's OpenMP threads
spin briefly, not for libgomp's 300,000 iterations, before they sleep (clusterbench/threads.py),
and says how many it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

# records the OpenMP settings at the moment torch is first imported: libgomp reads them when it loads
_POLICY_WHEN_TORCH_LOADS = """
import importlib.abc, os, sys
seen = []
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(f"{os.environ.get('OMP_WAIT_POLICY')} {os.environ.get('GOMP_SPINCOUNT')}")
        return None
sys.meta_path.insert(0, Finder())
import clusterbench.train
print(seen[0])
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**env, **extra}


def _policy_seen_by_torch(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _POLICY_WHEN_TORCH_LOADS], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_command_line_sets_a_short_spin_before_torch_loads():
    assert _policy_seen_by_torch(_env()) == "None 10000"


def test_a_users_own_wait_policy_or_spin_count_is_kept():
    assert _policy_seen_by_torch(_env(OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE None"
    assert _policy_seen_by_torch(_env(GOMP_SPINCOUNT="500")) == "None 500"


def test_the_first_line_and_results_say_the_threads_and_the_policy(tmp_path):
    args = [
        "model=kmeans",
        "model.n_init=1",
        "trainer.progress=false",
        "hardware=cpu",
        "hardware.num_threads=1",
        f"paths.log_dir={tmp_path}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "clusterbench.train", *args], capture_output=True, text=True, cwd=ROOT, timeout=600, env=_env()
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.strip().splitlines()[0]
    assert first.startswith("run: kmeans on handwritten") and ", cpu fp32, 1 thread -> " in first, first
    (folder,) = (tmp_path / "runs").iterdir()
    hardware = json.loads((folder / "results.json").read_text())["hardware"]
    assert hardware["num_threads"] == 1 and hardware["omp_wait_policy"] == "GOMP_SPINCOUNT=10000"


def test_spinning_threads_are_named_in_the_first_line(monkeypatch):
    import torch

    from clusterbench.engine.hardware import Hardware

    hardware = Hardware(device="cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert hardware.threads_text() == "2 threads (OpenMP wait: default (spin 300000))"
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert hardware.threads_text() == "2 threads"
    assert hardware.describe()["omp_wait_policy"] == "OMP_WAIT_POLICY=PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")
    assert hardware.threads_text() == "2 threads"
