"""bf16 on CPUs that have it (issue 32, item 1): `hardware.precision=auto` uses bf16 on a CPU only
where the preset says its step is faster in bf16 (`hardware.cpu_bf16`) and the CPU computes bf16
natively; hardware=cpu (fp32) is untouched, and so is the config hash of every run the hint does
not change."""

from __future__ import annotations

import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from clusterbench.bench import load_suite
from clusterbench.engine import hardware as hw
from clusterbench.engine.hardware import Hardware
from clusterbench.engine.provenance import config_hash

HINTED = {
    "cc_mnist": "+experiment=cc_mnist",
    "htcn_mnist": "+experiment=htcn_mnist",
    "vtcc_mnist": "+experiment=vtcc_mnist",
    "mfavbs_mnist": "+experiment=mfavbs_mnist",
    "pici_mnist": "+experiment=pici_mnist",
    "mflvc": "model=mflvc",
    "dealmvc": "model=dealmvc",
    "divide": "model=divide",
    "icmvc": "model=icmvc",
}
# cells that carry the hint themselves: dcsm_digits is slower in bf16 on its own 8 px digits, and on
# Fashion-MNIST its bf16 NMI was 1.5 std above the fp32 seeds' (docs/benchmark.md)
CELLS_HINTED = {"dcsm-mnist"}


@pytest.mark.parametrize("native", [True, False])
def test_auto_uses_bf16_on_a_cpu_only_with_the_hint_and_native_bf16(monkeypatch, native):
    monkeypatch.setattr(hw, "native_cpu_bf16", lambda: native)
    hinted = Hardware(device="cpu", precision="auto", cpu_bf16=True)
    assert hinted.precision == ("bf16" if native else "fp32")
    assert hinted.describe()["native_bf16"] is native
    assert hinted.describe()["precision_chosen_by"] == (
        "auto: bf16 (native bf16 on this CPU; the preset's step is faster in it)" if native else "auto: fp32 (no native bf16 on this CPU)"
    )
    assert Hardware(device="cpu", precision="auto").precision == "fp32"
    asked = Hardware(device="cpu", precision="fp32", cpu_bf16=True)
    assert asked.precision == "fp32" and asked.describe()["precision_chosen_by"] == "hardware.precision"


def _without_hint(cfg) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    del plain["hardware"]["cpu_bf16"]
    return plain


@pytest.mark.parametrize("preset", sorted(HINTED))
def test_hinted_presets_keep_fp32_under_hardware_cpu_and_their_old_hash(preset):
    cfg = compose_config([HINTED[preset], "hardware=cpu"])
    assert cfg.hardware.cpu_bf16 is True and cfg.hardware.precision == "fp32"
    assert config_hash(cfg) == config_hash(_without_hint(cfg))  # the hint acts only under precision auto
    auto = compose_config([HINTED[preset], "hardware=cpu", "hardware.precision=auto"])
    assert config_hash(auto) != config_hash(_without_hint(auto))


def test_presets_slower_or_unchecked_in_bf16_carry_no_hint():
    for overrides in (
        ["model=sdcib"],
        ["+experiment=dcsm_digits"],
        ["+experiment=pici_coil20"],
        ["+experiment=pici_tiny"],
        ["+experiment=vtcc_tiny"],
        ["+experiment=mfavbs_tiny"],
        ["model=cc"],
    ):
        assert not compose_config(overrides).hardware.get("cpu_bf16", False), overrides


def _cpu_cells_with_their_preset():
    """The `cpu` suite's cells, each with its model's or preset's composed config (composed once per
    (model, preset): the dataset and the cell's other overrides do not change what is read here)."""
    suite = load_suite("cpu")
    composed = {}
    for cell in suite.cells:
        key = tuple(o for o in cell.overrides if o.startswith(("model=", "+experiment=")))
        if key not in composed:
            composed[key] = compose_config([*suite.common, *key])
        yield cell, key, composed[key]


def test_the_cpu_suite_asks_for_auto_precision_exactly_on_the_hinted_cells():
    """precision=auto on a cell without the hint would run fp32 under another config hash; a hinted
    cell without it would leave its measured bf16 gain unused."""
    hinted = {}
    for cell, key, cfg in _cpu_cells_with_their_preset():
        hinted[key] = bool(cfg.hardware.get("cpu_bf16", False))
        cell_hint = "+hardware.cpu_bf16=true" in cell.overrides
        assert cell_hint == (cell.name in CELLS_HINTED), cell.name
        assert ("hardware.precision=auto" in cell.overrides) == (hinted[key] or cell_hint), cell.name
    assert sum(hinted.values()) == len(HINTED)


def test_the_cpu_suite_asks_for_channels_last_exactly_on_its_cnn_cells_past_digits():
    """NHWC was measured faster, and its metrics checked, for the small-CNN presets on 28-32 px
    images (docs/benchmark.md): those cells ask for it; the ViT, MLP and 8 px digits cells do not."""
    for cell, _, cfg in _cpu_cells_with_their_preset():
        cnn_past_digits = cfg.backbone.get("_target_", "").endswith("SmallCNN") and cell.dataset in ("coil20", "mnist", "fashion_mnist")
        assert ("hardware.channels_last=true" in cell.overrides) == cnn_past_digits, cell.name
