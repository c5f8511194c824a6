"""VTCC and MFAVBs-CC: token fusion mixes the two views and the released "batch" fusion does not,
single-view evaluation equals fusing a view with itself, the CLIP anchor cache (loading, the
one-line offline error, the embedding script with open_clip faked), 2-epoch runs."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from conftest import RUNNER, compose_config, load_script
from omegaconf import OmegaConf

from clusterbench.data.clip_cache import CLIP_DIM, cache_path, images_checksum, save_features
from clusterbench.data.images import load_digits
from clusterbench.engine.loop import build_method
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.cc import CCObjective
from clusterbench.methods.mfavbs import MFAVBsCC
from clusterbench.train import run

INFO = DataInfo(dims=(256,), n_clusters=3, n_samples=6, image_shape=(1, 16, 16))
NET = dict(embed_dim=32, num_heads=4, depth=4, patch_size=4)
# the tiny network for 2-epoch runs on digits (8 x 8 upsampled to 16 px, 16 patches)
TINY = [
    "dataset=digits",
    "augment.size=16",
    "model.patch_size=4",
    "model.embed_dim=32",
    "model.num_heads=4",
    "model.depth=2",
    "trainer.batch_size=900",
]  # 1 step per epoch


def _mfavbs(**kw) -> MFAVBsCC:
    torch.manual_seed(0)
    args = {**NET, "clip": "none", "representation": "cls", **kw}
    return MFAVBsCC(INFO, None, CCObjective(weights={}), **args).eval()


def test_token_fusion_mixes_the_views_and_batch_fusion_does_not():
    x_a, x_b = torch.randn(6, 1, 16, 16), torch.randn(6, 1, 16, 16)
    other_b = torch.randn(6, 1, 16, 16)
    index = torch.arange(6)
    outputs = {}
    for fusion in ("token", "batch", "none"):
        model = _mfavbs(fusion=fusion)
        with torch.no_grad():
            h_a, _ = model.encode_pair(x_a, x_b, index)
            h_a_other, _ = model.encode_pair(x_a, other_b, index)
        outputs[fusion] = (h_a, h_a_other)
    token, batch, none = outputs["token"], outputs["batch"], outputs["none"]
    # token fusion: view b's tokens change view a's representation (Eq. 1-2)
    assert (token[0] - token[1]).abs().max() > 1e-3
    # the released batch concatenation: view a does not see view b, and equals no fusion
    torch.testing.assert_close(batch[0], batch[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch[0], none[0], rtol=1e-5, atol=1e-6)
    # same weights (same seed), so token and batch differ only through the fusion
    assert (token[0] - batch[0]).abs().max() > 1e-3


def test_single_view_evaluation_equals_fusing_a_view_with_itself():
    model = _mfavbs(fusion="token")
    x = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        fused, fused_b = model.encode_pair(x, x, torch.arange(6))
        alone = model.encode(x, torch.arange(6))
    torch.testing.assert_close(fused, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused_b, alone, rtol=1e-4, atol=1e-5)


def test_fused_pairs_and_config_errors():
    x_a, x_b, other = (torch.randn(6, 1, 16, 16) for _ in range(3))
    model = _mfavbs(fusion="token", fused_pairs=0)  # N = 0 is VTCC (Fig. 6)
    with torch.no_grad():
        same = model.encode_pair(x_a, x_b, torch.arange(6))[0], model.encode_pair(x_a, other, torch.arange(6))[0]
    torch.testing.assert_close(*same, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="model.fused_pairs=3"):
        _mfavbs(fused_pairs=3)
    with pytest.raises(ConfigError, match="model.fusion='add'"):
        _mfavbs(fusion="add")
    with pytest.raises(ConfigError, match="model.representation=anchor needs"):
        _mfavbs(representation="anchor")


def test_clip_anchor_from_a_cache_file_and_the_offline_error(tmp_path):
    images = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8)
    command = "python scripts/clip_embed.py dataset=x"
    model = _mfavbs(clip="cached", representation="anchor", clip_cache=str(tmp_path), clip_command=command)
    with pytest.raises(ConfigError) as err:
        model.on_fit_start([images])
    message = str(err.value)
    assert "\n" not in message and message.endswith(command) and str(tmp_path) in message
    features = torch.randn(6, CLIP_DIM)
    save_features(cache_path(tmp_path, images_checksum(images)), features, images_checksum(images), dataset="x")
    model.on_fit_start([images])
    assert torch.equal(model.clip_features, features)
    x = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        before = model.encode(x, torch.arange(6))
        model.clip_features[0] += 10.0  # the anchor of sample 0 only
        after = model.encode(x, torch.arange(6))
    assert (before[0] - after[0]).abs().max() > 1e-4
    torch.testing.assert_close(before[1:], after[1:], rtol=0, atol=1e-6)
    # other images: the cache is not used
    with pytest.raises(ConfigError, match="no CLIP features"):
        model.on_fit_start([images.flip(0)])


class _FakeCLIP(torch.nn.Module):
    calls = 0

    def encode_image(self, x):
        _FakeCLIP.calls += 1
        assert x.shape[1:] == (3, 224, 224)
        return x.mean(dim=(2, 3)).repeat(1, 171)[:, :CLIP_DIM]


def test_clip_embed_script_caches_by_the_images_checksum(tmp_path, monkeypatch):
    fake = types.ModuleType("open_clip")
    fake.create_model_and_transforms = lambda name, pretrained: (_FakeCLIP(), None, None)
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    script = load_script("clip_embed")
    args = ["dataset=digits", f"model.clip_cache={tmp_path}", "--device", "cpu", "--batch-size", "1000"]
    path = script.main(args)
    data = load_digits()
    assert path == cache_path(tmp_path, images_checksum(data.images))
    record = torch.load(path, weights_only=True)
    assert record["features"].shape == (1797, CLIP_DIM) and record["dataset_checksum"] == data.checksum
    calls = _FakeCLIP.calls
    assert calls == 2  # 1797 images in batches of 1000
    script.main(args)  # cached: nothing recomputed
    assert _FakeCLIP.calls == calls


def _config(model: str, *extra: str):
    return compose_config([*RUNNER, f"model={model}", *TINY, *extra])


def test_two_epoch_runs_of_vtcc_and_mfavbs_with_a_cached_anchor(tmp_path):
    results = run(_config("vtcc"), tmp_path / "vtcc")
    data = load_digits()
    checksum = images_checksum(data.images)
    save_features(cache_path(tmp_path / "clip", checksum), torch.randn(1797, CLIP_DIM), checksum)
    mfavbs = run(_config("mfavbs", f"model.clip_cache={tmp_path / 'clip'}"), tmp_path / "mfavbs")
    for res, where in ((results, "vtcc"), (mfavbs, "mfavbs")):
        assert res["status"] == "finished" and res["epochs"] == 2
        assert 0.0 < res["metrics"]["acc"] <= 1.0
        assert json.loads((tmp_path / where / "results.json").read_text())["metrics"] == res["metrics"]


def test_mfavbs_without_cache_stops_with_one_line(tmp_path):
    cfg = _config("mfavbs", f"model.clip_cache={tmp_path / 'none'}")
    with pytest.raises(ConfigError, match=r"python scripts/clip_embed.py dataset=digits"):
        build_method(cfg, DataInfo((64,), 10, 1797, (1, 16, 16))).on_fit_start([load_digits().images])


@pytest.mark.parametrize("name", ["vtcc_tiny", "mfavbs_tiny", "vtcc_rsod", "mfavbs_rsod", "mfavbs_cifar10"])
def test_presets_compose(name):
    cfg = compose_config([f"+experiment={name}"])
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.model._target_.split(".")[-1] in ("VTCC", "MFAVBsCC")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vtcc_tiny", "mfavbs_tiny"])
def test_tiny_preset_end_to_end(name, tmp_path):
    """The CPU preset as shipped (about a minute on 2 idle cores; docs/vit_methods.md)."""
    results = run(compose_config([f"+experiment={name}", "hardware=cpu", "trainer.progress=false"]), tmp_path)
    assert results["status"] == "finished" and results["epochs"] == 6
    assert results["metrics"]["nonempty_clusters"] >= 2


def test_official_heads_and_init_shapes():
    """head=official: Linear(d,4d)-BN-ReLU-Linear(4d,4d)-BN-ReLU-Linear (released Network_VTCC);
    init=official: q, k, v thirds within MoCo v3's bound sqrt(6 / (d + d)), [CLS] std 1e-6."""
    torch.manual_seed(0)
    model = MFAVBsCC(INFO, None, CCObjective(weights={}), **NET, clip="none", representation="cls", head="official", init="official")
    d = NET["embed_dim"]
    for head, out in ((model.instance_head, 128), (model.cluster_head[0], INFO.n_clusters)):
        kinds = [type(m).__name__ for m in head]
        assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert [tuple(m.weight.shape) for m in head if isinstance(m, torch.nn.Linear)] == [(4 * d, d), (4 * d, 4 * d), (out, 4 * d)]
    bound = (6.0 / (d + d)) ** 0.5
    for block in model.vit.blocks:
        w = block.attn.qkv.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # uniform up to the bound
        assert block.attn.qkv.bias.abs().max() == 0
    assert model.vit.cls_token.abs().max() < 1e-5
    default = MFAVBsCC(INFO, None, CCObjective(weights={}), **NET, clip="none", representation="cls")
    assert len(default.instance_head) == 3 and default.vit.cls_token.abs().max() > 1e-3
    with pytest.raises(ConfigError, match="model.head='bn'"):
        MFAVBsCC(INFO, None, CCObjective(weights={}), **NET, clip="none", representation="cls", head="bn")


