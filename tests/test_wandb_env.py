"""logger=wandb follows wandb's environment (WANDB_MODE, WANDB_DISABLED) and says how to upload an
offline run; tested with a stand-in wandb module (the real one may not be installed)."""

from __future__ import annotations

import sys
import types

import pytest

from clusterbench.engine.loggers import WandbLogger
from clusterbench.errors import ConfigError


@pytest.fixture
def fake_wandb(monkeypatch, tmp_path):
    calls = {}

    class Run:
        dir = str(tmp_path / "wandb" / "offline-run-1" / "files")
        summary: dict = {}

        def log(self, row, step):
            calls.setdefault("rows", []).append(row)

        def finish(self):
            calls["finished"] = True

    def init(**kwargs):
        calls["init"] = kwargs
        return Run()

    module = types.SimpleNamespace(init=init, Settings=lambda **kwargs: kwargs)
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DISABLED", raising=False)
    return calls


def _run(tmp_path, mode="offline"):
    logger = WandbLogger(mode=mode)
    logger.start(tmp_path, {}, "run")
    logger.log({"epoch": 1, "loss": 0.5})
    logger.finish()
    return logger


def test_offline_run_ends_with_the_sync_command(fake_wandb, tmp_path, capsys):
    _run(tmp_path)
    assert fake_wandb["init"]["mode"] == "offline" and fake_wandb["finished"]
    folder = tmp_path / "wandb" / "offline-run-1"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wandb: offline run kept in {folder}; upload it with: wandb sync {folder}"


def test_wandb_mode_in_the_environment_wins(fake_wandb, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    _run(tmp_path, mode="online")
    assert fake_wandb["init"]["mode"] == "offline"
    capsys.readouterr()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    fake_wandb.clear()
    (tmp_path / "d").mkdir()
    _run(tmp_path / "d")
    assert "init" not in fake_wandb and (tmp_path / "d" / "metrics.csv").exists()  # metrics.csv only
    assert "wandb sync" not in capsys.readouterr().out
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ConfigError, match="WANDB_MODE='sometimes': expected one of online, offline, disabled"):
        _run(tmp_path / "e")


def test_disabled_needs_no_wandb_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.setenv("WANDB_DISABLED", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (tmp_path / "a").mkdir()
    _run(tmp_path / "a", mode="online")
    assert (tmp_path / "a" / "metrics.csv").exists()
    monkeypatch.delenv("WANDB_DISABLED")
    with pytest.raises(ConfigError, match="needs the wandb package"):
        _run(tmp_path / "a")
