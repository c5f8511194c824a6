"""Hydra's errors on the command line: one line a newcomer can act on, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import CONFIG_DIR
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException

from clusterbench.cli_errors import quote_plain_values, translate


def _error(argv):
    """The line translate() makes of the error Hydra raises composing `argv`."""
    with pytest.raises(HydraException) as caught:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            compose("train", overrides=quote_plain_values(argv))
    return translate(caught.value, argv)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["model=kmenas"], "model=kmenas: no option 'kmenas' in model; did you mean kmeans? (python -m clusterbench lists every option)"),
        (["dataset=handwriten"], "dataset=handwriten: no option 'handwriten' in dataset; did you mean handwritten or handwritten_mat?"),
        (["+experiment=cc_mnsit"], "+experiment=cc_mnsit: no option 'cc_mnsit' in experiment; did you mean cc_mnist"),
        (["trainer.max_epoch=3"], "trainer.max_epoch=3: no key 'max_epoch' of trainer; did you mean trainer.max_epochs?"),
        (["model=kmeans", "model.nitt=3"], "model.nitt=3: no key 'nitt' of model; did you mean model.n_init?"),
        (["+logger=wandb"], "+logger=wandb: logger has a value already (train.yaml's defaults); drop the plus to replace it: logger=wandb"),
        (["sweep=sdcib_depth"], "sweep=sdcib_depth: sweep is added with a plus: +sweep=sdcib_depth"),
        (["paths.data_dir=/a [b"], "quote it inside the shell's quotes: 'paths.data_dir=\"/a [b\"'"),
        (["hardware=gpu,cpu"], "hardware=gpu,cpu: a comma-separated list sweeps only in a multirun (add -m)"),
    ],
)
def test_hydra_errors_become_one_line(argv, line):
    got = _error(argv)
    assert got is not None and line in got and "\n" not in got


def test_a_missing_launcher_plugin_names_the_pip_command():
    # what Hydra raises for `-m +launcher=local` when hydra-joblib-launcher is not installed
    err = MissingConfigException("In 'launcher/local': Could not find 'hydra/launcher/joblib'", "hydra/launcher/joblib", ["basic"])
    assert "pip install hydra-joblib-launcher" in translate(err, ["-m", "+launcher=local"])
    err = MissingConfigException("Could not find 'hydra/launcher/submitit_slurm'", "hydra/launcher/submitit_slurm", ["basic"])
    assert "pip install hydra-submitit-launcher" in translate(err, ["-m", "+launcher=slurm"])


def test_letters_outside_ascii_are_quoted_for_hydra():
    assert quote_plain_values(["paths.data_dir=/data/Müller Lab", "model=kmeans", "+x=[ü]"]) == [
        "paths.data_dir='/data/Müller Lab'",
        "model=kmeans",
        "+x=[ü]",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=quote_plain_values(["paths.data_dir=/data/Müller Lab"]))
    assert cfg.paths.data_dir == "/data/Müller Lab"


def _train(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "clusterbench.train", *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_command_line_exits_2_with_one_line(tmp_path):
    done = _train("model=kmenas", f"paths.log_dir={tmp_path}")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: model=kmenas: no option 'kmenas' in model; did you mean kmeans? (python -m clusterbench lists every option)"
    ]
    done = _train("+model.n_initt=3", "model=kmeans", f"paths.log_dir={tmp_path}")  # the key Hydra's +key hint would add
    assert done.returncode == 2 and "did you mean model.n_init?" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("runs/*")) == []  # no run folder left


def test_version_is_clusterbench_s():
    from clusterbench import __version__

    done = _train("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"clusterbench {__version__}"