def test_own_fusion_never_sees_the_positive_view():
    """fusion=own: h_a depends on (a, a') only; changing b (the positive) leaves h_a unchanged,
    changing a' changes it (the fusion is real)."""
    model = _mfavbs(fusion="own")
    seen = {}

    def capture(h_a, h_b, c_a, c_b):
        seen["h"] = h_a
        return {"loss": h_a.sum()}

    model.objective = capture
    model.instance_head = torch.nn.Identity()
    views = [torch.randn(6, 1, 16, 16) for _ in range(4)]
    with torch.no_grad():
        model.training_step(views, torch.arange(6), None)
        base = seen["h"].clone()
        model.training_step([views[0], torch.randn(6, 1, 16, 16), views[2], views[3]], torch.arange(6), None)
        torch.testing.assert_close(seen["h"], base, rtol=0, atol=1e-6)
        model.training_step([views[0], views[1], torch.randn(6, 1, 16, 16), views[3]], torch.arange(6), None)
        assert (seen["h"] - base).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="needs 4 augmented views"):
        model.training_step(views[:2], torch.arange(6), None)


@pytest.mark.parametrize("name", ["vtcc_official", "mfavbs_official"])
def test_official_presets_compose(name):
    cfg = compose_config([f"+experiment={name}"])
    assert cfg.model.head == "official" and cfg.model.init == "official"
    assert cfg.augment.views[0].ops[3].p == 1.0 and cfg.augment.views[0].ops[1].saturation == 0.2
