"""Presets and model files compose to the configs they composed to before they were regrouped
(issue 29: one preset per paper protocol, schedules in configs/trainer/), so that run folders
and bench cells keep their config hash.

tests/data/composed_presets.json holds, for every case (a preset on its own dataset and on the
datasets its file or a bench suite names, two presets together, a model file on the default
dataset and on digits), the overrides and the config hash that results.json records
(engine/provenance.config_hash: `resume`, `overwrite` and trainer.checkpoint_when_done left out),
composed with paths.* fixed so that no machine path enters it. A failing case means that runs
of that config would get another hash (bench cells done before would run again): if that is
meant, say so in the commit and rewrite the file with `python tests/test_presets.py --write`.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONFIG_DIR, ROOT, compose_config

from clusterbench.engine.provenance import config_hash

SNAPSHOT = Path(__file__).parent / "data" / "composed_presets.json"
FIXED_PATHS = ("paths.root_dir=/cb_root", "paths.data_dir=/cb_data")
EXPERIMENTS = Path(CONFIG_DIR) / "experiment"


def _cases() -> dict[str, dict]:
    return json.loads(SNAPSHOT.read_text())["cases"]


@functools.lru_cache(maxsize=None)
def composed_hash(*overrides: str) -> str:
    return config_hash(compose_config([*overrides, *FIXED_PATHS]))


def snapshot_hash(case: str) -> str:
    return _cases()[case]["config_sha256"]


CASES = sorted(_cases())


@pytest.mark.parametrize("case", CASES)
def test_case_composes_as_before(case):
    overrides = _cases()[case]["overrides"]
    assert composed_hash(*overrides) == snapshot_hash(case), f"{' '.join(overrides)} composes to another config than before"


# every preset name of the snapshot (the names before issue 29) resolves with `+experiment=`
# (test_case_composes_as_before); without the `+` too: an alias, an alias with a group of its
# own, one with per-dataset values, one built on another preset, one on its own
WITHOUT_PLUS = ["vtcc_rsod", "cc_imagenet10", "dcsm_stl10", "pici_coil20", "sdcib_official"]


@pytest.mark.parametrize("preset", WITHOUT_PLUS)
def test_preset_name_works_without_plus(preset):
    assert composed_hash(f"experiment={preset}") == snapshot_hash(f"experiment={preset}")


def test_a_preset_on_another_dataset_with_and_without_plus():
    assert composed_hash("experiment=cc_mnist", "dataset=coil20") == snapshot_hash("experiment=cc_mnist dataset=coil20")
    assert composed_hash("experiment=[sdcib_event,sdcib_official]") == snapshot_hash("experiment=[sdcib_event,sdcib_official]")


# the protocol presets on each dataset their paper reports: `experiment=<protocol> dataset=<name>`
# (plus what the paper varies per dataset) is the config the old per-dataset preset composed to
PAPER_DATASETS = ["aid", "cifar10", "cifar100", "imagenet10", "rsod", "siri_whu", "uc_merced"]
PROTOCOLS = [
    *[("vtcc_paper", [f"dataset={d}"], f"vtcc_{d}") for d in PAPER_DATASETS],
    *[("mfavbs_paper", [f"dataset={d}"], f"mfavbs_{d}") for d in PAPER_DATASETS],
    *[("pici_paper", [f"dataset={d}"], f"pici_{d}") for d in ("aid", "chaoyang", "d0_40", "rsod", "siri_whu", "uc_merced")],
    *[("sdcib_paper", [f"dataset={d}"], f"sdcib_{d}") for d in ("caltech2v", "esp", "event", "iapr")],
    *[("cc_paper", [f"dataset={d}"], f"cc_{d}") for d in ("cifar10", "cifar100")],
    ("cc_paper", ["dataset=imagenet10", "augment=cc_blur"], "cc_imagenet10"),
    *[("htcn_paper", [f"dataset={d}"], f"htcn_{d}") for d in ("cifar100", "tiny_imagenet")],
    *[("htcn_paper", [f"dataset={d}", "augment=htcn_imagenet"], f"htcn_{d}") for d in ("imagenet10", "imagenet_dogs")],
    ("dcsm_paper", ["dataset=cifar10"], "dcsm_cifar10"),
    ("dcsm_paper", ["dataset=stl10", "loss.alpha=0.1", "loss.beta=1.0", "loss.delta=0.1"], "dcsm_stl10"),
    # with no dataset=, each protocol runs on the dataset its file names
    *[
        (f"{m}_paper", [], f"{m}_{d}")
        for m, d in (
            ("vtcc", "rsod"),
            ("mfavbs", "rsod"),
            ("pici", "rsod"),
            ("sdcib", "event"),
            ("cc", "cifar10"),
            ("htcn", "cifar100"),
            ("dcsm", "cifar10"),
        )
    ],
]


@pytest.mark.parametrize("protocol,extra,old", PROTOCOLS, ids=[f"{p} {' '.join(e)}" for p, e, _ in PROTOCOLS])
def test_protocol_on_a_dataset_is_the_old_preset(protocol, extra, old):
    assert composed_hash(f"experiment={protocol}", *extra) == snapshot_hash(f"experiment={old}")


def _without_dataset(preset: Path) -> str:
    """A preset file's content (comments dropped) less its `override /dataset` line."""
    content = yaml.safe_load(preset.read_text()) or {}
    content["defaults"] = [d for d in content.get("defaults", []) if not (isinstance(d, dict) and "override /dataset" in d)]
    return json.dumps(content, sort_keys=True)


def test_no_two_presets_differ_only_by_dataset():
    """A protocol is written once; a preset named after a dataset names the protocol and the
    dataset (`defaults: [<protocol>, override /dataset: <name>]`, perhaps with a group the paper
    changes for that dataset: no body of its own) or adds the values the paper varies for it."""
    seen: dict[str, str] = {}
    for preset in sorted(EXPERIMENTS.glob("*.yaml")):
        body = _without_dataset(preset)
        content = json.loads(body)
        if set(content) == {"defaults"} and sum(isinstance(d, str) for d in content["defaults"]) == 1:
            continue  # names one protocol and group choices: no body
        assert body not in seen, f"{preset.name} and {seen.get(body)} differ only by the dataset"
        seen[body] = preset.name


def test_model_files_leave_the_schedule_to_configs_trainer():
    """`model=X` changes the model and its components; its schedule is configs/trainer/<name>.yaml,
    picked by the model file's defaults (`override /trainer: <name>`)."""
    for model in sorted((Path(CONFIG_DIR) / "model").glob("*.yaml")):
        content = yaml.safe_load(model.read_text()) or {}
        assert "trainer" not in content, f"{model.name} sets trainer.*: move it to configs/trainer/"
        for choice in [d["override /trainer"] for d in content.get("defaults", []) if isinstance(d, dict) and "override /trainer" in d]:
            assert (Path(CONFIG_DIR) / "trainer" / f"{choice}.yaml").is_file()


def test_cfg_job_shows_the_schedule_a_model_picks():
    out = subprocess.run(
        [sys.executable, "-m", "clusterbench.train", "model=cc", "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    trainer = yaml.safe_load(out.stdout)["trainer"]
    assert (trainer["max_epochs"], trainer["batch_size"], trainer["optimizer"]["lr"]) == (50, 128, 3.0e-4)


if __name__ == "__main__" and "--write" in sys.argv:
    data = json.loads(SNAPSHOT.read_text())
    for name, case in data["cases"].items():
        case["config_sha256"] = composed_hash(*case["overrides"])
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"rewrote {SNAPSHOT} ({len(data['cases'])} cases)")
