"""Every option of every config group composes and passes the signature check; bad keys, types
and options fail before any data are loaded, with one line naming them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, ROOT, compose_config
from omegaconf import OmegaConf

from clusterbench.config_check import check_config
from clusterbench.errors import ConfigError

# configs/bench holds benchmark suites for clusterbench.bench, not a Hydra config group
GROUPS = sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name != "bench")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((Path(CONFIG_DIR) / g).glob("*.yaml"))]


def test_required_groups_exist():
    for group in ("model", "dataset", "backbone", "loss", "hardware", "logger", "trainer", "paths", "experiment"):
        assert group in GROUPS


# options that select a Hydra plugin from an optional extra (pyproject: ray, optuna) compose
# only where it is installed
PLUGINS = {("launcher", "ray"): "hydra_plugins.hydra_ray_launcher", ("sweep", "sdcib_optuna"): "hydra_plugins.hydra_optuna_sweeper"}


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_checks(group, option):
    if (group, option) in PLUGINS:
        pytest.importorskip(PLUGINS[group, option])
    prefix = "+" if group in ("experiment", "sweep", "launcher") else ""
    cfg = compose_config([f"{prefix}{group}={option}", "paths.data_dir=/nonexistent"])
    check_config(cfg)


def test_defaults():
    cfg = compose_config([])
    assert cfg.model._target_.endswith("sdcib.SDCIB")
    assert cfg.dataset.name == "handwritten"
    assert cfg.hardware.device == "auto"
    assert cfg.logger._target_.endswith("CSVLogger")


def test_model_switch_swaps_backbone_and_loss():
    cfg = compose_config(["model=kmeans"])
    assert "_target_" not in cfg.backbone and "_target_" not in cfg.loss


@pytest.mark.parametrize(
    "override,message",
    [
        ("+model.nope_key=1", r"model\.nope_key: unknown key"),
        ("model.alpha=abc", r"model\.alpha='abc': expected float"),
        ("model.critic_steps=1.5", r"model\.critic_steps=1\.5: expected int"),
        ("loss.layers=some", r"loss\.layers='some': expected one of 'all', 'last'"),
        ("hardware.precision=fp8", r"hardware\.precision='fp8'"),
        ("trainer.max_epochs=0", r"trainer\.max_epochs=0: expected a positive integer"),
        ("trainer.checkpoint_interval_s=-1", r"trainer\.checkpoint_interval_s=-1: expected a number of seconds >= 0"),
        ("dataset.preprocess=3", r"dataset\.preprocess=3"),
    ],
)
def test_check_config_names_the_key(override, message):
    cfg = compose_config([override])
    with pytest.raises(ConfigError, match=message) as info:
        check_config(cfg)
    assert "\n" not in str(info.value)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clusterbench.train", *args, f"paths.log_dir={cwd}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    "override,expected",
    [
        ("dataset=nope", "error: dataset=nope: no option 'nope' in dataset"),  # clusterbench/cli_errors.py
        ("model.nope_key=1", "error: model.nope_key=1: no key 'nope_key' of model"),
        ("model.alpha=abc", "model.alpha='abc': expected float"),
    ],
)
def test_cli_bad_input_fails_fast_with_one_message(override, expected, tmp_path):
    result = _cli(override, cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("metrics.csv"))  # failed before training


def test_cli_missing_dataset_file_is_one_line(tmp_path):
    result = _cli("dataset=bdgp", f"paths.data_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(line) == 1 and "bdgp.mat" in line[0] and "not found" in line[0]


def test_cli_help_lists_groups():
    result = subprocess.run([sys.executable, "-m", "clusterbench.train", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0
    for group in ("model:", "dataset:", "hardware:", "logger:"):
        assert group in result.stdout
    assert "kmeans" in result.stdout and "handwritten" in result.stdout


def _sweep_grid(name: str) -> dict[str, list]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.load(Path(CONFIG_DIR) / "sweep" / f"{name}.yaml").hydra.sweeper.params
    parser = OverridesParser.create()
    return {key: list(parser.parse_override(f"{key}={value}").sweep_iterator()) for key, value in params.items()}


def test_sweep_grids_match_the_paper():
    grid = _sweep_grid("sdcib_alpha_beta")
    assert grid == {"model.alpha": [0.1, 0.2, 0.4, 0.6, 0.8], "model.beta": [1, 10, 100, 1000, 10000]}
    depths = _sweep_grid("sdcib_depth")["backbone.hidden_dims"]
    assert [len(d) for d in depths] == [2, 3, 4, 5, 6, 7]
    assert depths[2] == [1024, 1024, 1024, 128]
    assert _sweep_grid("sdcib_hidden_layers") == {"loss.layers": ["all", "last"]}
